"""Pods as the harness names them, from what the Kubernetes API reports.

Experiments, the pod watcher and the undo of a kill know a pod by a stable name, as on the local
platform: `<deployment>-<index>` (`ai-agent-v1-us-east-0`). On Kubernetes a replaced pod gets a new
name, so each Deployment's live pods (not terminating) are sorted by creation time and fill its
slots 0..replicas-1; a slot without a live pod (deleted, being replaced, scaled to zero) is listed
as not ready with `pod_name` None. The real name is `pod_name`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from harness.mesh.topology import REGION_LABEL
from harness.platforms.kind import render
from harness.platforms.kind.kube import matches

SIDECAR_INBOUND_PORT = 15006  # Istio's inbound capture port in every injected pod
APP_CONTAINER = "app"  # the container name in harness/mesh/manifests/kubernetes/deployments.yaml


@dataclass(frozen=True)
class DeclaredDeployment:
    """One Deployment of the mesh manifests, with what the pod rows need from it."""

    name: str
    selector: tuple[tuple[str, str], ...]  # spec.selector.matchLabels
    replicas: int
    app: str
    version: str
    region: str
    service: str  # the Kubernetes Service that selects its pods (or the app label)
    service_account: str
    app_port: int

    def slot(self, index: int) -> str:
        return f"{self.name}-{index}"


@functools.cache
def declared_deployments() -> tuple[DeclaredDeployment, ...]:
    docs = [doc for doc in render.mesh_kubernetes_documents() if doc["kind"] in ("Deployment", "Service")]
    services = [(doc["metadata"]["name"], doc["spec"].get("selector") or {}) for doc in docs
                if doc["kind"] == "Service"]
    deployments = []
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]
        labels = spec["template"]["metadata"]["labels"]
        container = spec["template"]["spec"]["containers"][0]
        service = next((name for name, selector in services
                        if selector and all(labels.get(k) == v for k, v in selector.items())), labels["app"])
        deployments.append(DeclaredDeployment(
            name=doc["metadata"]["name"], selector=tuple(sorted(spec["selector"]["matchLabels"].items())),
            replicas=int(spec.get("replicas", 1)), app=labels["app"], version=labels.get("version", "unknown"),
            region=labels[REGION_LABEL].split(".")[0], service=service,
            service_account=spec["template"]["spec"].get("serviceAccountName", "default"),
            app_port=int((container.get("ports") or [{"containerPort": 8080}])[0]["containerPort"])))
    return tuple(deployments)


def parse_slot(name: str) -> tuple[DeclaredDeployment, int] | None:
    """`ai-agent-v1-us-east-0` -> (its Deployment, 0); None when the name is not a slot name."""
    base, _, index = name.rpartition("-")
    if not index.isdigit():
        return None
    for deployment in declared_deployments():
        if deployment.name == base:
            return deployment, int(index)
    return None


def live_pods(deployment: DeclaredDeployment, pods: list[dict]) -> list[dict]:
    """The Deployment's pods that are not terminating, oldest first (the slot order)."""
    mine = [p for p in pods if matches(p, dict(deployment.selector))
            and not (p.get("metadata") or {}).get("deletionTimestamp")]
    return sorted(mine, key=lambda p: ((p["metadata"].get("creationTimestamp") or ""), p["metadata"]["name"]))


def is_ready(pod: dict) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def restarts(pod: dict) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount", 0)) for s in statuses), default=0)


def rows(deployment: DeclaredDeployment, pods: list[dict], context: str) -> list[dict[str, Any]]:
    """One row per slot of the Deployment (at least its declared replicas), in the Platform's pod shape."""
    alive = live_pods(deployment, pods)
    result = []
    for index in range(max(deployment.replicas, len(alive))):
        pod = alive[index] if index < len(alive) else None
        meta = (pod or {}).get("metadata") or {}
        status = (pod or {}).get("status") or {}
        result.append({
            "name": deployment.slot(index), "service": deployment.service, "app": deployment.app,
            "version": deployment.version, "region": deployment.region,
            "ready": pod is not None and is_ready(pod), "restarts": restarts(pod) if pod else 0,
            "pid": None, "sidecar_pid": None, "sidecar_admin_url": None,
            "inbound_port": SIDECAR_INBOUND_PORT, "app_port": deployment.app_port,
            "service_account": deployment.service_account, "deployment": deployment.name,
            "pod_name": meta.get("name"), "pod_ip": status.get("podIP"), "node": (pod or {}).get("spec", {}).get(
                "nodeName"), "phase": status.get("phase"), "context": context,
        })
    return result
