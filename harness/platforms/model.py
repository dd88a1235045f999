"""The platform seam's data types: a pod and the mesh's status as every platform reports them."""

# Platforms answer in JSON-shaped data (the local platform's answers cross a Unix socket), and
# `harness status --json` prints it as it comes. These frozen types give the fields every platform
# shares a name and a type, and keep what is particular to one platform (PIDs and admin ports
# locally, contexts and pod IPs on kind) beside them in `extra`, so the JSON round-trips exactly.

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["CLEARED_KNOBS", "POD_FIELDS", "STATUS_FIELDS", "MeshStatus", "Pod"]

#: Every platform's pods carry these (`status --json` pods[*]); platforms add their own beside them.
POD_FIELDS = ("name", "service", "app", "version", "region", "ready", "restarts")
#: An app's behaviour knobs with no fault set (the sample services' defaults): what `reset` puts back.
CLEARED_KNOBS = {"latency_ms": 0, "error_rate": 0.0, "error_status": 500, "hang": False, "unhealthy": False}
#: Every platform's status carries these (`status --json`); platforms add their own beside them.
STATUS_FIELDS = ("platform", "profile", "up", "ingress_url", "ingress_host", "prometheus_url", "pods")


def _frozen(extra: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(extra))


@dataclass(frozen=True)
class Pod:
    """One pod (one slot of a Deployment): its labels, whether it is ready, how often it restarted."""

    name: str  # <deployment>-<index>, kept across restarts
    service: str  # the Kubernetes Service that selects it
    app: str
    version: str
    region: str
    ready: bool
    restarts: int
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)  # platform-specific fields

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen(self.extra))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Pod:
        missing = [name for name in POD_FIELDS if name not in data]
        if missing:
            raise KeyError(f"a platform's pod lacks {', '.join(missing)}")
        return cls(**{name: data[name] for name in POD_FIELDS},
                   extra={k: v for k, v in data.items() if k not in POD_FIELDS})

    @property
    def held(self) -> bool:
        """Kept down on purpose (a failed region, a scale-down); False where the platform does not say."""
        return bool(self.extra.get("held", False))

    def to_json(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in POD_FIELDS}, **self.extra}


@dataclass(frozen=True)
class MeshStatus:
    """What `harness status` shows: where the ingress and Prometheus are, and every pod."""

    platform: str
    profile: str
    up: bool
    ingress_url: str  # http://127.0.0.1:<port>; requests carry Host: ingress_host
    ingress_host: str
    prometheus_url: str
    pods: tuple[Pod, ...]
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)  # platform-specific fields

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen(self.extra))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeshStatus:
        missing = [name for name in STATUS_FIELDS if name not in data]
        if missing:
            raise KeyError(f"a platform's status lacks {', '.join(missing)}")
        return cls(**{name: data[name] for name in STATUS_FIELDS if name != "pods"},
                   pods=tuple(Pod.from_json(p) for p in data["pods"]),
                   extra={k: v for k, v in data.items() if k not in STATUS_FIELDS})

    def to_json(self) -> dict[str, Any]:
        """Exactly the fields `status --json` prints."""
        return {**{name: getattr(self, name) for name in STATUS_FIELDS if name != "pods"},
                "pods": [p.to_json() for p in self.pods], **self.extra}

    def pod(self, name: str) -> Pod:
        return next(p for p in self.pods if p.name == name)
