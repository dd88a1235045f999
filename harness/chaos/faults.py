"""Faults as Istio resources: patch the VirtualService of a host, or add one, and know how to undo it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from harness.mesh.loader import resource_key
from harness.mesh.resources import fqdn

FAULT_VS_PREFIX = "harness-fault-"


@dataclass(frozen=True)
class FaultPlan:
    """Documents to apply for the fault, and the ones that undo it."""

    apply: list[dict[str, Any]]
    undo_apply: list[dict[str, Any]] = field(default_factory=list)
    undo_delete: list[dict[str, Any]] = field(default_factory=list)

    @property
    def undo(self) -> dict[str, list[dict[str, Any]]]:
        """The undo as the fault ledger keeps it (kind "istio"; harness.chaos.ledger.restore_documents)."""
        return {"delete": self.undo_delete, "apply": self.undo_apply}


def replacement_plan(present: list[dict[str, Any]], documents: list[dict[str, Any]]) -> FaultPlan:
    """Apply `documents` as `kubectl apply` would; the undo puts back each resource they replace
    (same kind, namespace and name among `present`) and deletes each one they add."""
    live = {resource_key(d): d for d in present}
    return FaultPlan(apply=documents, undo_apply=[live[resource_key(d)] for d in documents if resource_key(d) in live],
                     undo_delete=[d for d in documents if resource_key(d) not in live])


def istio_fault(*, delay_ms: float | None = None, abort_status: int | None = None,
                percentage: float = 100.0) -> dict[str, Any]:
    fault: dict[str, Any] = {}
    if delay_ms is not None:
        fault["delay"] = {"fixedDelay": f"{delay_ms / 1000:.3f}s".replace(".000s", "s"),
                          "percentage": {"value": float(percentage)}}
    if abort_status is not None:
        fault["abort"] = {"httpStatus": int(abort_status), "percentage": {"value": float(percentage)}}
    return fault


def _serves(doc: dict[str, Any], host: str) -> bool:
    namespace = doc["metadata"].get("namespace", "parallel-ai")
    return doc.get("kind") == "VirtualService" and any(
        fqdn(h, namespace) == fqdn(host) for h in doc.get("spec", {}).get("hosts", []))


def _with_headers(route: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """The route restricted to requests that also carry `headers` (exact match)."""
    extra = {name.lower(): {"exact": value} for name, value in headers.items()}
    matches = route.get("match") or [{}]
    restricted = copy.deepcopy(route)
    restricted["match"] = [{**m, "headers": {**(m.get("headers") or {}), **extra}} for m in matches]
    restricted.pop("name", None)
    return restricted


def _add_fault(spec: dict[str, Any], fault: dict[str, Any], headers: dict[str, str] | None) -> None:
    routes = spec.get("http") or []
    if headers:
        faulty = [_with_headers(r, headers) for r in routes]
        for route in faulty:
            route["fault"] = {**route.get("fault", {}), **copy.deepcopy(fault)}
        spec["http"] = faulty + routes
    else:
        for route in routes:
            route["fault"] = {**route.get("fault", {}), **copy.deepcopy(fault)}


def plan_fault(resources: list[dict[str, Any]], service: str, fault: dict[str, Any],
               headers: dict[str, str] | None = None) -> FaultPlan:
    """Patch every VirtualService of the host, or create one bound to the mesh if there is none."""
    existing = [doc for doc in resources if _serves(doc, service)]
    if existing:
        patched = []
        for doc in existing:
            new = copy.deepcopy(doc)
            _add_fault(new["spec"], fault, headers)
            patched.append(new)
        return FaultPlan(apply=patched, undo_apply=[copy.deepcopy(d) for d in existing])
    route = {"route": [{"destination": {"host": service}}]}
    spec: dict[str, Any] = {"hosts": [service], "gateways": ["mesh"], "http": [copy.deepcopy(route)]}
    _add_fault(spec, fault, headers)
    if headers:
        spec["http"] = spec["http"][:1] + [route]
    created = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
               "metadata": {"name": f"{FAULT_VS_PREFIX}{service}", "namespace": "parallel-ai"}, "spec": spec}
    return FaultPlan(apply=[created], undo_delete=[copy.deepcopy(created)])
