"""What chaos did and when: fault and kill records the run writes into its journal."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FaultRecord:
    kind: str  # delay | abort | kill | region | scale
    target: str
    details: dict[str, Any]
    requested_at: float = field(default_factory=time.time)
    applied_at: float | None = None
    reverted_requested_at: float | None = None
    reverted_at: float | None = None
    first_visible_at: float | None = None  # filled in from the load samples after the run

    @property
    def inject_latency_ms(self) -> float | None:
        return None if self.applied_at is None else round((self.applied_at - self.requested_at) * 1000, 2)

    @property
    def revert_latency_ms(self) -> float | None:
        if self.reverted_at is None or self.reverted_requested_at is None:
            return None
        return round((self.reverted_at - self.reverted_requested_at) * 1000, 2)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "inject_latency_ms": self.inject_latency_ms,
                "revert_latency_ms": self.revert_latency_ms}


class Recorder:
    """Shared by actions (which add) and the run (which reads); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: list[FaultRecord] = []
        self.kills: list[dict[str, Any]] = []
        self.checks: list[dict[str, Any]] = []  # security probe verdicts, shaped as SLO results

    def fault(self, kind: str, target: str, **details: Any) -> FaultRecord:
        record = FaultRecord(kind, target, details)
        with self._lock:
            self.faults.append(record)
        return record

    def kill(self, pod: str, pids: dict[str, Any]) -> dict[str, Any]:
        entry = {"pod": pod, "killed_at": time.time(), "pids": pids, "recovered_at": None, "recovery_s": None}
        with self._lock:
            self.kills.append(entry)
        return entry

    def check(self, row: dict[str, Any]) -> None:
        """A security probe's verdict, as an SLO result row (harness.chaos.security.verdict)."""
        with self._lock:
            self.checks.append(dict(row))

    def phase_now(self) -> str:
        """`chaos` while a fault is in place, `recovery` once one was reverted, else `baseline`."""
        with self._lock:
            if any(f.applied_at is not None and f.reverted_at is None for f in self.faults):
                return "chaos"
            return "recovery" if any(f.reverted_at is not None for f in self.faults) else "baseline"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"faults": [f.as_dict() for f in self.faults], "pod_kills": [dict(k) for k in self.kills],
                    "security_checks": [dict(c) for c in self.checks]}

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.kills.clear()
            self.checks.clear()
