"""The local control plane's state: declared and applied resources, live endpoints, xDS pushes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.mesh.loader import Located, MeshModel, build_model, merge_documents
from harness.mesh.topology import Pod
from harness.mesh.translate import (
    CertPaths, Endpoint, ExternalEndpoint, MeshState, ProxyNode, XdsWriter, translate_proxy,
)
from harness.platforms.local.layout import (
    GATEWAY_LABELS, GATEWAY_NAME, GATEWAY_REGION, Layout,
)


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
                 external: dict[str, ExternalEndpoint], *, access_log: bool = False) -> None:
        self.declared = declared
        self.model = declared
        self.layout = layout
        self.certs = certs
        self.external = external
        self.access_log = access_log
        self.ready: set[str] = set()
        self.nodes = {node.name: node for node in self._nodes()}
        self.writers = {name: XdsWriter(node) for name, node in self.nodes.items()}
        self.last_push = PushRecord()

    def _nodes(self) -> list[ProxyNode]:
        nodes = []
        for pod in self.model.topology.pods:
            ports = self.layout.pods[pod.name]
            nodes.append(ProxyNode(
                name=pod.name, kind="sidecar", namespace=pod.namespace, labels=pod.labels,
                region=pod.region, service_account=pod.service_account,
                certs=self.certs[pod.service_account], xds_dir=self.layout.proxy_dir(pod.name) / "xds",
                admin_port=ports.admin, inbound_port=ports.inbound, app_port=ports.app,
                outbound_port=ports.outbound, access_log=self.access_log,
            ))
        nodes.append(ProxyNode(
            name=GATEWAY_NAME, kind="gateway", namespace="parallel-ai", labels=GATEWAY_LABELS,
            region=GATEWAY_REGION, service_account="api-gateway", certs=self.certs["api-gateway"],
            xds_dir=self.layout.proxy_dir(GATEWAY_NAME) / "xds", admin_port=self.layout.gateway_admin_port,
            gateway_ports={80: self.layout.settings.ingress_port}, access_log=self.access_log,
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
                         external=self.external)

    def push(self, reason: str, model: MeshModel | None = None) -> int:
        """Translate for every proxy, then write what changed; returns the number of files."""
        state = self.state(model)
        configs = {name: translate_proxy(state, node) for name, node in self.nodes.items()}
        if model is not None:
            self.model = model
        written = sum(len(self.writers[name].write(config)) for name, config in configs.items())
        self.last_push = PushRecord(at=time.time(), files=written, reason=reason,
                                    history=(self.last_push.history + [{"at": time.time(), "reason": reason,
                                                                        "files": written}])[-50:])
        return written

    def set_ready(self, pod: str, ready: bool) -> None:
        if (pod in self.ready) == ready:
            return
        (self.ready.add if ready else self.ready.discard)(pod)
        self.push(f"endpoint {pod} {'ready' if ready else 'not ready'}")

    def apply(self, documents: list[Located], *, delete: bool = False) -> dict[str, Any]:
        """Apply Istio resources live; Kubernetes workload changes need a new `up`."""
        for doc, file in documents:
            if doc.get("kind") in ("Deployment", "Service", "ServiceAccount", "Namespace"):
                from harness.errors import ConfigError

                raise ConfigError(f"{doc['kind']} {doc['metadata']['name']!r}: `apply` changes Istio "
                                  "resources of a running mesh; workload changes need `harness down` and "
                                  "`harness up`", file=file, field="kind")
        model = build_model(merge_documents(self.model.documents, documents, delete=delete))
        files = self.push("delete" if delete else "apply", model)
        return {"applied": [f"{d['kind']}/{d['metadata']['name']}" for d, _ in documents],
                "deleted": delete, "files_written": files, "pushed_at": self.last_push.at}

    def reset(self) -> dict[str, Any]:
        files = self.push("reset", self.declared)
        return {"reset": True, "files_written": files, "pushed_at": self.last_push.at}

    def resources(self) -> list[dict[str, Any]]:
        return [doc for doc, _ in self.model.documents if "istio.io" in doc.get("apiVersion", "")]


def bootstrap_path(layout: Layout, proxy: str) -> Path:
    return layout.proxy_dir(proxy) / "bootstrap.json"
