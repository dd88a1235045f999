"""Per-process fault knobs (latency, errors, hang, health) read by the app and set over /admin/knobs."""

from __future__ import annotations

import asyncio
import enum
import math
import random
from dataclasses import asdict, dataclass, replace
from typing import Any

# A hung request is answered after this long at the latest, so no request lives forever.
HANG_MAX_S = 600.0
# Injected latency is bounded by the same ceiling: anything longer is a hang, say so.
LATENCY_MAX_MS = HANG_MAX_S * 1000.0


class KnobError(ValueError):
    """A PUT /admin/knobs body that names an unknown knob or gives a bad value."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field_name = field_name
        self.message = message


@dataclass(frozen=True, kw_only=True)
class KnobValues:
    """One consistent set of knob values; replaced whole on every PUT."""

    latency_ms: float = 0.0  # added before every API response, milliseconds
    error_rate: float = 0.0  # fraction 0..1 of API requests answered with error_status
    error_status: int = 500  # HTTP status of injected errors, 400..599
    hang: bool = False  # API requests wait (up to HANG_MAX_S) until cleared; /health answers 503
    unhealthy: bool = False  # /health answers 503 while API requests are served normally
    ai_latency_ms: float = 0.0  # external-ai-api only: mean inference time, milliseconds
    ai_jitter_ms: float = 0.0  # external-ai-api only: +/- uniform jitter, milliseconds


class HangOutcome(enum.Enum):
    """How a request held by the hang knob was let go."""

    RELEASED = "released"  # the knob was cleared: serve the request
    TIMED_OUT = "timed_out"  # HANG_MAX_S passed
    SHUTDOWN = "shutdown"  # the process is stopping


class Knobs:
    """The knobs of this process; `ai_knobs` says whether the ai_* knobs exist here."""

    def __init__(self, *, ai_knobs: bool, ai_latency_ms: float = 0.0, ai_jitter_ms: float = 0.0) -> None:
        self._ai_knobs = ai_knobs
        self._values = KnobValues(ai_latency_ms=ai_latency_ms, ai_jitter_ms=ai_jitter_ms)
        self._released = asyncio.Event()
        self._released.set()
        self._shutting_down = False

    @property
    def values(self) -> KnobValues:
        return self._values

    def as_json(self) -> dict[str, Any]:
        """The knob values as GET /admin/knobs shows them."""
        values = asdict(self._values)
        if not self._ai_knobs:
            del values["ai_latency_ms"], values["ai_jitter_ms"]
        return values

    def update(self, body: Any) -> dict[str, Any]:
        """Apply a partial update atomically: every field is checked before any takes effect."""
        if not isinstance(body, dict):
            raise KnobError("body", f"expected a JSON object of knobs, got {type(body).__name__}")
        allowed = self.as_json().keys()
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name not in allowed:
                raise KnobError(name, f"unknown knob; expected one of {', '.join(sorted(allowed))}")
            changes[name] = _VALIDATORS[name](name, value)
        self._values = replace(self._values, **changes)
        if self._values.hang:
            self._released.clear()
        else:
            self._released.set()
        return self.as_json()

    def should_fail(self) -> bool:
        """Whether this API request is one of the error_rate fraction."""
        rate = self._values.error_rate
        return rate > 0.0 and (rate >= 1.0 or random.random() < rate)

    def inference_delay_s(self) -> float:
        """One simulated inference time: ai_latency_ms +/- uniform ai_jitter_ms, never negative."""
        jitter = self._values.ai_jitter_ms
        delay_ms = self._values.ai_latency_ms + (random.uniform(-jitter, jitter) if jitter else 0.0)
        return max(0.0, delay_ms) / 1000.0

    def health_problem(self) -> str | None:
        """Why /health should answer 503, or None when healthy."""
        if self._shutting_down:
            return "shutting_down"
        if self._values.hang:
            return "hung"
        if self._values.unhealthy:
            return "unhealthy"
        return None

    async def wait_while_hung(self, *, max_s: float = HANG_MAX_S) -> HangOutcome:
        """Hold the caller while the hang knob is set; returns at once when it is not."""
        if not self._released.is_set():
            try:
                await asyncio.wait_for(self._released.wait(), timeout=max_s)
            except TimeoutError:
                return HangOutcome.TIMED_OUT
        return HangOutcome.SHUTDOWN if self._shutting_down else HangOutcome.RELEASED

    def release_for_shutdown(self) -> None:
        """Let every held request go (they answer 503) so a stopping process does not wait on them."""
        self._shutting_down = True
        self._released.set()


def _non_negative_ms(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise KnobError(name, f"expected a number of milliseconds, got {value!r}")
    if not 0 <= value <= LATENCY_MAX_MS:
        raise KnobError(name, f"expected 0 to {LATENCY_MAX_MS:g} milliseconds, got {value!r}")
    return float(value)


def _fraction(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise KnobError(name, f"expected a fraction from 0 to 1, got {value!r}")
    return float(value)


def _error_status(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise KnobError(name, f"expected an HTTP error status 400-599, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise KnobError(name, f"expected true or false, got {value!r}")
    return value


_VALIDATORS = {
    "latency_ms": _non_negative_ms,
    "error_rate": _fraction,
    "error_status": _error_status,
    "hang": _flag,
    "unhealthy": _flag,
    "ai_latency_ms": _non_negative_ms,
    "ai_jitter_ms": _non_negative_ms,
}
