"""Chaos Toolkit actions of the harness: typed keyword functions, each registering its undo first.

Registering also writes the fault to the platform's fault ledger (ledger.py) before it takes effect,
with what another process needs to undo it.
"""

from __future__ import annotations

import random
import time
from typing import Any

from harness.chaos.context import current, current_platform
from harness.chaos.faults import istio_fault, plan_fault
from harness.chaos.ledger import FaultLedger, ledger_for, wait_ready
from harness.chaos.selectors import resolve_service, select_pods
from harness.errors import ConfigError

__all__ = ["fail_region", "inject_abort", "inject_delay", "kill_pods", "remove_faults", "restore_region", "scale"]

MAX_REPEATS = 100  # a kill loop is bounded in count...
MAX_INTERVAL_S = 600.0  # ...and in time
RECOVERY_TIMEOUT_S = 60.0  # how long an undo waits for pods to be ready again


def _wait_ready(pods: list[str], timeout_s: float = RECOVERY_TIMEOUT_S) -> None:
    wait_ready(current_platform(), pods, timeout_s)


def _ledger() -> FaultLedger | None:
    return ledger_for(current_platform())


def kill_pods(service: str, version: str | None = None, region: str | None = None, count: int | None = None,
              percent: float | None = None, repeat: int = 1, interval_s: float = 0.0, app_only: bool = False,
              max_percent: float = 100.0, seed: int | None = None) -> list[dict[str, Any]]:
    """SIGKILL pods of a service (by version and region), `count` or `percent` of them, `repeat` times.

    The platform restarts them as a ReplicaSet would; the undo waits until every killed pod is ready
    again. `max_percent` is the blast-radius limit: at most that share of the service's pods per kill.
    """
    if not 1 <= repeat <= MAX_REPEATS:
        raise ConfigError(f"expected 1 to {MAX_REPEATS}, got {repeat}", field="repeat")
    if not 0 <= interval_s <= MAX_INTERVAL_S:
        raise ConfigError(f"expected 0 to {MAX_INTERVAL_S} seconds, got {interval_s}", field="interval_s")
    platform = current_platform()
    rng = random.Random(seed)
    killed: list[dict[str, Any]] = []
    victims_all: list[str] = []
    token = current().undo.register(f"wait for killed {service} pods to be ready", lambda: _wait_ready(victims_all),
                              ledger=_ledger(), kind="kill", undo={"pods": []})
    for round_index in range(repeat):
        if round_index:
            time.sleep(interval_s)
        victims = select_pods(platform.pods(), service, version=version, region=region, count=count,
                              percent=percent, max_percent=max_percent, rng=rng)
        current().undo.update_entry(token, {"pods": sorted(set(victims_all) | set(victims))})  # before the kills
        for pod in victims:
            record = current().recorder.fault("kill", pod, service=service, app_only=app_only, round=round_index)
            result = platform.kill(pod, app_only=app_only)
            record.applied_at = time.time()
            current().recorder.kill(pod, result.get("killed_pids", {}))
            victims_all.append(pod)
            killed.append({"pod": pod, **result})
    return killed


def _source_fault(service: str, fault: dict[str, Any], headers: dict[str, str] | None, kind: str,
                  details: dict[str, Any]) -> dict[str, Any]:
    platform = current_platform()
    host = resolve_service(platform.pods(), service).service
    plan = plan_fault(platform.resources(), host, fault, headers)
    record = current().recorder.fault(kind, host, side="source", headers=headers or {}, **details)

    def undo() -> None:
        record.reverted_requested_at = time.time()
        if plan.undo_delete:
            platform.apply_documents(plan.undo_delete, delete=True)
        if plan.undo_apply:
            platform.apply_documents(plan.undo_apply)
        record.reverted_at = time.time()

    current().undo.register(f"remove {kind} fault on {host}", undo, ledger=_ledger(), kind="istio",
                      undo={"delete": plan.undo_delete, "apply": plan.undo_apply})
    result = platform.apply_documents(plan.apply)
    record.applied_at = time.time()
    return {"service": host, "side": "source", "applied": [d["metadata"]["name"] for d in plan.apply],
            "acknowledged_ms": result.get("acknowledged_ms")}


def _destination_fault(service: str, knobs: dict[str, Any], kind: str, details: dict[str, Any]) -> dict[str, Any]:
    platform = current_platform()
    target = resolve_service(platform.pods(), service)
    pods = [p["name"] for p in platform.pods() if p["service"] == target.service]
    record = current().recorder.fault(kind, target.service, side="destination", pods=pods, **details)
    cleared = {key: (False if key == "hang" else 500 if key == "error_status" else 0) for key in knobs}

    def undo() -> None:
        record.reverted_requested_at = time.time()
        for pod in pods:
            platform.set_knobs(pod, **cleared)
        record.reverted_at = time.time()

    current().undo.register(f"clear {kind} knobs on {target.service}", undo, ledger=_ledger(), kind="knobs",
                      undo={"pods": pods, "values": cleared})
    for pod in pods:
        platform.set_knobs(pod, **knobs)
    record.applied_at = time.time()
    return {"service": target.service, "side": "destination", "pods": pods, "knobs": knobs}


def _check_side(side: str) -> None:
    if side not in ("source", "destination"):
        raise ConfigError(f"expected 'source' (a VirtualService fault, as Istio injects it) or 'destination' "
                          f"(the service itself misbehaves; callers' retries still apply), got {side!r}",
                          field="side")


def _check_percentage(percentage: float) -> None:
    if not 0 <= percentage <= 100:
        raise ConfigError(f"expected a percentage from 0 to 100, got {percentage}", field="percentage")


def inject_delay(service: str, delay_ms: float, percentage: float = 100.0, headers: dict[str, str] | None = None,
                 side: str = "source") -> dict[str, Any]:
    """Delay requests to a service: at the callers' sidecars (Istio fault) or in the service itself."""
    _check_side(side)
    _check_percentage(percentage)
    if delay_ms <= 0:
        raise ConfigError(f"expected a positive delay in milliseconds, got {delay_ms}", field="delay_ms")
    details = {"delay_ms": delay_ms, "percentage": percentage}
    if side == "destination":
        if percentage != 100 or headers:
            raise ConfigError("a destination-side delay applies to every request of the service: use "
                              "percentage 100 and no headers, or side 'source'", field="percentage")
        return _destination_fault(service, {"latency_ms": delay_ms}, "delay", details)
    return _source_fault(service, istio_fault(delay_ms=delay_ms, percentage=percentage), headers, "delay", details)


def inject_abort(service: str, http_status: int = 503, percentage: float = 100.0,
                 headers: dict[str, str] | None = None, side: str = "source") -> dict[str, Any]:
    """Fail requests to a service with `http_status`.

    A source-side abort is Istio's fault: Istio then switches the route's retries off (istio#13705),
    so callers see every abort. A destination-side abort makes the service answer the status itself,
    where the callers' retries and outlier detection still apply.
    """
    _check_side(side)
    _check_percentage(percentage)
    if not 200 <= http_status <= 599:
        raise ConfigError(f"expected an HTTP status from 200 to 599, got {http_status}", field="http_status")
    details = {"http_status": http_status, "percentage": percentage}
    if side == "destination":
        if headers:
            raise ConfigError("a destination-side abort cannot match headers; use side 'source'", field="headers")
        return _destination_fault(service, {"error_rate": percentage / 100, "error_status": http_status}, "abort",
                                  details)
    return _source_fault(service, istio_fault(abort_status=http_status, percentage=percentage), headers, "abort",
                         details)


def remove_faults() -> dict[str, Any]:
    """Undo every fault still in place (newest first) and wait for killed pods to be back."""
    undone = current().undo.run_all()
    return {"undone": [u.description for u in undone], "errors": [u.error for u in undone if u.error]}


def fail_region(region: str) -> dict[str, Any]:
    """Take down every pod of a region and keep it down (a failed cluster or zone)."""
    platform = current_platform()
    pods = [p["name"] for p in platform.pods() if p["region"] == region]
    if not pods:
        regions = sorted({p["region"] for p in platform.pods()})
        raise ConfigError(f"no pods in region {region!r}; regions: {', '.join(regions)}", field="region")
    _hold_down(pods, current().recorder.fault("region", region, pods=pods), f"restore region {region}")
    return {"region": region, "pods": pods}


def _release(pods: list[str]) -> None:
    platform = current_platform()
    for pod in pods:
        platform.hold(pod, down=False)
    _wait_ready(pods)


def _hold_down(pods: list[str], record: Any, undo_description: str) -> None:
    """Keep pods down until the registered undo releases them and they are ready again."""
    platform = current_platform()

    def undo() -> None:
        record.reverted_requested_at = time.time()
        _release(pods)
        record.reverted_at = time.time()

    # The Deployments the held pods belong to, with their declared replicas, so that whoever finds
    # this entry knows what to scale back (kind pods name theirs; a local pod is <deployment>-<index>).
    rows = platform.pods()
    deployments = {_deployment_of(p) for p in rows if p["name"] in pods}
    declared = {d: sum(1 for p in rows if _deployment_of(p) == d) for d in sorted(deployments)}
    current().undo.register(undo_description, undo, ledger=_ledger(), kind="hold",
                      undo={"pods": pods, "deployments": declared})
    for pod in pods:
        platform.hold(pod, down=True)
    record.applied_at = time.time()


def _deployment_of(pod: dict[str, Any]) -> str:
    return str(pod.get("deployment") or pod["name"].rsplit("-", 1)[0])


def restore_region(region: str) -> dict[str, Any]:
    """Bring a failed region back (runs the undo that fail_region registered) and wait for its pods."""
    if not current().undo.run_matching(f"restore region {region}"):
        _release([p["name"] for p in current_platform().pods() if p["region"] == region])
    return {"region": region, "restored": True}


def scale(service: str, replicas: int, version: str | None = None) -> dict[str, Any]:
    """Scale a service's pods down (held down, as with zero replicas) or back up to what is declared."""
    platform = current_platform()
    target = resolve_service(platform.pods(), service)
    pods = sorted((p for p in platform.pods() if p["service"] == target.service
                   and (version is None or p["version"] == version)), key=lambda p: p["name"])
    if not 0 <= replicas <= len(pods):
        raise ConfigError(f"the local platform scales {target.service} between 0 and its declared {len(pods)} "
                          f"pods; got {replicas} (declare more replicas in the Deployments to go higher)",
                          field="replicas")
    keep, drop = [p["name"] for p in pods[:replicas]], [p["name"] for p in pods[replicas:]]
    for pod in keep:
        platform.hold(pod, down=False)
    _hold_down(drop, current().recorder.fault("scale", target.service, replicas=replicas, version=version, held=drop),
               f"scale {target.service} back")
    return {"service": target.service, "replicas": replicas, "running": keep, "held_down": drop}
