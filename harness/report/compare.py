"""Compare a run with a baseline per service and SLO; changes past the tolerance are regressions (exit 1).

Per service (each Locust request name, and all requests) and phase: p50/p95/p99 latency and
throughput change in percent, availability in percentage points. Per SLO (labelled with the
destination service its query selects) and phase: the value's change, in percent for latency and in
points for ratios, and a verdict that went from pass to fail or no data. Worse means slower, less
available, fewer requests per second, a higher error ratio. Rows with fewer than `min_requests`
requests on either side are shown but not judged: a p99 of a handful of requests is noise.

A comparison fails on missing data, never passes on it: an SLO the baseline judged that the run did
not is a regression, and a run whose own exit code is not 0 is never signed off: the comparison's
exit code is the worst of the run's and the regressions' (ExitCode.worst).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from harness.errors import ConfigError, ExitCode
from harness.report.baseline import Snapshot, load_snapshot
from harness.report.rundata import SloRow
from harness.report.stats import ServiceStats

TOLERANCE_FIELD = "--tolerance"
_QUANTILE = re.compile(r"quantile\(?\s*(0?\.\d+)")
_PART = re.compile(r"^\s*(\w+)\s*=\s*([0-9]*\.?[0-9]+)\s*(%|pts?)?\s*$")
LATENCY_METRICS = ("p50_ms", "p95_ms", "p99_ms")
CAPACITY_SLO = "capacity-at-slo"  # the capacity run's result row (harness/run/capacity.py)


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    """How much worse a run may be than its baseline before it fails."""

    latency_pct: float = 10.0  # percent slower, any quantile without its own limit
    availability_pts: float = 0.1  # percentage points less available (99.9 -> 99.8 is 0.1)
    throughput_pct: float = 10.0  # percent fewer requests per second
    p50_pct: float | None = None  # per-quantile limits; None: latency_pct
    p95_pct: float | None = None
    p99_pct: float | None = None
    min_requests: int = 20  # rows with fewer requests on either side are not judged
    capacity_pct: float = 10.0  # percent less capacity at SLO (harness/run/capacity.py)

    def latency_limit(self, quantile: float | None) -> float:
        """The percent limit for a latency quantile (0.5, 0.95, 0.99), else latency_pct."""
        own = {0.5: self.p50_pct, 0.95: self.p95_pct, 0.99: self.p99_pct}.get(quantile) if quantile else None
        return self.latency_pct if own is None else own

    def describe(self) -> str:
        limits = ", ".join(f"{name} +{self.latency_limit(q):g}%" for name, q in (("p50", 0.5), ("p95", 0.95),
                                                                                ("p99", 0.99)))
        return (f"latency {limits}; availability -{self.availability_pts:g} pts; throughput "
                f"-{self.throughput_pct:g}%; capacity -{self.capacity_pct:g}%; rows under {self.min_requests} "
                "requests not judged")


def parse_tolerance(text: str | None) -> Tolerance:
    """"p99=10%,availability=0.1,throughput=10%" (keys latency, p50, p95, p99, availability, throughput)."""
    if text is None or not text.strip():
        return Tolerance()
    values: dict[str, float] = {}
    keys = {"latency": "latency_pct", "p50": "p50_pct", "p95": "p95_pct", "p99": "p99_pct",
            "availability": "availability_pts", "throughput": "throughput_pct", "capacity": "capacity_pct"}
    for part in text.split(","):
        match = _PART.match(part)
        if not match or match.group(1) not in keys:
            raise ConfigError(f"expected KEY=VALUE items like p99=10%,availability=0.1,throughput=10% with keys "
                              f"{', '.join(keys)}; got {part.strip()!r}", field=TOLERANCE_FIELD)
        key, number, unit = match.groups()
        if key == "availability" and unit == "%":
            raise ConfigError(f"availability is in percentage points (availability=0.1 allows 99.9 -> 99.8), "
                              f"not percent; got {part.strip()!r}", field=TOLERANCE_FIELD)
        if key != "availability" and unit not in (None, "%"):
            raise ConfigError(f"{key} is a percentage, e.g. {key}=10%; got {part.strip()!r}", field=TOLERANCE_FIELD)
        values[keys[key]] = float(number)
    return Tolerance(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Delta:
    """One metric of one service or SLO in one phase, baseline against run."""

    group: str  # "service" or "slo"
    subject: str  # a request name, "all requests", or "<service>: <slo>"
    phase: str
    metric: str  # p50_ms, p95_ms, p99_ms, availability, throughput_rps, value
    baseline: float | None
    run: float | None
    change: float | None  # in `unit`, positive = higher
    unit: str  # "%" or "pts"
    limit: float | None  # how far worse it may go, in `unit`; None: not judged
    regression: bool
    worse_if_higher: bool = True  # latency and error ratios: higher is worse; availability, throughput: lower
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Every delta between a run and its baseline, and the tolerance they were judged by."""

    run: str
    baseline: str
    experiment: str
    tolerance: Tolerance
    deltas: tuple[Delta, ...]
    notes: tuple[str, ...] = ()
    run_exit_code: int = ExitCode.PASS  # the run's own verdict; anything else is never "no regressions"

    @property
    def regressions(self) -> tuple[Delta, ...]:
        return tuple(d for d in self.deltas if d.regression)

    @property
    def signed_off(self) -> bool:
        """True only when the run passed and nothing regressed."""
        return self.run_exit_code == ExitCode.PASS and not self.regressions


def compare(run: Path, baseline: Path, tolerance: Tolerance = Tolerance()) -> Comparison:
    """Compare a run directory with a baseline (a run directory or a saved baseline.json)."""
    new, old = load_snapshot(run), load_snapshot(baseline)
    notes = []
    if new.experiment_id != old.experiment_id or new.experiment != old.experiment:
        notes.append(f"the baseline is of experiment {old.experiment_id!r} ({old.experiment!r}), the run of "
                     f"{new.experiment_id!r} ({new.experiment!r})")
    if old.exit_code != ExitCode.PASS:
        notes.append(f"the baseline's own verdict is {ExitCode.of(old.exit_code).word} (exit {old.exit_code})")
    if new.exit_code != ExitCode.PASS:
        notes.append(f"the run's own verdict is {ExitCode.of(new.exit_code).word} (exit {new.exit_code}): "
                     "not signed off whatever the metrics say")
    if not old.stats:
        notes.append("the baseline has no request samples: only SLOs compared")
    elif not new.stats:
        notes.append("the run has no request samples: every service counts as silent")
    deltas = _ordered(_service_deltas(old, new, tolerance)) + _slo_deltas(old, new, tolerance)
    return Comparison(run=str(new.source), baseline=str(old.source), experiment=new.experiment, tolerance=tolerance,
                      deltas=tuple(deltas), notes=tuple(notes), run_exit_code=new.exit_code)


def comparison_exit_code(comparison: Comparison) -> ExitCode:
    """The worst of the run's own exit code and FAIL (1) when any metric regressed; PASS (0) only when the
    run passed and nothing regressed."""
    return ExitCode.worst([comparison.run_exit_code, ExitCode.FAIL if comparison.regressions else ExitCode.PASS])


def _service_deltas(old: Snapshot, new: Snapshot, tolerance: Tolerance) -> list[Delta]:
    after = {(s.service, s.phase): s for s in new.stats}
    deltas = []
    for b in old.stats:
        s = after.get((b.service, b.phase)) or ServiceStats(service=b.service, phase=b.phase, requests=0,
                                                             availability=None, throughput_rps=0.0, p50_ms=None,
                                                             p95_ms=None, p99_ms=None)
        # Latency and availability need enough requests on both sides; a throughput drop needs them only
        # in the baseline: a service that went silent in the run is the worst regression of all.
        judged = min(s.requests, b.requests) >= tolerance.min_requests
        note = "" if judged else f"under {tolerance.min_requests} requests: not judged"
        for metric, q in zip(LATENCY_METRICS, (0.5, 0.95, 0.99)):
            deltas.append(_pct("service", s.service, s.phase, metric, getattr(b, metric), getattr(s, metric),
                               tolerance.latency_limit(q) if judged else None, worse_if_higher=True, note=note))
        deltas.append(_pts("service", s.service, s.phase, "availability", b.availability, s.availability,
                           tolerance.availability_pts if judged else None, worse_if_higher=False, note=note))
        rate_judged = b.requests >= tolerance.min_requests
        deltas.append(_pct("service", s.service, s.phase, "throughput_rps", b.throughput_rps, s.throughput_rps,
                           tolerance.throughput_pct if rate_judged else None, worse_if_higher=False,
                           note="" if rate_judged else note))
    return deltas


def _ordered(deltas: list[Delta]) -> list[Delta]:
    """Service by service (in first-seen order), each through its phases in run order."""
    subjects = list(dict.fromkeys(d.subject for d in deltas))
    phases = list(dict.fromkeys(d.phase for d in deltas))
    return sorted(deltas, key=lambda d: (subjects.index(d.subject), phases.index(d.phase)))


def _slo_deltas(old: Snapshot, new: Snapshot, tolerance: Tolerance) -> list[Delta]:
    before = {(r.name, r.phase): r for r in old.slos}
    judged = {(r.name, r.phase) for r in new.slos}
    deltas = [_missing(b) for b in old.slos if (b.name, b.phase) not in judged]
    for r in new.slos:
        b = before.get((r.name, r.phase))
        if b is None:
            continue
        subject = f"{r.service or r.source}: {r.name}"
        higher_worse = r.comparator in ("<=", "<")
        if r.name == CAPACITY_SLO:  # requests/s at which every SLO held: lower is worse
            delta = _pct("slo", subject, r.phase, "value", b.value, r.value, tolerance.capacity_pct,
                         worse_if_higher=False)
        elif r.kind == "latency":
            match = _QUANTILE.search(r.query)
            limit = tolerance.latency_limit(float(match.group(1)) if match else None)
            delta = _pct("slo", subject, r.phase, "value", b.value, r.value, limit, worse_if_higher=higher_worse)
        elif r.kind in ("availability", "error_ratio"):
            delta = _pts("slo", subject, r.phase, "value", b.value, r.value, tolerance.availability_pts,
                         worse_if_higher=higher_worse)
        else:
            delta = _pct("slo", subject, r.phase, "value", b.value, r.value, tolerance.latency_pct,
                         worse_if_higher=higher_worse)
        deltas.append(_verdict_change(delta, b, r))
    return deltas


def _missing(before: SloRow) -> Delta:
    """An SLO the baseline judged and the run did not: a regression, whatever its verdict was."""
    unit = "pts" if before.kind in ("availability", "error_ratio") else "%"
    return Delta(group="slo", subject=f"{before.service or before.source}: {before.name}", phase=before.phase,
                 metric="value", baseline=before.value, run=None, change=None, unit=unit, limit=None, regression=True,
                 worse_if_higher=before.comparator in ("<=", "<"), note="missing in the run (not judged)")


def _verdict_change(delta: Delta, before: SloRow, after: SloRow) -> Delta:
    """A pass that became a fail or no data is a regression whatever the size of the change."""
    if before.verdict == "pass" and after.verdict in ("fail", "no_data", "error"):
        return replace(delta, regression=True,
                       note=f"verdict pass -> {after.verdict}" + (f"; {delta.note}" if delta.note else ""))
    if before.verdict != after.verdict:
        return replace(delta, note=f"verdict {before.verdict} -> {after.verdict}")
    return delta


def _pct(group: str, subject: str, phase: str, metric: str, before: float | None, after: float | None,
         limit: float | None, *, worse_if_higher: bool, note: str = "") -> Delta:
    change = None if before is None or after is None or before == 0 else (after - before) / abs(before) * 100
    return _judge(group, subject, phase, metric, before, after, change, "%", limit, worse_if_higher, note)


def _pts(group: str, subject: str, phase: str, metric: str, before: float | None, after: float | None,
         limit: float | None, *, worse_if_higher: bool, note: str = "") -> Delta:
    change = None if before is None or after is None else (after - before) * 100
    return _judge(group, subject, phase, metric, before, after, change, "pts", limit, worse_if_higher, note)


def _judge(group: str, subject: str, phase: str, metric: str, before: float | None, after: float | None,
           change: float | None, unit: str, limit: float | None, worse_if_higher: bool, note: str) -> Delta:
    worse = None if change is None else (change if worse_if_higher else -change)
    regression = limit is not None and worse is not None and worse > limit + 1e-9
    if before is not None and after is None and limit is not None:
        regression, note = True, note or "no value in the run"
    return Delta(group=group, subject=subject, phase=phase, metric=metric, baseline=before, run=after, change=change,
                 unit=unit, limit=limit, regression=regression, worse_if_higher=worse_if_higher, note=note)
