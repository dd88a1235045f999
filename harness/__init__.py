"""Mesh resilience harness: an Istio mesh, Locust load, chaos and Prometheus SLO verdicts."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """`chaos discover harness` lists the harness's actions and probes."""
    from harness.chaos import discover as discover_chaos

    return discover_chaos(discover_system)
