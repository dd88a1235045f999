"""`up` and `down` of the kind platform: the ordered commands that build the clusters and the mesh.

Order of `up`: render and validate every document (nothing has run yet), preflight, build the sample
image, create the missing kind clusters, load the image (`kind load docker-image`, else `docker save`
and `kind load image-archive`: kind#3795), then per cluster the plug-in CA Secret and Istio (plus, with
three clusters, the east-west gateways, every network's gateway address in meshNetworks, and the remote
secrets that join them into one mesh), then Prometheus and Jaeger, the external AI API's stand-in
(namespace external-ai), the mesh's workloads and its Istio resources; last, wait until every
Deployment is available and Prometheus and the ingress answer on 127.0.0.1.

Two CAs are made at the first `up`, in a temporary directory gone when `up` returns: the mesh's
(Istio's cacerts) and a separate "external" one that stands in for the public CA behind api.openai.com
(the stand-in's server certificate; its root goes to the callers). A later `up` re-uses both from the
clusters (existing.py). A dry run shows placeholders instead.

With `no_create` (a cluster the user has: `--context NAME --allow-context NAME --no-create`) nothing
is created or deleted outside the harness's namespaces: Istio is installed only when absent, Prometheus
runs in parallel-ai with a Role, and `down` deletes the harness's namespaces, never the cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.errors import ConfigError, HarnessError, MissingDependencyError, PlatformError, ReadinessTimeout
from harness.platforms.kind import existing, render
from harness.platforms.kind.commands import Command, CommandResult, CommandRunner, Recorder
from harness.platforms.kind.kube import FIELD_MANAGER
from harness.platforms.kind.preflight import Preflight, run_preflight
from harness.platforms.kind.validation import validate_kind_document
from harness.platforms.kind.settings import EXTERNAL_NAMESPACE, NAMESPACE, REGIONS, ClusterSpec, KindSettings

DRY_RUN_WORKDIR = Path("/tmp/harness-kind-dry-run")  # shown in a dry run's plan; never created
KIND_WAIT = "120s"  # `kind create cluster --wait`: until the control plane is ready
PROBE_TIMEOUT_S = 120.0  # Prometheus and the ingress answering after the Deployments are available
PROBE_INTERVAL_S = 1.0
INGRESS_HOST = "ai-agent-service.parallel-ai.svc.cluster.local"


@dataclass(frozen=True)
class Endpoints:
    """Where the primary cluster's ingress gateway and Prometheus answer on the host."""

    ingress_url: str
    prometheus_url: str


def endpoints(settings: KindSettings) -> Endpoints:
    """The kind config's host ports of the primary cluster; on a cluster the harness did not create, the
    HARNESS_INGRESS_URL / HARNESS_PROMETHEUS_URL given (e.g. a `kubectl port-forward` on 127.0.0.1)."""
    if settings.ingress_url and settings.prometheus_url:
        return Endpoints(settings.ingress_url, settings.prometheus_url)
    primary = settings.cluster_specs()[0]
    config = render.kind_config(primary.config_file)
    ingress = render.host_port(config, render.INGRESS_NODE_PORT)
    prometheus = render.host_port(config, render.PROMETHEUS_NODE_PORT)
    missing = [str(port) for port, host in ((render.INGRESS_NODE_PORT, ingress),
                                            (render.PROMETHEUS_NODE_PORT, prometheus)) if host is None]
    if missing:
        raise ConfigError(f"expected extraPortMappings for node port(s) {', '.join(missing)} (ingress, Prometheus)",
                          file=primary.config_file, field="nodes[0].extraPortMappings")
    return Endpoints(f"http://127.0.0.1:{ingress}", f"http://127.0.0.1:{prometheus}")


class Installer:
    def __init__(self, settings: KindSettings, runner: CommandRunner, recorder: Recorder | None = None) -> None:
        self.settings = settings
        self.runner = runner
        self.recorder = recorder
        self.specs = settings.cluster_specs()
        self.inotify_dir: Path | None = None  # preflight.INOTIFY_DIR
        self.report: dict[str, object] = {}  # what `up` found and did: image loading, CA, Istio

    # -- plan --------------------------------------------------------------------------------------

    def validate_everything(self) -> None:
        """Every kind config and document `up` will use, strictly validated before anything runs."""
        for spec in self.specs:
            validate_kind_document(render.kind_config(spec.config_file), source=spec.config_file)
            networks = render.mesh_networks(self.specs, {s.name: "192.0.2.1" for s in self.specs}) \
                if self.settings.clusters > 1 else None  # the shape up fills with each node's address
            validate_kind_document(render.istio_operator(self.settings.profile, spec, self.settings.istio_version,
                                                         networks),
                                   source=render.KIND_MANIFESTS / "istio" / "control-plane.yaml")
            if self.settings.clusters > 1:
                validate_kind_document(render.eastwest_operator(spec),
                                       source=render.KIND_MANIFESTS / "istio" / "eastwest-gateway.yaml")
            for index, doc in enumerate([render.istio_system_namespace(spec), render.cacerts_secret()]
                                        + render.external_ai_documents() + render.workload_documents(spec)
                                        + render.addon_documents() + render.harness_namespace_addons()):
                validate_kind_document(doc, source=f"rendered for cluster {spec.name}", index=index)
        for index, doc in enumerate(render.istio_documents()):  # the shipped ones, with the kind overlay
            validate_kind_document(doc, source="harness/mesh/manifests/istio (kind)", index=index)
        render.sample_image()

    # -- up ----------------------------------------------------------------------------------------

    def up(self) -> Preflight:
        self.validate_everything()
        preflight = run_preflight(self.runner, clusters=self.settings.clusters,
                                  min_memory_gib_per_cluster=self.settings.min_memory_gib_per_cluster,
                                  istio_version=self.settings.istio_version, inotify_dir=self.inotify_dir,
                                  docker_needed=not self.settings.no_create)
        image = render.sample_image()
        if self.settings.no_create:
            self._install_existing(image)
            return preflight
        self._run("docker", "build", "-t", image, "-f", str(self.settings.dockerfile), str(self.settings.project_dir))
        found = set(self._run("kind", "get", "clusters").stdout.split())
        try:
            for spec in self.specs:
                if spec.name not in found:
                    self._create_cluster(spec)
            self._load_image(image, self.specs)
            self._install(image)
        except HarnessError as exc:
            names = ", ".join(spec.name for spec in self.specs)
            raise PlatformError(f"{exc}\n(the kind cluster(s) {names} are left as they are for inspection; "
                                "`harness down --platform kind` deletes them)") from exc
        return preflight

    def _load_image(self, image: str, specs: tuple[ClusterSpec, ...]) -> None:
        """`kind load docker-image`; where it fails (the containerd image store of Docker 29, kind#3795),
        `docker save` to an archive and `kind load image-archive`. The report says which ran."""
        loaded: dict[str, str] = {}
        for spec in specs:
            result = self.runner.run(Command(("kind", "load", "docker-image", image, "--name", spec.name),
                                             timeout_s=900), check=False)
            if result.returncode == 0:
                loaded[spec.name] = "kind load docker-image"
                continue
            with tempfile.TemporaryDirectory(prefix="harness-kind-image-") as folder:
                archive = Path(folder) / "sample-image.tar"
                self._run("docker", "save", "-o", str(archive), image)
                self._run("kind", "load", "image-archive", str(archive), "--name", spec.name)
            loaded[spec.name] = ("kind load image-archive (kind load docker-image failed: "
                                 f"{(result.stderr or result.stdout).strip()[-300:]})")
        self.report["image_load"] = loaded
        if self.recorder is not None and self.runner.dry_run:
            self.recorder.add("(where `kind load docker-image` fails: docker save -o <tmp>/sample-image.tar "
                              f"{image} && kind load image-archive <tmp>/sample-image.tar --name <cluster>)")

    def _mesh_ca(self, work: Path) -> dict[str, bytes] | None:
        found = existing.existing_cacerts(self.runner, self.specs)
        self.report["mesh_ca"] = "re-used from istio-system/cacerts" if found else "made at this up"
        return found or self._make_ca(work)

    def _external_ca(self, work: Path) -> render.ExternalAiTls | None:
        found = existing.existing_external_tls(self.runner, self.specs[0])
        self.report["external_ca"] = "re-used from the cluster" if found else "made at this up"
        return found or self._make_external_ca(work)

    def _install(self, image: str) -> None:
        """Everything inside the clusters, in order (see the module docstring)."""
        networks = None
        if self.settings.clusters > 1:
            addresses = {spec.name: existing.node_address(self.runner, spec) for spec in self.specs}
            networks = render.mesh_networks(self.specs, addresses)
            self.report["mesh_networks"] = networks
            if self.recorder is not None and self.runner.dry_run:
                self.recorder.add("(values.global.meshNetworks of every control plane: " + "; ".join(
                    f"{net} <- {spec['endpoints'][0]['fromRegistry']} via {spec['gateways'][0]['address']}:"
                    f"{spec['gateways'][0]['port']}" for net, spec in networks.items()) + ")")
        with self._workdir() as work:
            cacerts = render.cacerts_secret(self._mesh_ca(work))
            external_tls = self._external_ca(work)
            for spec in self.specs:
                self._apply(spec, [render.istio_system_namespace(spec), cacerts])
                operator = render.istio_operator(self.settings.profile, spec, self.settings.istio_version, networks)
                validate_kind_document(operator, source=render.KIND_MANIFESTS / "istio" / "control-plane.yaml")
                self._istioctl_install(spec, work / f"istio-operator-{spec.name}.yaml", operator)
                if self.settings.clusters > 1:
                    self._istioctl_install(spec, work / f"eastwest-{spec.name}.yaml", render.eastwest_operator(spec))
        if self.settings.clusters > 1:
            self._join_clusters(addresses)
        for spec in self.specs:
            if spec.primary:
                self._apply(spec, render.addon_documents())
            self._apply(spec, render.external_ai_documents(external_tls))
            self._apply(spec, render.workload_documents(spec, external_tls.root if external_tls else None))
            self._apply(spec, render.istio_documents()
                        + (render.multicluster_documents() if self.settings.clusters > 1 else []))
        self._wait_ready()

    def _run(self, *argv: str, stdin: str | None = None, summary: str | None = None,
             timeout_s: float = 900.0) -> CommandResult:
        return self.runner.run(Command(tuple(argv), stdin=stdin, stdin_summary=summary, timeout_s=timeout_s))

    def _create_cluster(self, spec: ClusterSpec) -> None:
        argv = ["kind", "create", "cluster", "--name", spec.name, "--config", str(spec.config_file),
                "--wait", KIND_WAIT]
        if self.settings.node_image:
            argv += ["--image", self.settings.node_image]
        self._run(*argv)

    def _apply(self, spec: ClusterSpec, docs: list[dict]) -> None:
        self._run("kubectl", "--context", spec.context, "apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                  "--force-conflicts", "-f", "-", stdin=render.to_yaml(docs), summary=render.describe(docs))

    def _istioctl_install(self, spec: ClusterSpec, path: Path, operator: dict) -> None:
        if not self.runner.dry_run:
            path.write_text(render.to_yaml([operator]), encoding="utf-8")
        self._run("istioctl", "install", "--context", spec.context, "-y", "-f", str(path),
                  timeout_s=self.settings.kind_ready_timeout_s)

    @contextlib.contextmanager
    def _workdir(self) -> Iterator[Path]:
        """Rendered operator files and the CA key live only while `up` runs (the key never lands in the repo)."""
        if self.runner.dry_run:
            yield DRY_RUN_WORKDIR
            return
        with tempfile.TemporaryDirectory(prefix="harness-kind-") as work:
            yield Path(work)

    def _make_ca(self, work: Path) -> dict[str, bytes] | None:
        """A fresh mesh root (local platform's MeshCA, Citadel's role) as Istio's cacerts; None in a dry run."""
        if self.runner.dry_run:
            return None
        from harness.pki import MeshCA

        MeshCA.create(work / "mesh-ca")
        return {name: (work / "mesh-ca" / "ca" / name).read_bytes() for name in render.CACERTS_FILES}

    def _make_external_ca(self, work: Path) -> render.ExternalAiTls | None:
        """A fresh "external" CA (as the local platform makes for its external-ai-api) and its server
        certificate for api.openai.com; None in a dry run."""
        if self.runner.dry_run:
            return None
        from harness.pki import MeshCA

        server = MeshCA.create(work / "external-ca").issue_server(render.EXTERNAL_AI_HOST)
        return render.ExternalAiTls(cert_chain=server.cert_chain_path.read_bytes(), key=server.key_path.read_bytes(),
                                    root=server.root_cert_path.read_bytes())

    def _join_clusters(self, addresses: dict[str, str]) -> None:
        """Multi-primary, multi-network: every istiod gets a remote secret for every other cluster's API,
        at its node's address on the kind network (the kubeconfig's 127.0.0.1 port is the host's only)."""
        for source in self.specs:
            server = f"https://{addresses[source.name]}:6443"
            secret = self._run("istioctl", "create-remote-secret", "--context", source.context, "--name", source.name,
                               f"--server={server}")
            for target in self.specs:
                if target is not source:
                    self._run("kubectl", "--context", target.context, "apply", "-f", "-", stdin=secret.stdout,
                              summary=f"remote secret of {source.name} (output of istioctl create-remote-secret)")

    def _wait_ready(self, *, existing_cluster: bool = False) -> None:
        timeout = f"--timeout={self.settings.kind_ready_timeout_s:.0f}s"
        for spec in self.specs:
            self._run("kubectl", "--context", spec.context, "-n", NAMESPACE, "wait", "--for=condition=Available",
                      "deployment", "--all", timeout, timeout_s=self.settings.kind_ready_timeout_s + 30)
            self._run("kubectl", "--context", spec.context, "-n", EXTERNAL_NAMESPACE, "wait",
                      "--for=condition=Available", f"deployment/{render.EXTERNAL_AI_DEPLOYMENT}", timeout,
                      timeout_s=self.settings.kind_ready_timeout_s + 30)
            if spec.primary and not existing_cluster:
                self._run("kubectl", "--context", spec.context, "-n", "istio-system", "wait",
                          "--for=condition=Available", "deployment/prometheus", "deployment/jaeger", timeout,
                          timeout_s=self.settings.kind_ready_timeout_s + 30)
        urls = endpoints(self.settings)
        self._probe(f"{urls.prometheus_url}/-/ready", None, "Prometheus")
        self._probe(f"{urls.ingress_url}/health", INGRESS_HOST, "the ingress gateway")

    def _probe(self, url: str, host: str | None, what: str) -> None:
        """Poll until `url` answers over HTTP at all (Prometheus: 200), bounded by PROBE_TIMEOUT_S."""
        if self.runner.dry_run:
            if self.recorder is not None:
                self.recorder.add(f"HTTP GET {url}" + (f" (Host: {host})" if host else ""))
            return
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(url, headers={"Host": host} if host else None, timeout=5.0,
                                     trust_env=False)  # loopback: never through a proxy
                if host is not None or response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(PROBE_INTERVAL_S)
        raise ReadinessTimeout(f"{what} did not answer at {url} within {PROBE_TIMEOUT_S:g} s ({last}); check "
                               "the port mappings in kind-config/ and `kubectl get pods -A`")

    # -- down --------------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Delete every cluster the harness makes under its name that exists, one cluster or three (an
        `up --clusters 3` is taken down by a plain `down`). With no_create, the harness's namespaces only."""
        if self.settings.no_create:
            spec = self.specs[0]
            self._run("kubectl", "--context", spec.context, "delete", "namespace", *render.HARNESS_NAMESPACES,
                      "--ignore-not-found", timeout_s=self.settings.kind_ready_timeout_s)
            return []
        names = [self.settings.cluster_name] + [f"{self.settings.cluster_name}-{region}" for region in REGIONS]
        found = set(self._run("kind", "get", "clusters").stdout.split())
        # A dry run finds nothing: it shows the deletion of the clusters of the current setting.
        doomed = [name for name in names if name in found] or ([s.name for s in self.specs] if self.runner.dry_run
                                                               else [])
        for name in doomed:
            self._run("kind", "delete", "cluster", "--name", name)
        return doomed

    # -- a cluster the user already has ---------------------------------------------------------------

    def _install_existing(self, image: str) -> None:
        """--no-create: Istio only when absent (another minor version is reported, not replaced), the
        image loaded only into a kind cluster, everything else in the harness's namespaces."""
        (spec,) = self.specs
        kind_name = spec.context.removeprefix("kind-") if spec.context.startswith("kind-") else None
        try:
            kind_clusters = self._run("kind", "get", "clusters").stdout.split() if kind_name else []
        except MissingDependencyError:  # no kind on this host: the cluster is not one of its kind clusters
            kind_clusters = []
        if kind_name and kind_name in kind_clusters:
            self._run("docker", "build", "-t", image, "-f", str(self.settings.dockerfile),
                      str(self.settings.project_dir))
            self._load_image(image, (dataclasses.replace(spec, name=kind_name),))
        else:
            self.report["image_load"] = (f"not loaded: {spec.context} is no kind cluster on this host; its nodes "
                                         f"must be able to pull {image}")
            if self.recorder is not None:
                self.recorder.add(f"(image {image} {self.report['image_load']})")
        istio = existing.installed_istio(self.runner, spec)
        if istio.image is None:
            self.report["istio"] = {"found": None, "installed": self.settings.istio_version}
            with self._workdir() as work:
                self._apply(spec, [render.istio_system_namespace(spec), render.cacerts_secret(self._mesh_ca(work))])
                self._istioctl_install(spec, work / f"istio-operator-{spec.name}.yaml", render.istio_operator(
                    self.settings.profile, spec, self.settings.istio_version))
        else:
            note = ("the same minor version: kept as it is" if istio.same_minor(self.settings.istio_version) else
                    f"another minor version than the harness's {self.settings.istio_version}: NOT replaced; "
                    "the mesh's resources are validated against 1.30.3, behaviour may differ")
            self.report["istio"] = {"found": istio.version or istio.image, "installed": None, "note": note}
        with self._workdir() as work:
            external_tls = self._external_ca(work)
        docs = (render.external_ai_documents(external_tls) + render.harness_namespace_addons()
                + render.workload_documents(spec, external_tls.root if external_tls else None))
        outside = [f"{doc['kind']}/{doc['metadata']['name']}" for doc in docs
                   if render.namespaced(doc) not in render.HARNESS_NAMESPACES
                   or (doc["kind"] == "Namespace" and doc["metadata"]["name"] not in render.HARNESS_NAMESPACES)]
        if outside:
            raise PlatformError(f"refusing to apply outside the harness's namespaces on {spec.context}: {outside}")
        self._apply(spec, docs)
        self._apply(spec, render.istio_documents())
        self._wait_ready(existing_cluster=True)
