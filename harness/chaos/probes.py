"""Chaos Toolkit probes of the harness: typed keyword functions, read-only."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from harness.chaos.context import current_platform
from harness.errors import ConfigError
from harness.slo.model import DEFAULT_SLO_FILE

__all__ = ["all_pods_ready", "prometheus_query", "slo"]


def all_pods_ready(service: str | None = None) -> bool:
    """True when every pod (of `service`, if given) is ready."""
    pods = current_platform().pods()
    if service is not None:
        short = service.split(".")[0]
        pods = [p for p in pods if short in (p["service"], p["app"])]
        if not pods:
            raise ConfigError(f"no pods of service {service!r}", field="service")
    return all(p["ready"] for p in pods)


def prometheus_query(query: str, at: float | None = None) -> float | None:
    """One number from the platform's Prometheus (None when the result is empty)."""
    from harness.slo import PrometheusClient

    with PrometheusClient(current_platform().status()["prometheus_url"]) as client:
        return client.query(query, at if at is not None else time.time())


def slo(name: str, window_s: float = 30.0, slo_file: str | None = None) -> bool:
    """True when the named SLO holds over the last `window_s` seconds (no data is a failure)."""
    from harness.slo import PHASES, PrometheusClient, evaluate, load_slo_file

    path = Path(slo_file) if slo_file else DEFAULT_SLO_FILE
    declared = {s.name: s for s in load_slo_file(path)}
    if name not in declared:
        raise ConfigError(f"no SLO {name!r} in {path}; SLOs: {', '.join(sorted(declared))}", field="name")
    chosen = declared[name]
    if chosen.source != "mesh":
        raise ConfigError(f"SLO {name!r} is computed from the run's load samples; as a probe only mesh SLOs "
                          "(Prometheus) can be checked: list it in the harness control's SLOs instead", field="name")
    now = time.time()
    with PrometheusClient(current_platform().status()["prometheus_url"]) as client:
        (result,) = evaluate([dataclasses.replace(chosen, phases=PHASES)], "chaos", now - window_s, now, client)
    return result.passed
