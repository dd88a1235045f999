"""`up` and `down` of the kind platform: the ordered commands that build the clusters and the mesh.

Order of `up`: render and validate every document (nothing has run yet), preflight, build the sample
image, create the missing kind clusters, load the image, then per cluster the plug-in CA Secret and
Istio (plus, with three clusters, the east-west gateways and the remote secrets that join them into
one mesh), then Prometheus and Jaeger, the external AI API's stand-in (namespace external-ai), the
mesh's workloads and its Istio resources; last, wait until every Deployment is available and
Prometheus and the ingress answer on 127.0.0.1.

Two CAs are made at `up`, in a temporary directory gone when `up` returns: the mesh's (Istio's
cacerts) and a separate "external" one that stands in for the public CA behind api.openai.com (the
stand-in's server certificate; its root goes to the callers). A dry run shows placeholders instead.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.errors import ConfigError, HarnessError, PlatformError, ReadinessTimeout
from harness.platforms.kind import render
from harness.platforms.kind.commands import Command, CommandResult, CommandRunner, Recorder
from harness.platforms.kind.kube import FIELD_MANAGER
from harness.platforms.kind.preflight import Preflight, run_preflight
from harness.platforms.kind.validation import validate_kind_document
from harness.platforms.kind.settings import EXTERNAL_NAMESPACE, NAMESPACE, ClusterSpec, KindSettings

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

    # -- plan --------------------------------------------------------------------------------------

    def validate_everything(self) -> None:
        """Every kind config and document `up` will use, strictly validated before anything runs."""
        for spec in self.specs:
            validate_kind_document(render.kind_config(spec.config_file), source=spec.config_file)
            validate_kind_document(render.istio_operator(self.settings.profile, spec, self.settings.istio_version),
                                   source=render.KIND_MANIFESTS / "istio" / "control-plane.yaml")
            if self.settings.clusters > 1:
                validate_kind_document(render.eastwest_operator(spec),
                                       source=render.KIND_MANIFESTS / "istio" / "eastwest-gateway.yaml")
            for index, doc in enumerate([render.istio_system_namespace(spec), render.cacerts_secret()]
                                        + render.external_ai_documents() + render.workload_documents(spec)
                                        + render.addon_documents()):
                validate_kind_document(doc, source=f"rendered for cluster {spec.name}", index=index)
        for index, doc in enumerate(render.istio_documents()):  # the shipped ones, with the kind overlay
            validate_kind_document(doc, source="harness/mesh/manifests/istio (kind)", index=index)
        render.sample_image()

    # -- up ----------------------------------------------------------------------------------------

    def up(self) -> Preflight:
        self.validate_everything()
        preflight = run_preflight(self.runner, clusters=self.settings.clusters,
                                  min_memory_gib_per_cluster=self.settings.min_memory_gib_per_cluster,
                                  istio_version=self.settings.istio_version)
        image = render.sample_image()
        self._run("docker", "build", "-t", image, "-f", str(self.settings.dockerfile), str(self.settings.project_dir))
        existing = set(self._run("kind", "get", "clusters").stdout.split())
        try:
            for spec in self.specs:
                if spec.name not in existing:
                    self._create_cluster(spec)
            self._install(image)
        except HarnessError as exc:
            names = ", ".join(spec.name for spec in self.specs)
            raise PlatformError(f"{exc}\n(the kind cluster(s) {names} are left as they are for inspection; "
                                "`harness down --platform kind` deletes them)") from exc
        return preflight

    def _install(self, image: str) -> None:
        """Everything inside the clusters, in order (see the module docstring)."""
        for spec in self.specs:
            self._run("kind", "load", "docker-image", image, "--name", spec.name)
        with self._workdir() as work:
            cacerts = render.cacerts_secret(self._make_ca(work))
            external_tls = self._make_external_ca(work)
            for spec in self.specs:
                self._apply(spec, [render.istio_system_namespace(spec), cacerts])
                self._istioctl_install(spec, work / f"istio-operator-{spec.name}.yaml",
                                       render.istio_operator(self.settings.profile, spec, self.settings.istio_version))
                if self.settings.clusters > 1:
                    self._istioctl_install(spec, work / f"eastwest-{spec.name}.yaml", render.eastwest_operator(spec))
        if self.settings.clusters > 1:
            self._join_clusters()
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

    def _join_clusters(self) -> None:
        """Multi-primary, multi-network: every istiod gets a remote secret for every other cluster's API."""
        for source in self.specs:
            server = f"https://{source.name}-control-plane:6443"  # the API server on kind's Docker network
            secret = self._run("istioctl", "create-remote-secret", "--context", source.context, "--name", source.name,
                               f"--server={server}")
            for target in self.specs:
                if target is not source:
                    self._run("kubectl", "--context", target.context, "apply", "-f", "-", stdin=secret.stdout,
                              summary=f"remote secret of {source.name} (output of istioctl create-remote-secret)")

    def _wait_ready(self) -> None:
        timeout = f"--timeout={self.settings.kind_ready_timeout_s:.0f}s"
        for spec in self.specs:
            self._run("kubectl", "--context", spec.context, "-n", NAMESPACE, "wait", "--for=condition=Available",
                      "deployment", "--all", timeout, timeout_s=self.settings.kind_ready_timeout_s + 30)
            self._run("kubectl", "--context", spec.context, "-n", EXTERNAL_NAMESPACE, "wait",
                      "--for=condition=Available", f"deployment/{render.EXTERNAL_AI_DEPLOYMENT}", timeout,
                      timeout_s=self.settings.kind_ready_timeout_s + 30)
            if spec.primary:
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
        """Delete every cluster of this setting (kind deletes a missing cluster without error)."""
        for spec in self.specs:
            self._run("kind", "delete", "cluster", "--name", spec.name)
        return [spec.name for spec in self.specs]
