"""The local control plane's state: declared and applied resources, live endpoints, xDS pushes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.errors import ConfigError, HarnessError
from harness.mesh.loader import (
    Located, MeshModel, build_model, check_deletable, merge_documents, resource_key, undeclared,
)
from harness.mesh.resources import NAMESPACE
from harness.mesh.topology import GATEWAY_LABELS, GATEWAY_NAME, GATEWAY_SERVICE_ACCOUNT, Pod
from harness.mesh.translate import (
    CertPaths, Endpoint, ExternalEndpoint, MeshState, ProxyConfig, ProxyNode, XdsWriter, translate_proxy,
)
from harness.mesh.translate.secrets import workload_secret
from harness.mesh.translate.telemetry import stats_definitions
from harness.mesh.translate.model import StatsInclusion, TraceCollector
from harness.mesh.translate.xds_files import WrittenFile
from harness.platforms.local import acks
from harness.platforms.local.private import app_socket
from harness.platforms.local.layout import GATEWAY_REGION, Layout

logger = logging.getLogger(__name__)

# Envoy's --drain-time-s for every proxy (launch.py): how long an updated listener's old filter chains
# keep their connections, and with them their access loggers' stats.
LISTENER_DRAIN_S = 2
# From a proxy taking an update to its old stats gone: the drain, plus the time to free the drained
# chain, with a margin. A push waits for the acknowledgements and counts from the last one.
STATS_SETTLE_S = LISTENER_DRAIN_S + 1.0
# Records are kept for this long, so that a run of any length sees every push made during it.
REDEFINITIONS_KEPT_S = 24 * 3600.0
REDEFINITIONS_MAX = 10_000


@dataclass
class PushRecord:
    """When the last push happened and which files it changed (for latency measurements)."""

    at: float = 0.0
    files: int = 0
    reason: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


class MeshController:
    """Pilot's role: turns the current resources and ready pods into every proxy's files.

    A change is translated for every proxy before any file is written, so a resource that the
    translator rejects leaves the running mesh exactly as it was.
    """

    def __init__(self, declared: MeshModel, layout: Layout, certs: dict[str, CertPaths],
                 external: dict[str, ExternalEndpoint], *, access_log: bool = False,
                 stats_inclusion: StatsInclusion = StatsInclusion(),
                 trace_collector: TraceCollector | None = None) -> None:
        self.declared = declared
        # None: the platform's own receiver on its planned port (launch passes the user's endpoint)
        self.trace_collector = trace_collector or TraceCollector("127.0.0.1", layout.trace_port)
        self.model = declared
        self.layout = layout
        self.certs = certs
        self.external = external
        self.access_log = access_log
        self.stats_inclusion = stats_inclusion
        self.ready: set[str] = set()
        self.nodes = {node.name: node for node in self._nodes()}
        self.writers = {name: XdsWriter(node) for name, node in self.nodes.items()}
        self.secrets: dict[str, dict[str, Any]] = {}
        self.load_certificates()
        self.last_push = PushRecord()
        self.acks = acks.AckWaiter()
        self._client: httpx.AsyncClient | None = None  # one for the daemon's life: a new one costs ~50 ms
        self._endpoint_push: asyncio.Handle | None = None
        self._pending_reasons: list[str] = []
        self._stats: dict[str, dict[str, str]] = {}  # proxy -> stats_definitions of its last push
        # proxy -> stat -> (definition, when it went): a stat dropped by one push still counts in the
        # draining chain, so one defined again differently soon after restarts it all the same
        self._gone: dict[str, dict[str, tuple[str, float]]] = {}
        # pushes that changed a stat some proxy already counted (newest last): see stats_definitions
        self.stats_redefinitions: list[dict[str, Any]] = []

    def _nodes(self) -> list[ProxyNode]:
        nodes = []
        for pod in self.model.topology.pods:
            ports = self.layout.pods[pod.name]
            nodes.append(ProxyNode(
                name=pod.name, kind="sidecar", namespace=pod.namespace, labels=pod.labels,
                region=pod.region, service_account=pod.service_account,
                certs=self.certs[pod.service_account], xds_dir=self.layout.proxy_dir(pod.name) / "xds",
                admin_port=ports.admin, inbound_port=ports.inbound, app_port=ports.app,
                outbound_port=ports.outbound, access_log=self.access_log, stats_inclusion=self.stats_inclusion,
                app_socket=app_socket(self.layout.state_dir, pod.name),
                path_normalization=self.layout.settings.path_normalization,
            ))
        nodes.append(ProxyNode(
            name=GATEWAY_NAME, kind="gateway", namespace=NAMESPACE, labels=GATEWAY_LABELS,
            region=GATEWAY_REGION, service_account=GATEWAY_SERVICE_ACCOUNT, certs=self.certs[GATEWAY_SERVICE_ACCOUNT],
            xds_dir=self.layout.proxy_dir(GATEWAY_NAME) / "xds", admin_port=self.layout.gateway_admin_port,
            gateway_ports={80: self.layout.settings.ingress_port}, access_log=self.access_log,
            stats_inclusion=self.stats_inclusion,
            path_normalization=self.layout.settings.path_normalization,
        ))
        return nodes

    def pods(self) -> tuple[Pod, ...]:
        return self.model.topology.pods

    def state(self, model: MeshModel | None = None) -> MeshState:
        model = model or self.model
        endpoints = {
            pod.name: Endpoint(pod=pod.name, address="127.0.0.1", port=self.layout.pods[pod.name].inbound,
                               ready=pod.name in self.ready)
            for pod in model.topology.pods
        }
        return MeshState(istio=model.istio, topology=model.topology, endpoints=endpoints,
                         external=self.external, secrets=self.secrets, trace_collector=self.trace_collector)

    def load_certificates(self) -> None:
        """Read every service account's certificate and key, at start and after each reissue; the
        next push hands them to the proxies through SDS."""
        self.secrets = {account: workload_secret(paths) for account, paths in self.certs.items()}

    def push(self, reason: str, model: MeshModel | None = None) -> int:
        """Translate for every proxy, then write what changed; returns the number of files."""
        return sum(len(files) for files in self._push(reason, model).values())

    def _push(self, reason: str, model: MeshModel | None) -> dict[str, list[WrittenFile]]:
        if self._endpoint_push is not None:  # this push carries the pending endpoint change too
            self._endpoint_push.cancel()
            self._endpoint_push = None
            reason = "; ".join([reason, *self._pending_reasons])
            self._pending_reasons = []
        state = self.state(model)
        configs = {name: translate_proxy(state, node) for name, node in self.nodes.items()}
        if model is not None:
            self.model = model
        changed = {name: self.writers[name].write(config) for name, config in configs.items()}
        self._note_redefined_stats(configs, reason)
        written = sum(len(files) for files in changed.values())
        self.last_push = PushRecord(at=time.time(), files=written, reason=reason,
                                    history=(self.last_push.history + [{"at": time.time(), "reason": reason,
                                                                        "files": written}])[-50:])
        return changed

    def _note_redefined_stats(self, configs: dict[str, ProxyConfig], reason: str) -> None:
        """Record a push that changed the definition of a stat a proxy already had (a Telemetry's tag
        overrides): those counters restart under new stat names, which the telemetry lag probe and the
        SLO windows must not measure across (harness/slo/lag.py, run/evaluation.py)."""
        at = time.time()
        redefined = []
        for name, config in configs.items():
            now, before = stats_definitions(config), self._stats.get(name, {})
            gone = {key: entry for key, entry in self._gone.get(name, {}).items() if at - entry[1] < STATS_SETTLE_S}
            gone.update((key, (value, at)) for key, value in before.items() if key not in now)
            earlier = {**{key: value for key, (value, _) in gone.items()}, **before}
            if any(key in now and now[key] != value for key, value in earlier.items()):
                redefined.append(name)
            self._stats[name] = now
            self._gone[name] = {key: entry for key, entry in gone.items() if key not in now}
        if redefined:
            kept = [r for r in self.stats_redefinitions if at - r["at"] < REDEFINITIONS_KEPT_S]
            self.stats_redefinitions = [*kept, {
                "at": at, "settled_at": at + STATS_SETTLE_S, "proxies": redefined, "reason": reason,
            }][-REDEFINITIONS_MAX:]

    def _settles_after_acknowledged(self, pushed_at: float) -> None:
        """A recorded push's old stats drain from when the proxies took it, not from when it was written."""
        acknowledged = time.time()
        for record in self.stats_redefinitions:
            if record["at"] >= pushed_at:
                record["settled_at"] = max(record["settled_at"], acknowledged + STATS_SETTLE_S)

    def file_subscriptions(self) -> int:
        """How many xDS files the proxies watch (LDS, CDS, every RDS, EDS and SDS): one inotify each."""
        state = self.state()
        total = 0
        for node in self.nodes.values():
            config = translate_proxy(state, node)
            total += 2 + len(config.routes) + len(config.secrets)
            total += sum(1 for c in config.clusters if c.get("type") == "EDS")
        return total

    def admin_urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{node.admin_port}" for name, node in self.nodes.items()}

    async def push_confirmed(self, reason: str, model: MeshModel | None) -> dict[str, Any]:
        """Push, then wait until every running proxy that got new files has taken them.

        A configuration that a proxy rejects is rolled back (the previous model is pushed again)
        and reported, so the mesh never stays half-applied.
        """
        previous = self.model
        if self._client is None:
            # verify=False: the admin URLs are plain http on 127.0.0.1, and a verifying context is
            # the expensive part of a client; trust_env=False: no proxy may see these requests.
            self._client = httpx.AsyncClient(timeout=2.0, verify=False, trust_env=False)
        started, pushed_at = time.monotonic(), time.time()
        changed = self._push(reason, model)
        try:
            await self.acks.wait(self._client, self.admin_urls(), changed,
                                 current=lambda proxy, path: self.writers[proxy].version_of(path))
        except HarnessError:
            self._push(f"rollback of {reason}", previous)
            raise
        finally:
            self._settles_after_acknowledged(pushed_at)
        acked_ms = (time.monotonic() - started) * 1000
        return {"files_written": sum(len(files) for files in changed.values()),
                "proxies_updated": sorted(n for n, files in changed.items() if files),
                "acknowledged_ms": round(acked_ms, 2), "pushed_at": self.last_push.at}

    async def close(self) -> None:
        if self._endpoint_push is not None:
            self._endpoint_push.cancel()
            self._endpoint_push = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def set_ready(self, pod: str, ready: bool) -> None:
        """Mark an endpoint; on the event loop the push comes right after the current callback.

        Events that arrive together (an app and its sidecar killed at once, a restart scheduled
        after an exit) then cost one push, and the supervisor finishes handling the event before
        the push runs. Without a running loop (scripts, tests) the push is immediate.
        """
        if (pod in self.ready) == ready:
            return
        (self.ready.add if ready else self.ready.discard)(pod)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.push(f"endpoint {pod} {'ready' if ready else 'not ready'}")
            return
        if self._endpoint_push is None:
            self._endpoint_push = loop.call_soon(self._push_endpoints)
        self._pending_reasons.append(f"endpoint {pod} {'ready' if ready else 'not ready'}")

    def _push_endpoints(self) -> None:
        self._endpoint_push = None
        reasons, self._pending_reasons = self._pending_reasons, []
        try:
            self._push("; ".join(reasons), None)
        except Exception:  # logged; the next endpoint event pushes the whole state again
            logger.exception("endpoint push failed (%s)", "; ".join(reasons))

    async def apply(self, documents: list[Located], *, delete: bool = False,
                    missing_ok: bool = False) -> dict[str, Any]:
        """Apply Istio resources live; Kubernetes workload changes need a new `up`. A delete of a resource
        the mesh lacks is refused unless missing_ok (kubectl --ignore-not-found: merge_documents skips it)."""
        for doc, file in documents:
            if doc.get("kind") in ("Deployment", "Service", "ServiceAccount", "Namespace"):
                raise ConfigError(f"{doc['kind']} {doc['metadata']['name']!r}: `apply` changes Istio "
                                  "resources of a running mesh; workload changes need `harness down` and "
                                  "`harness up`", file=file, field="kind")
        if delete and not missing_ok:
            check_deletable((doc for doc, _ in self.model.documents), documents)
        model = build_model(merge_documents(self.model.documents, documents, delete=delete))
        result = await self.push_confirmed("delete" if delete else "apply", model)
        return {"applied": [f"{d['kind']}/{d['metadata']['name']}" for d, _ in documents],
                "deleted": delete, **result}

    async def reset(self) -> dict[str, Any]:
        """Back to the declared resources; `deleted` names those the mesh had that it does not declare
        (a user's own, a fault's), as the kind platform's reset lists them."""
        gone = undeclared(self.resources(), (doc for doc, _ in self.declared.documents))
        deleted = [f"{kind}/{name}" + ("" if namespace == NAMESPACE else f" in {namespace}")
                   for kind, namespace, name in sorted(resource_key(doc) for doc in gone)]
        return {"reset": True, "deleted": deleted, **await self.push_confirmed("reset", self.declared)}

    def resources(self) -> list[dict[str, Any]]:
        return [doc for doc, _ in self.model.documents if "istio.io" in doc.get("apiVersion", "")]


def bootstrap_path(layout: Layout, proxy: str) -> Path:
    return layout.proxy_dir(proxy) / "bootstrap.json"
