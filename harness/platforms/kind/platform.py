"""The kind platform as the CLI and the chaos actions see it: the Platform protocol over kind clusters.

Chaos acts through the Kubernetes API (kube.py) in namespace parallel-ai only, on kind-* contexts
only (unless allow_context names another), within a blast-radius limit. The API guard also admits
external-ai, the namespace of the external AI API's stand-in, which the platform only reads (is_up).
Installation goes through commands (install.py). With dry_run every command and API call is recorded
instead (`steps`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from harness import environment
from harness.errors import ConfigError, HarnessError, PlatformError
from harness.mesh.loader import declared_topology, load_documents, undeclared
from harness.platforms.kind import objects, render
from harness.platforms.kind.appscripts import APP_ARGV, APP_KILL_SCRIPT, KNOBS_GET_SCRIPT, KNOBS_SCRIPT
from harness.platforms.kind.commands import Command, CommandResult, CommandRunner, KubeconfigRunner, Recorder, \
    RecordingRunner, SubprocessRunner
from harness.platforms.kind.install import INGRESS_HOST, Installer, endpoints
from harness.platforms.kind.istio_batch import TELEMETRY, applies_telemetry, check_deletable, \
    check_namespace_wide_telemetry, check_workload_telemetry
from harness.platforms.kind.kube import DEPLOYMENTS, PODS, ClientKube, KubeApi, NamespaceGuard, RecordingKube, \
    Resource
from harness.platforms.kind.load import CONFIGMAP, MASTER_JOB, MASTER_SERVICE, WORKER_JOB, InClusterLoad, \
    locust_documents
from harness.platforms.kind.pods import APP_CONTAINER, DeclaredDeployment, declared_deployments, is_ready, \
    live_pods, parse_slot, rows
from harness.platforms.kind.safety import check_blast_radius, check_context, context_server
from harness.platforms.kind.validation import validate_kind_document
from harness.platforms.kind.settings import EXTERNAL_NAMESPACE, NAMESPACE, ClusterSpec, KindSettings
from harness.platforms.model import CLEARED_KNOBS
from harness.platforms.telemetry import TelemetryPipeline, duration_s
from harness.state import default_state_dir

KubeFactory = Callable[[str], KubeApi]
HELD_ANNOTATION = "harness.parallel-ai/held-from-replicas"  # a Deployment's replicas before `hold` scaled it
ENVOY_DEFAULT_STATS_FLUSH_S = 5.0  # Envoy's stats_flush_interval when the bootstrap sets none


class KindPlatform:
    name = "kind"

    def __init__(self, settings: KindSettings, *, runner: CommandRunner | None = None,
                 kube_factory: KubeFactory | None = None, recorder: Recorder | None = None) -> None:
        self._runner_given, self._factory_given, self._recorder_given = runner, kube_factory, recorder
        self._configure(settings)

    @classmethod
    def from_env(cls, **overrides: Any) -> "KindPlatform":
        return cls(KindSettings.from_env(**overrides))

    def _configure(self, settings: KindSettings) -> None:
        self.settings = settings
        self.recorder = self._recorder_given or (Recorder() if settings.dry_run else None)
        if settings.dry_run:
            recorder = self.recorder
            self.runner: CommandRunner = self._runner_given or RecordingRunner(recorder)
            self._factory: KubeFactory = self._factory_given or (lambda context: RecordingKube(recorder, context))
        else:
            self.runner = self._runner_given or SubprocessRunner()
            self._factory = self._factory_given or (
                lambda context: ClientKube.from_kubeconfig(context, settings.kubeconfig))
        if settings.kubeconfig is not None:  # kind, kubectl and istioctl read the file the API client reads
            self.runner = KubeconfigRunner(self.runner, str(settings.kubeconfig))
        self._kubes: dict[str, KubeApi] = {}
        self.installer = Installer(settings, self.runner, self.recorder)
        self.deleted_clusters: list[str] = []

    @property
    def ledger_dir(self) -> Path:
        """The fault ledger (harness.chaos.ledger) of these clusters, in the machine's harness state folder
        (HARNESS_STATE_DIR, else $XDG_STATE_HOME/mesh-harness); kept across `down` of the local mesh."""
        root = environment.get_path("HARNESS_STATE_DIR") or default_state_dir()
        return root / f"kind-ledger-{self.settings.cluster_name}"

    @property
    def dry_run(self) -> bool:
        return self.settings.dry_run

    @property
    def steps(self) -> list[str]:
        """What a dry run would have done so far, in order."""
        return list(self.recorder.steps) if self.recorder is not None else []

    def _guard(self, context: str) -> None:
        """The context guard (safety.check_context): by name and by the API server address in the kubeconfig."""
        check_context(context, self.settings.allow_context, context_server(context, self.settings.kubeconfig))

    def _kube(self, spec: ClusterSpec) -> KubeApi:
        self._guard(spec.context)  # before any client exists
        if spec.context not in self._kubes:
            self._kubes[spec.context] = NamespaceGuard(self._factory(spec.context), NAMESPACE, EXTERNAL_NAMESPACE)
        return self._kubes[spec.context]

    def _check_contexts(self) -> None:
        for spec in self.settings.cluster_specs():
            self._guard(spec.context)

    # -- lifecycle --------------------------------------------------------------------------------

    def up(self, *, profile: str | None = None, clusters: int | None = None, allow_context: str | None = None,
           dry_run: bool | None = None) -> dict[str, Any]:
        """Create the clusters and the mesh (install.py) and return the status once everything is ready."""
        changes = {k: v for k, v in {"profile": profile, "clusters": clusters, "allow_context": allow_context,
                                     "dry_run": dry_run}.items() if v is not None}
        if changes:
            self._configure(KindSettings(**{**self.settings.__dict__, **changes}))
        self._check_contexts()
        if self.is_up():
            status = self.status()
            status["already_up"] = True
            return status
        preflight = self.installer.up()
        status = self.status()
        status["preflight"] = preflight.as_dict()
        status["install"] = dict(self.installer.report)
        if self.settings.dry_run:
            status["dry_run"] = self.steps
        return status

    def down(self, *, clusters: int | None = None, dry_run: bool | None = None) -> list[int]:
        """Delete the kind clusters. No process of the harness runs for kind, so no PIDs: see deleted_clusters."""
        changes = {k: v for k, v in {"clusters": clusters, "dry_run": dry_run}.items() if v is not None}
        if changes:
            self._configure(KindSettings(**{**self.settings.__dict__, **changes}))
        self.deleted_clusters = self.installer.down()
        self._kubes.clear()
        return []

    def describe_down(self, stopped: list[int]) -> str:
        return f"deleted kind cluster(s): {', '.join(self.deleted_clusters) or 'none'}"

    def is_up(self) -> bool:
        """Every cluster's API answers and every Deployment of the mesh, and the external AI API's
        stand-in, exists in it (a cluster made before the stand-in existed is not up: `up` completes it)."""
        try:
            for spec in self.settings.cluster_specs():
                kube = self._kube(spec)
                found = {d["metadata"]["name"] for d in kube.list(DEPLOYMENTS, NAMESPACE)}
                wanted = {d.name for d in declared_deployments() if d.region in spec.regions}
                if not wanted <= found:
                    return False
                if kube.get(DEPLOYMENTS, EXTERNAL_NAMESPACE, render.EXTERNAL_AI_DEPLOYMENT) is None:
                    return False
        except HarnessError:
            return False
        return True

    def status(self) -> dict[str, Any]:
        urls = endpoints(self.settings)
        pods = self.pods()
        return {
            "platform": "kind", "profile": self.settings.profile, "up": bool(pods) and all(p["ready"] for p in pods),
            "clusters": [spec.name for spec in self.settings.cluster_specs()],
            "contexts": [spec.context for spec in self.settings.cluster_specs()],
            "ingress_url": urls.ingress_url, "ingress_host": INGRESS_HOST, "prometheus_url": urls.prometheus_url,
            "pods": pods,
        }

    def telemetry_pipeline(self) -> TelemetryPipeline:
        """The periods of the Prometheus this platform deploys (its ConfigMap: scrape every 2 s) and of
        Istio's proxies: Istio's bootstrap template (istio/istio tools/packaging/common/envoy_bootstrap.json)
        sets no stats_flush_interval, so Envoy's default of 5 s applies. No recording rule sits in the
        path: Istio's proxies serve the istio_* series themselves."""
        config_map = next(d for d in render.template("addons/prometheus.yaml")
                          if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "prometheus")
        config = yaml.safe_load(config_map["data"]["prometheus.yml"])["global"]
        return TelemetryPipeline(stats_flush_s=ENVOY_DEFAULT_STATS_FLUSH_S,
                                 scrape_s=duration_s(config["scrape_interval"], field="scrape_interval"),
                                 rule_s=0.0)

    # -- pods ---------------------------------------------------------------------------------------

    def pods(self) -> list[dict[str, Any]]:
        """Every slot of every mesh Deployment, from one pod listing per cluster."""
        result: list[dict[str, Any]] = []
        for spec in self.settings.cluster_specs():
            listed = self._kube(spec).list(PODS, NAMESPACE)
            for deployment in declared_deployments():
                if deployment.region in spec.regions:
                    result += rows(deployment, listed, spec.context)
        return result

    def select_pods(self, *, app: str | None = None, version: str | None = None,
                    region: str | None = None) -> list[dict[str, Any]]:
        """Live pods chosen by label selector (app, version, istio-locality), asked of the API server."""
        selector = {key: value for key, value in (("app", app), ("version", version), ("istio-locality", region))
                    if value is not None}
        specs = [self.settings.cluster_of_region(region)] if region else list(self.settings.cluster_specs())
        return [pod for spec in specs for pod in self._kube(spec).list(PODS, NAMESPACE, selector)]

    def _slot(self, pod: str) -> tuple[DeclaredDeployment, int, ClusterSpec]:
        parsed = parse_slot(pod)
        if parsed is None:  # perhaps the live name of a pod
            for row in self.pods():
                if row["pod_name"] == pod:
                    parsed = parse_slot(row["name"])
                    break
        if parsed is None:
            names = ", ".join(row["name"] for row in self.pods())
            raise ConfigError(f"no pod {pod!r}; pods: {names}", field="POD")
        deployment, index = parsed
        return deployment, index, self.settings.cluster_of_region(deployment.region)

    def _live_pod(self, deployment: DeclaredDeployment, index: int, spec: ClusterSpec) -> dict | None:
        """The pod in a slot, found by the Deployment's label selector."""
        alive = live_pods(deployment, self._kube(spec).list(PODS, NAMESPACE, dict(deployment.selector)))
        return alive[index] if index < len(alive) else None

    def _check_blast(self, deployment: DeclaredDeployment, slot_ready: bool) -> None:
        """Refuse to take one more pod of a service down past max_percent (skipped in a dry run: no state)."""
        if self.settings.dry_run or not slot_ready or self.settings.max_percent >= 100:
            return
        of_service = [p for p in self.pods() if p["service"] == deployment.service]
        down = sum(1 for p in of_service if not p["ready"])
        check_blast_radius(deployment.service, len(of_service), down + 1, self.settings.max_percent)

    def kill(self, pod: str, *, app_only: bool = False) -> dict[str, Any]:
        """Delete the pod now (grace 0; its ReplicaSet makes a new one), or with app_only SIGKILL its app's
        process (see APP_KILL_SCRIPT; kubelet restarts the container, the sidecar stays)."""
        deployment, index, spec = self._slot(pod)
        live = self._live_pod(deployment, index, spec)
        if live is None and not self.settings.dry_run:
            raise ConfigError(f"pod {pod} has no running pod to kill (its Deployment {deployment.name} is scaled "
                              "down or the pod is being replaced)", field="POD")
        name = live["metadata"]["name"] if live else f"<{deployment.slot(index)}>"  # a dry run knows no live name
        self._check_blast(deployment, live is not None and is_ready(live))
        if app_only:
            self.runner.run(Command(("kubectl", "--context", spec.context, "-n", NAMESPACE, "exec", name, "-c",
                                     APP_CONTAINER, "--", "python", "-c", APP_KILL_SCRIPT, *APP_ARGV), timeout_s=60))
        else:
            self._kube(spec).delete(PODS, NAMESPACE, name, grace_period_s=0)
        return {"pod": deployment.slot(index), "pod_name": name, "app_only": app_only, "killed_pids": {},
                "deleted": not app_only, "at": time.time()}

    def hold(self, pod: str, *, down: bool) -> dict[str, Any]:
        """Keep a pod's slot down by scaling its Deployment below it (down), or back up to where it was.
        The replicas before the first hold are kept in an annotation, so a release works from any process."""
        deployment, index, spec = self._slot(pod)
        kube = self._kube(spec)
        current = kube.get(DEPLOYMENTS, NAMESPACE, deployment.name)
        annotations = ((current or {}).get("metadata") or {}).get("annotations") or {}
        replicas = int(((current or {}).get("spec") or {}).get("replicas", deployment.replicas))
        original = int(annotations.get(HELD_ANNOTATION, replicas))
        if current is None and not self.settings.dry_run:
            raise PlatformError(f"Deployment {deployment.name} does not exist in {spec.context}; is the mesh up?")
        if down:
            wanted = min(replicas, index)
            if wanted < replicas:
                live = self._live_pod(deployment, index, spec)
                self._check_blast(deployment, live is not None and is_ready(live))
        else:
            wanted = deployment.replicas if current is None else min(max(replicas, index + 1), original)
        if current is None or wanted != replicas:
            keep = str(original) if wanted < original else None
            kube.patch(DEPLOYMENTS, NAMESPACE, deployment.name,
                       {"metadata": {"annotations": {HELD_ANNOTATION: keep}}, "spec": {"replicas": wanted}})
        return {"pod": deployment.slot(index), "held": down, "deployment": deployment.name, "replicas": wanted,
                "context": spec.context}

    def isolate_region(self, region: str, *, isolated: bool = True) -> dict[str, Any]:
        """Three clusters only: close (or reopen) a region's east-west gateway to cross-network traffic by
        removing (or re-applying) its cross-cluster-gateway Gateway, in parallel-ai."""
        if self.settings.clusters == 1:
            raise ConfigError("isolating a region needs --clusters 3 (one cluster has no east-west gateway); "
                              "use fail_region, which scales the region's Deployments to zero", field="region")
        spec = self.settings.cluster_of_region(region)
        kube = self._kube(spec)
        for doc in render.multicluster_documents():
            if doc["kind"] != "Gateway":
                continue
            resource = objects.istio_resource(doc, source="multicluster/east-west.yaml")
            if isolated:
                kube.delete(resource, NAMESPACE, doc["metadata"]["name"])
            else:
                kube.apply(resource, NAMESPACE, objects.in_namespace(doc, source="multicluster/east-west.yaml"))
        return {"region": region, "isolated": isolated, "context": spec.context}

    # -- Istio resources --------------------------------------------------------------------------

    def apply(self, files: list[Path], *, delete: bool = False) -> dict[str, Any]:
        docs = [doc for doc, _ in load_documents(files)]  # validated here, so errors name the user's file
        return self.apply_documents(docs, delete=delete, source=", ".join(str(f) for f in files))

    def apply_documents(self, documents: list[dict[str, Any]], *, delete: bool = False,
                        source: str = "generated by the harness", missing_ok: bool = False) -> dict[str, Any]:
        """Server-side apply (or delete) Istio objects in parallel-ai, in every cluster (each istiod reads
        its own cluster's configuration). Every document is validated and the batch checked against every
        cluster (istio_batch: namespace-wide Telemetry, objects a delete would not find) before the first
        call that changes anything. With missing_ok a delete skips, in each cluster, what that cluster
        does not have (kubectl delete --ignore-not-found), listed under `not_found`."""
        planned = self._plan(documents, source)
        batch = [doc for _, doc in planned]
        if applies_telemetry(batch, delete=delete):
            telemetry = next(resource for resource, doc in planned if doc["kind"] == TELEMETRY)
            workloads = declared_topology(validate=False).workloads()
            for spec in self.settings.cluster_specs():
                live = [objects.as_manifest(obj, telemetry, TELEMETRY)
                        for obj in self._kube(spec).list(telemetry, NAMESPACE)]
                check_namespace_wide_telemetry(batch, live, context=spec.context, source=source)
                check_workload_telemetry(batch, live, workloads, context=spec.context, source=source)
        if delete and not missing_ok:
            missing = [(doc, spec.context) for spec in self.settings.cluster_specs() for resource, doc in planned
                       if self._kube(spec).get(resource, NAMESPACE, doc["metadata"]["name"]) is None]
            if not self.settings.dry_run:  # a dry run reads nothing back: the GETs are its plan
                check_deletable(batch, missing, source=source)
        return self._send(planned, delete=delete, source=source)

    def _plan(self, documents: list[dict[str, Any]], source: str) -> list[tuple[Resource, dict[str, Any]]]:
        """Each document validated strictly, with its API resource, in parallel-ai (objects.in_namespace)."""
        planned = []
        for index, doc in enumerate(documents):
            validate_kind_document(doc, source=source, index=index)
            resource = objects.istio_resource(doc, source=source, index=index)
            planned.append((resource, objects.in_namespace(doc, source=source, index=index)))
        return planned

    def _send(self, planned: list[tuple[Resource, dict[str, Any]]], *, delete: bool, source: str) -> dict[str, Any]:
        started = time.monotonic()
        not_found = []  # a delete the API answered 404 (only reached with missing_ok)
        for spec in self.settings.cluster_specs():
            kube = self._kube(spec)
            for resource, doc in planned:
                if not delete:
                    kube.apply(resource, NAMESPACE, doc)
                elif not kube.delete(resource, NAMESPACE, doc["metadata"]["name"]):
                    not_found.append(f"{doc['kind']}/{doc['metadata']['name']} in {spec.context}")
        names = [f"{doc['kind']}/{doc['metadata']['name']}" for _, doc in planned]
        result = {"deleted" if delete else "applied": names, "source": source,
                  "api_ms": round((time.monotonic() - started) * 1000, 2),
                  "acknowledged_ms": None}  # proxies' acknowledgement is not observed on kind
        if delete:
            result["not_found"] = not_found
        return result

    def resources(self) -> list[dict[str, Any]]:
        """The Istio objects in parallel-ai now (primary cluster), as manifests, for the kinds the mesh uses."""
        kube = self._kube(self.settings.cluster_specs()[0])
        return [objects.as_manifest(obj, resource, kind) for resource, kind in self._mesh_kinds()
                for obj in kube.list(resource, NAMESPACE)]

    def _mesh_kinds(self) -> list[tuple[Resource, str]]:
        """The API resource and kind of every Istio kind the mesh declares (what `resources` reads, what the
        audit compares and what `reset` restores)."""
        kinds = {(doc["apiVersion"], doc["kind"]) for doc in render.istio_documents()}
        return [(objects.istio_resource({"apiVersion": api_version, "kind": kind}, source="the mesh"), kind)
                for api_version, kind in sorted(kinds)]

    def declared_resources(self) -> list[dict[str, Any]]:
        """The Istio resources the mesh declares in parallel-ai."""
        docs = render.istio_documents() + (render.multicluster_documents() if self.settings.clusters > 1 else [])
        return [doc for doc in docs if (doc.get("metadata") or {}).get("namespace", NAMESPACE) == NAMESPACE]

    def holds(self) -> list[str]:
        """Deployments scaled below their declared replicas (a held pod, a failed region, a scale-down)."""
        found = []
        for spec, _, deployment, live in self._live_deployments():
            live = live or {}
            replicas = int((live.get("spec") or {}).get("replicas", deployment.replicas))
            held = ((live.get("metadata") or {}).get("annotations") or {}).get(HELD_ANNOTATION)
            if replicas != deployment.replicas or held:
                found.append(f"Deployment {deployment.name} in {spec.context} has {replicas} replicas, "
                             f"declared {deployment.replicas}")
        return found

    def restore_replicas(self) -> list[str]:
        """Every Deployment of the mesh back to its declared replicas, the hold annotation removed."""
        restored = []
        for spec, kube, deployment, live in self._live_deployments():
            if live is None and not self.settings.dry_run:
                raise PlatformError(f"Deployment {deployment.name} does not exist in {spec.context}; "
                                    "is the mesh up?")
            replicas = int(((live or {}).get("spec") or {}).get("replicas", -1))
            held = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(HELD_ANNOTATION)
            if live is None or replicas != deployment.replicas or held:
                kube.patch(DEPLOYMENTS, NAMESPACE, deployment.name,
                           {"metadata": {"annotations": {HELD_ANNOTATION: None}},
                            "spec": {"replicas": deployment.replicas}})
                restored.append(f"Deployment/{deployment.name}")
        return restored

    def _live_deployments(self) -> Iterator[tuple[ClusterSpec, KubeApi, DeclaredDeployment, dict[str, Any] | None]]:
        """Each declared Deployment in each cluster that holds its region, with the cluster's API and the
        live Deployment (None when it does not exist)."""
        for spec in self.settings.cluster_specs():
            kube = self._kube(spec)
            for deployment in declared_deployments():
                if deployment.region in spec.regions:
                    yield spec, kube, deployment, kube.get(DEPLOYMENTS, NAMESPACE, deployment.name)

    def get_knobs(self, pod: str) -> dict[str, Any]:
        """GET /admin/knobs of a pod's app, from inside its pod (as set_knobs does)."""
        deployment, index, spec = self._slot(pod)
        live = self._live_pod(deployment, index, spec)
        if live is None:
            raise ConfigError(f"pod {pod} has no running pod to read knobs from", field="pod")
        result = self.runner.run(Command(
            ("kubectl", "--context", spec.context, "-n", NAMESPACE, "exec", live["metadata"]["name"], "-c",
             APP_CONTAINER, "--", "python", "-c", KNOBS_GET_SCRIPT % deployment.app_port), timeout_s=30))
        return {} if self.runner.dry_run else json.loads(result.stdout)

    def reset(self) -> dict[str, Any]:
        """Back to the declared mesh, as the local platform's reset (which pushes the declared model, so
        whatever the mesh does not declare is gone): in every cluster, each Istio object in parallel-ai of
        the kinds the mesh declares that the mesh does not declare is deleted (harness-fault-* and policy
        faults, a Telemetry left from before custom-metrics absorbed tracing-config, a user's own), then
        the declared resources are re-applied; Deployments at their declared replicas (holds and
        scale-downs undone) and every running app's fault knobs cleared. `deleted` names what went."""
        declared = self.declared_resources()
        source = "harness/mesh/manifests/istio"
        planned = self._plan(declared, source)  # validated before the first deletion
        # After the deletions every Telemetry left is declared, so the declared set alone is the final one.
        check_namespace_wide_telemetry([doc for _, doc in planned], [], context="the declared mesh", source=source)
        deleted = []
        for spec in self.settings.cluster_specs():
            kube = self._kube(spec)
            where = f" in {spec.context}" if self.settings.clusters > 1 else ""
            for resource, kind in self._mesh_kinds():
                live = [objects.as_manifest(obj, resource, kind) for obj in kube.list(resource, NAMESPACE)]
                for doc in undeclared(live, declared):
                    kube.delete(resource, NAMESPACE, doc["metadata"]["name"])
                    deleted.append(f"{kind}/{doc['metadata']['name']}{where}")
        applied = self._send(planned, delete=False, source=source)["applied"]
        restored = self.restore_replicas()
        cleared, replaced = [], []
        for row in self.pods():
            if row["ready"]:  # a pod starting now (a restored replica) starts with cleared knobs
                (cleared if self._clear_knobs(row) else replaced).append(row["name"])
        return {"reset": True, "applied": applied, "deleted": deleted, "replicas_restored": restored,
                "knobs_cleared": cleared, "replaced_meanwhile": replaced}

    def _clear_knobs(self, row: dict[str, Any]) -> bool:
        """Clear the knobs of the pod a `pods()` row lists, by its name (not its slot: a pod deleted meanwhile
        shifts the slots); False when that pod went away meanwhile (gone or being deleted: the app of its
        replacement starts with cleared knobs). A failure on a pod that is still there is raised."""
        deployment, _, spec = self._slot(row["name"])
        name = row["pod_name"]  # a ready row has a pod
        try:
            self._put_knobs(spec, deployment, name, row["name"], CLEARED_KNOBS)
        except PlatformError:
            still = self._kube(spec).get(PODS, NAMESPACE, name)
            if still is not None and not still["metadata"].get("deletionTimestamp"):
                raise
            return False
        return True

    # -- app knobs ------------------------------------------------------------------------------------

    def set_knobs(self, pod: str, **values: Any) -> dict[str, Any]:
        """PUT /admin/knobs on the pod's app (latency_ms, error_rate, error_status, hang), from inside its pod."""
        deployment, index, spec = self._slot(pod)
        live = self._live_pod(deployment, index, spec)
        if live is None and not self.settings.dry_run:
            raise ConfigError(f"pod {pod} has no running pod to set knobs on", field="pod")
        name = live["metadata"]["name"] if live else f"<{deployment.slot(index)}>"
        return self._put_knobs(spec, deployment, name, pod, values)

    def _put_knobs(self, spec: ClusterSpec, deployment: DeclaredDeployment, name: str, pod: str,
                   values: dict[str, Any]) -> dict[str, Any]:
        """PUT /admin/knobs on the app of the pod called `name` (slot `pod`, for messages)."""
        result = self.runner.run(Command(
            ("kubectl", "--context", spec.context, "-n", NAMESPACE, "exec", name, "-c", APP_CONTAINER, "--",
             "python", "-c", KNOBS_SCRIPT % deployment.app_port, json.dumps(values, sort_keys=True)), timeout_s=30))
        if self.runner.dry_run:
            return dict(values)
        status, _, body = result.stdout.strip().partition("\n")
        if status.strip() == "400":
            try:
                message = json.loads(body).get("error", body)
            except ValueError:
                message = body
            raise ConfigError(str(message), field="knobs")
        if not status.strip().startswith("2"):
            raise PlatformError(f"cannot set {values} on {pod} ({name}): HTTP {status.strip()}: {body[:300]}")
        return json.loads(body)

    # -- in-cluster load ---------------------------------------------------------------------------------

    @property
    def in_cluster(self) -> bool:
        """Whether `run` puts its Locust into the cluster (`--in-cluster`; harness/load/_in_cluster.py)."""
        return self.settings.in_cluster

    def start_in_cluster_load(self, load: InClusterLoad) -> dict[str, Any]:
        """Apply the run's Locust Jobs, Service and ConfigMap (load.py) in parallel-ai of the primary cluster."""
        docs = locust_documents(load)
        for index, doc in enumerate(docs):
            validate_kind_document(doc, source="harness/mesh/manifests/kind/locust/locust.yaml", index=index)
        spec = self.settings.cluster_specs()[0]
        self._guard(spec.context)
        self.stop_in_cluster_load()  # a leftover of a killed run would mix its samples into this one
        self.runner.run(Command(("kubectl", "--context", spec.context, "apply", "--server-side",
                                 "--field-manager=harness", "--force-conflicts", "-f", "-"),
                                stdin=render.to_yaml(docs), stdin_summary=render.describe(docs), timeout_s=120))
        return {"workers": load.workers, "master": f"job/{MASTER_JOB}", "context": spec.context}

    def in_cluster_exec(self, target: str, script: str) -> CommandResult:
        """`sh -c script` in the Locust container of a pod (`job/locust-master` or a pod name); never raises
        on a non-zero exit: the caller reads returncode."""
        spec = self.settings.cluster_specs()[0]
        self._guard(spec.context)
        return self.runner.run(Command(("kubectl", "--context", spec.context, "-n", NAMESPACE, "exec", target, "-c",
                                        "locust", "--", "sh", "-c", script), timeout_s=120), check=False)

    def in_cluster_pods(self, role: str) -> list[str]:
        """The names of the in-cluster Locust pods of a role (master, worker), from the API server."""
        pods = self._kube(self.settings.cluster_specs()[0]).list(PODS, NAMESPACE, {"app": "locust", "role": role})
        return sorted(pod["metadata"]["name"] for pod in pods)

    def remove_probe_objects(self, objects: list[dict[str, str]]) -> None:
        """Delete a security probe's client Pod and Secret (harness.chaos.ledger kind `probe`)."""
        from harness.platforms.kind.probes import remove_objects

        remove_objects(self, objects)

    def stop_in_cluster_load(self) -> None:
        """Remove the Locust Jobs (their pods with them), Service and ConfigMap; absent ones are fine."""
        spec = self.settings.cluster_specs()[0]
        self._guard(spec.context)
        self.runner.run(Command(("kubectl", "--context", spec.context, "-n", NAMESPACE, "delete",
                                 f"job/{MASTER_JOB}", f"job/{WORKER_JOB}", f"service/{MASTER_SERVICE}",
                                 f"configmap/{CONFIGMAP}", "--ignore-not-found", "--cascade=foreground"),
                                timeout_s=120))
