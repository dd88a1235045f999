"""Load shapes for the locustfiles (steady, ramp, spike, soak), picked by HARNESS_LOAD_SHAPE.

Each shape takes its peak users, spawn rate (users/s) and duration (s) from arguments or from
HARNESS_USERS, HARNESS_SPAWN_RATE and HARNESS_DURATION_S, and ends the test (tick() returns None)
once the duration is over. `users_at(t)` is the shape itself, a pure function of the run time.

Every class here is marked `abstract` so that Locust never runs one just because this file sits
beside a locustfile (`locust -f locustfiles/`); a locustfile runs the chosen one by subclassing it
(see `shape_from_env()` and ai_agent.py).
"""

from __future__ import annotations

import math
import os

from locust import LoadTestShape

DEFAULTS = {"HARNESS_USERS": 10.0, "HARNESS_SPAWN_RATE": 10.0, "HARNESS_DURATION_S": 60.0}
SOAK_DEFAULT_DURATION_S = 3600.0
Tick = tuple[int, float] | None


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}={raw!r}: expected a number > 0")
    return value


class HarnessShape(LoadTestShape):
    """Base of the shapes: parameters from arguments or the environment; tick() = users_at(run time)."""

    abstract = True
    default_duration_s = DEFAULTS["HARNESS_DURATION_S"]

    def __init__(self, users: int | None = None, spawn_rate: float | None = None,
                 duration_s: float | None = None) -> None:
        super().__init__()
        self.users = users if users is not None else int(_env_number("HARNESS_USERS", DEFAULTS["HARNESS_USERS"]))
        self.spawn_rate = spawn_rate if spawn_rate is not None else _env_number("HARNESS_SPAWN_RATE",
                                                                                  DEFAULTS["HARNESS_SPAWN_RATE"])
        self.duration_s = duration_s if duration_s is not None else _env_number("HARNESS_DURATION_S",
                                                                                  self.default_duration_s)
        if self.users < 1 or self.spawn_rate <= 0 or self.duration_s <= 0:
            raise ValueError(f"{type(self).__name__}: users >= 1, spawn_rate > 0 and duration_s > 0 expected")

    def tick(self) -> Tick:
        return self.users_at(self.get_run_time())

    def users_at(self, t: float) -> Tick:
        """(target users, spawn rate) at `t` seconds into the run; None once the run is over."""
        raise NotImplementedError


class SteadyShape(HarnessShape):
    """`users` for the whole duration (reached at `spawn_rate`)."""

    abstract = True

    def users_at(self, t: float) -> Tick:
        return (self.users, self.spawn_rate) if t < self.duration_s else None


class RampShape(HarnessShape):
    """A staircase of `steps` equal steps up to `users`, each step 1/steps of the duration."""

    abstract = True
    steps = 5

    def users_at(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        steps = min(self.steps, self.users)
        step = min(steps, int(t * steps / self.duration_s) + 1)
        return math.ceil(self.users * step / steps), self.spawn_rate


class SpikeShape(HarnessShape):
    """A tenth of `users` (at least 1), all `users` within a second for the middle fifth, then back."""

    abstract = True

    def users_at(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        if 0.4 * self.duration_s <= t < 0.6 * self.duration_s:
            return self.users, max(self.spawn_rate, float(self.users))
        return max(1, self.users // 10), max(self.spawn_rate, float(self.users))


class SoakShape(HarnessShape):
    """`users` for a long time (default one hour), reached gently over the first tenth of it."""

    abstract = True
    default_duration_s = SOAK_DEFAULT_DURATION_S

    def users_at(self, t: float) -> Tick:
        if t >= self.duration_s:
            return None
        return self.users, min(self.spawn_rate, max(self.users / (0.1 * self.duration_s), 0.1))


SHAPES: dict[str, type[HarnessShape]] = {"ramp": RampShape, "soak": SoakShape, "spike": SpikeShape,
                                         "steady": SteadyShape}


def shape_from_env() -> type[HarnessShape] | None:
    """The shape class HARNESS_LOAD_SHAPE names; None when unset (plain -u/-r/-t applies)."""
    name = os.environ.get("HARNESS_LOAD_SHAPE", "").strip().lower()
    if not name:
        return None
    if name not in SHAPES:
        raise ValueError(f"HARNESS_LOAD_SHAPE={name!r}: expected one of {', '.join(sorted(SHAPES))}")
    return SHAPES[name]
