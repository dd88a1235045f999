"""LoadSpec: the load one run drives (locustfile, users, rate, duration, loopback target), validated once."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from harness.errors import ConfigError

SHAPES = ("ramp", "soak", "spike", "steady")
"""Load shapes the shipped locustfiles understand (HARNESS_LOAD_SHAPE); see locustfiles/shapes.py."""

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
MAX_USERS = 10_000
"""Every user holds its own connection and greenlet in one Locust process; far past what one machine's
loopback load needs, and past it a typo (users: 1e9) would exhaust file descriptors mid-run."""
MAX_SPAWN_RATE = 1_000.0  # users started per second; Locust itself warns past 100 per process
MAX_DURATION_S = 7 * 24 * 3600.0  # a week: above the run's own ceiling, bounds a forgotten load
MAX_STOP_TIMEOUT_S = 3600
MAX_THINK_TIME_S = 3600.0
MAX_RATE = 100_000.0
"""Requests per second: far past what one machine's loopback mesh answers; above it is a typo."""


def max_workers() -> int:
    """Locust workers this machine can run: one per CPU (os.cpu_count()).

    A Locust worker is one process running gevent on one thread, so it uses at most one core; past
    one per core the workers only take CPU from each other and from the mesh under test, and the
    load generator, not the mesh, becomes what the run measures.
    """
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class NumberRule:
    """What one numeric load field accepts. One table (NUMBER_RULES) serves LoadSpec and the
    experiment's `load:` mapping, so a new field (a rate, a duration) is one more row."""

    integer: bool
    minimum: float
    maximum: float | Callable[[], float]
    above_minimum: bool = False  # the minimum itself is refused (a rate of 0)
    unit: str = ""

    def problem(self, value: object) -> str | None:
        """Why `value` is not accepted, or None when it is."""
        maximum = self.maximum() if callable(self.maximum) else self.maximum
        low = f"> {self.minimum:g}" if self.above_minimum else f">= {self.minimum:g}"
        wanted = f"{'a whole number' if self.integer else 'a number'}{self.unit} {low} and <= {maximum:g}"
        kinds = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return f"expected {wanted}, got {_shown(value)}"
        if value < self.minimum or (self.above_minimum and value == self.minimum) or value > maximum:
            return f"expected {wanted}, got {_shown(value)}"
        return None


NUMBER_RULES: Mapping[str, NumberRule] = MappingProxyType({
    "users": NumberRule(integer=True, minimum=1, maximum=MAX_USERS),
    "spawn_rate": NumberRule(integer=False, minimum=0, above_minimum=True, maximum=MAX_SPAWN_RATE,
                             unit=" of users per second"),
    "duration_s": NumberRule(integer=False, minimum=0, above_minimum=True, maximum=MAX_DURATION_S,
                             unit=" of seconds"),
    "workers": NumberRule(integer=True, minimum=0, maximum=max_workers,
                          unit=" (0: one process; at most one per CPU of this machine)"),
    "stop_timeout_s": NumberRule(integer=True, minimum=0, maximum=MAX_STOP_TIMEOUT_S, unit=" of seconds"),
    "rate": NumberRule(integer=False, minimum=0, above_minimum=True, maximum=MAX_RATE,
                       unit=" of requests per second"),
})
OPTIONAL_NUMBERS = frozenset({"rate"})
"""Fields of NUMBER_RULES that may be None (not asked for)."""


def number_problem(name: str, value: object) -> str | None:
    """Why `value` is not a valid `name` (a key of NUMBER_RULES), or None."""
    return NUMBER_RULES[name].problem(value)


def locustfile_problem(path: Path) -> str | None:
    """Why `path` cannot be run as a locustfile, or None. Locust takes a comma-separated -f list, and the
    harness adds its sample recorder to it, so a path with a comma would be split."""
    if path.suffix != ".py" or "," in str(path):
        return f"expected a .py file whose path has no comma, got {path}"
    return None


def think_time_problem(think: object) -> str | None:
    """Why `think` is not (min, max) seconds with 0 <= min <= max <= MAX_THINK_TIME_S, or None."""
    ok = isinstance(think, (tuple, list)) and len(think) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in think)
    if not ok or not 0 <= think[0] <= think[1] <= MAX_THINK_TIME_S:  # type: ignore[index]
        return (f"expected [min, max] seconds with 0 <= min <= max <= {MAX_THINK_TIME_S:g}, "
                f"got {_shown(think)}")
    return None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def loopback_url_problem(url: str) -> str | None:
    """Why `url` is not an http(s)://127.x.x.x:port base URL, or None when it is one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{url!r}: expected an http:// URL such as http://127.0.0.1:18080"
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return (f"{url!r}: load goes to 127.0.0.0/8 only, so the host must be a loopback IP address "
                f"such as 127.0.0.1, not a name")
    if address not in LOOPBACK:
        return f"refusing to send load to {address}: load goes to 127.0.0.0/8 only"
    if port is None:
        return f"{url!r}: expected an explicit port, as in http://127.0.0.1:18080"
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"{url!r}: expected scheme, address and port only (no credentials, path or query)"
    return None


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    """One Locust run, checked at construction so that bad input fails before any process starts."""

    locustfile: Path
    """The Locust file to run (made absolute); must exist."""
    users: int
    """Concurrent users (the peak, with a shape); at least 1."""
    spawn_rate: float
    """Users started per second; above 0."""
    duration_s: float
    """Seconds of load; Locust's `-t` is this rounded up to whole seconds."""
    host: str
    """Base URL of the target: http://127.x.x.x:port only, so load never leaves the machine."""
    host_header: str | None = None
    """Host header for the ingress gateway (HARNESS_INGRESS_HOST); None: the locustfile's default."""
    shape: str | None = None
    """One of SHAPES (HARNESS_LOAD_SHAPE); None: plain `-u/-r/-t`."""
    think_time_s: tuple[float, float] | None = None
    """(min, max) seconds between a user's requests (HARNESS_THINK_TIME); None: the locustfile's own."""
    workers: int = 0
    """Locust worker processes under one master; 0 runs a single standalone process."""
    extra_env: Mapping[str, str] = field(default_factory=dict, hash=False)
    """More environment for the Locust processes (e.g. HARNESS_TIER_WEIGHTS); ours win on clashes."""
    stop_timeout_s: int = 1
    """Whole seconds Locust lets a user finish its request when stopping (`--stop-timeout`)."""
    rate: float | None = None
    """Open-model target, requests per second over all users: every user runs Locust's own
    `constant_throughput(rate / users)` wait, so `users` must be enough to keep `rate` going while
    requests take time (a user whose request outlasts 1 / (rate / users) s falls behind). None: the
    locustfile's own wait (think time)."""
    source: str | None = field(default=None, compare=False)
    """The file this spec came from (an experiment), named in errors; None: errors name the locustfile."""

    def __post_init__(self) -> None:
        self._check_locustfile()
        self._check_numbers()
        self._check_target()
        self._check_options()

    def _fail(self, field_name: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.source, field=field_name)

    def _check_locustfile(self) -> None:
        path = Path(self.locustfile).expanduser().absolute()
        if not path.is_file():
            raise ConfigError(f"no locustfile at {path}", file=self.source or path, field="locustfile")
        problem = locustfile_problem(path)
        if problem:
            raise self._fail("locustfile", problem)
        object.__setattr__(self, "locustfile", path)

    def _check_numbers(self) -> None:
        for name in NUMBER_RULES:
            if name in OPTIONAL_NUMBERS and getattr(self, name) is None:
                continue
            problem = number_problem(name, getattr(self, name))
            if problem:
                raise self._fail(name, problem)

    def _check_target(self) -> None:
        if not isinstance(self.host, str):
            raise self._fail("host", f"expected a URL, got {self.host!r}")
        problem = loopback_url_problem(self.host)
        if problem:
            raise self._fail("host", problem)
        header = self.host_header
        if header is not None and (not isinstance(header, str) or not header or any(c.isspace() for c in header)):
            raise self._fail("host_header", f"expected a host name without spaces, got {header!r}")

    def _check_options(self) -> None:
        if self.shape is not None and self.shape not in SHAPES:
            raise self._fail("shape", f"expected one of {', '.join(SHAPES)}, got {self.shape!r}")
        think = self.think_time_s
        if think is not None:
            problem = think_time_problem(think) if isinstance(think, tuple) else (
                f"expected a (min, max) tuple of seconds, got {_shown(think)}")
            if problem:
                raise self._fail("think_time_s", problem)
            if self.rate is not None:
                raise self._fail("rate", "give either a rate (requests/s) or a think time, not both: "
                                         "with a rate each user's wait is constant_throughput(rate / users)")
        env = self.extra_env
        if not isinstance(env, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise self._fail("extra_env", "expected a mapping of environment variable names to string values")
        object.__setattr__(self, "extra_env", MappingProxyType(dict(env)))

    @property
    def rate_per_user(self) -> float | None:
        """Each user's `constant_throughput` (requests/s), or None without a rate."""
        return None if self.rate is None else self.rate / self.users

    @property
    def run_time_s(self) -> int:
        """Locust's `-t`: whole seconds, at least the duration."""
        return max(1, math.ceil(self.duration_s))
