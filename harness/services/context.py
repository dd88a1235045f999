"""What every handler of a process shares: its config, knobs, metrics and outbound client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.services.config import ServiceConfig
from harness.services.knobs import Knobs
from harness.services.metrics import Metrics
from harness.services.outbound import Outbound

CALLING_SERVICES = frozenset({"ai-agent"})


@dataclass(frozen=True, kw_only=True)
class ServiceContext:
    """Built once per process by `build_context`; handlers read it, only /admin/knobs writes the knobs."""

    config: ServiceConfig
    knobs: Knobs
    metrics: Metrics
    outbound: Outbound

    @property
    def calls_out(self) -> bool:
        """Whether this service makes outbound calls (and so needs the shared client started)."""
        return self.config.service_name in CALLING_SERVICES

    def identity(self) -> dict[str, Any]:
        """The fields every JSON answer carries to say who answered."""
        config = self.config
        return {
            "service": config.service_name,
            "version": config.service_version,
            "region": config.region,
            "pod": config.pod_name,
        }


def build_context(config: ServiceConfig) -> ServiceContext:
    """A fresh context for `config`: default knobs, empty metrics, an unstarted outbound client."""
    metrics = Metrics(service=config.service_name, version=config.service_version, pod=config.pod_name)
    return ServiceContext(
        config=config,
        knobs=Knobs(
            ai_knobs=config.service_name == "external-ai-api",
            ai_latency_ms=config.ai_latency_ms,
            ai_jitter_ms=config.ai_jitter_ms,
        ),
        metrics=metrics,
        outbound=Outbound(config, metrics),
    )
