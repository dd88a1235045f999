"""Pick pods and services by the names users write: app label, Service name or FQDN."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from harness.errors import ConfigError


@dataclass(frozen=True)
class ServiceRef:
    service: str  # Kubernetes Service name, e.g. user-service
    app: str  # app label, e.g. user


def resolve_service(pods: list[dict[str, Any]], name: str) -> ServiceRef:
    """`user`, `user-service` and `user-service.parallel-ai.svc.cluster.local` all name one service."""
    short = name.split(".")[0]
    for pod in pods:
        if short in (pod["service"], pod["app"]):
            return ServiceRef(pod["service"], pod["app"])
    known = sorted({p["service"] for p in pods})
    raise ConfigError(f"unknown service {name!r}; services: {', '.join(known)}", field="service")


def select_pods(pods: list[dict[str, Any]], service: str, *, version: str | None = None, region: str | None = None,
                count: int | None = None, percent: float | None = None, max_percent: float = 100.0,
                rng: random.Random | None = None) -> list[str]:
    """Ready pods matching the selectors; `count` or `percent` of them, within the blast radius."""
    target = resolve_service(pods, service)
    of_service = [p for p in pods if p["service"] == target.service]
    matching = [p["name"] for p in of_service if (version is None or p["version"] == version)
                and (region is None or p["region"] == region) and p["ready"]]
    if count is not None and percent is not None:
        raise ConfigError("give count or percent, not both", field="count")
    if percent is not None and not 0 < percent <= 100:
        raise ConfigError(f"expected a percent above 0 and at most 100, got {percent}", field="percent")
    wanted = count if count is not None else math.ceil(len(matching) * (percent or 100) / 100)
    if wanted < 0:
        raise ConfigError(f"expected a count of at least 0, got {count}", field="count")
    limit = math.floor(len(of_service) * max_percent / 100)
    if wanted > limit:
        raise ConfigError(f"{wanted} of {len(of_service)} {target.service} pods exceeds the blast-radius limit "
                          f"of {max_percent}%", field="max_percent")
    if not matching and wanted:
        raise ConfigError(f"no ready {target.service} pod matches version={version} region={region}",
                          field="service")
    chosen = list(matching)
    (rng or random.Random()).shuffle(chosen)
    return sorted(chosen[:wanted])
