"""Request counts, rates and latency percentiles of a run, from Locust's stats CSV and from the samples."""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from harness.load._samples import Sample

TOTAL = "Aggregated"  # Locust's name for the all-requests row


@dataclass(frozen=True)
class RequestStats:
    """One request name (or all of them): counts, rate and latency."""

    name: str
    requests: int
    failures: int
    rps: float
    """Requests per second over the span the requests covered."""
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    """Percentiles in milliseconds; None without requests."""


@dataclass(frozen=True)
class StatsTable:
    """Stats per request name plus the total; one entry per name (methods sharing a name are merged)."""

    total: RequestStats
    by_name: Mapping[str, RequestStats]


@dataclass(frozen=True)
class LoadStats:
    """A run's numbers two ways: Locust's own accounting and the recorded samples."""

    locust: StatsTable | None
    """From locust_stats.csv (percentiles on Locust's rounded histogram); None if Locust wrote none."""
    samples: StatsTable
    """From the samples files (every recorded request; percentiles at 0.01 ms)."""


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:  # "N/A" without requests
        return None
    return value if math.isfinite(value) else None


def _merge(a: RequestStats, b: RequestStats) -> RequestStats:
    """Two rows sharing a name: counts and rates add up, percentiles take the worse (an upper bound)."""
    worse = [max((v for v in pair if v is not None), default=None)
             for pair in ((a.p50_ms, b.p50_ms), (a.p95_ms, b.p95_ms), (a.p99_ms, b.p99_ms))]
    return RequestStats(a.name, a.requests + b.requests, a.failures + b.failures, a.rps + b.rps, *worse)


def read_locust_csv(path: Path) -> StatsTable | None:
    """Locust's `<prefix>_stats.csv`; None when missing or without its Aggregated row."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return None
    by_name: dict[str, RequestStats] = {}
    total = None
    for row in rows:
        try:
            stats = RequestStats(row["Name"], int(row["Request Count"]), int(row["Failure Count"]),
                                 float(row["Requests/s"]), *(_number(row[q]) for q in ("50%", "95%", "99%")))
        except (KeyError, TypeError, ValueError):
            continue
        if stats.name == TOTAL and not row.get("Type"):
            total = stats
        else:
            by_name[stats.name] = _merge(by_name[stats.name], stats) if stats.name in by_name else stats
    if total is None:
        return None
    return StatsTable(total, MappingProxyType(by_name))


def _quantiles(histogram: Counter[float], qs: tuple[float, ...]) -> list[float | None]:
    """Nearest-rank percentiles of a {latency: count} histogram."""
    count = sum(histogram.values())
    if not count:
        return [None] * len(qs)
    out: list[float | None] = []
    ordered, seen, index = sorted(histogram.items()), 0, 0
    for q in qs:  # ascending
        rank = max(1, math.ceil(q * count))
        while seen + ordered[index][1] < rank:
            seen += ordered[index][1]
            index += 1
        out.append(ordered[index][0])
    return out


@dataclass
class _Tally:
    """One name's running totals; latencies kept as a histogram at 0.01 ms, so memory stays bounded."""

    latencies: Counter[float] = field(default_factory=Counter)
    failures: int = 0
    first: float = math.inf
    last: float = -math.inf

    def add(self, sample: Sample) -> None:
        self.latencies[round(sample.latency_ms, 2)] += 1
        self.failures += not sample.ok
        self.first = min(self.first, sample.timestamp)
        self.last = max(self.last, sample.timestamp + sample.latency_ms / 1000)

    def merge(self, other: _Tally) -> None:
        self.latencies.update(other.latencies)
        self.failures += other.failures
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)

    def stats(self, name: str) -> RequestStats:
        requests = sum(self.latencies.values())
        span = self.last - self.first
        rps = requests / span if requests and span > 0 else 0.0
        return RequestStats(name, requests, self.failures, rps, *_quantiles(self.latencies, (0.5, 0.95, 0.99)))


def samples_table(samples: Iterable[Sample]) -> StatsTable:
    """Stats from samples: exact counts; rates over the first request's start to the last one's end;
    percentiles at 0.01 ms."""
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for sample in samples:
        tallies[sample.name].add(sample)
    total = _Tally()
    for tally in tallies.values():
        total.merge(tally)
    by_name = {name: tallies[name].stats(name) for name in sorted(tallies)}
    return StatsTable(total.stats(TOTAL), MappingProxyType(by_name))
