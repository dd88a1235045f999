"""Request counts, rates and latency percentiles of a run, from Locust's stats CSV and from the samples."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    """From the samples files (exact percentiles, every recorded request)."""


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


def _quantile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _summarise(name: str, latencies: list[float], failures: int, first: float, last: float) -> RequestStats:
    latencies.sort()
    span = last - first
    rps = len(latencies) / span if span > 0 else 0.0
    return RequestStats(name, len(latencies), failures, rps,
                        _quantile(latencies, 0.5), _quantile(latencies, 0.95), _quantile(latencies, 0.99))


def samples_table(samples: Iterable[Sample]) -> StatsTable:
    """Stats from samples; rates over the time from the first request's start to the last one's end."""
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    spans: dict[str, tuple[float, float]] = {}
    for s in samples:
        latencies[s.name].append(s.latency_ms)
        failures[s.name] += not s.ok
        end = s.timestamp + s.latency_ms / 1000
        first, last = spans.get(s.name, (s.timestamp, end))
        spans[s.name] = (min(first, s.timestamp), max(last, end))
    first = min((f for f, _ in spans.values()), default=0.0)
    last = max((t for _, t in spans.values()), default=0.0)
    everything = [v for values in latencies.values() for v in values]
    total = _summarise(TOTAL, everything, sum(failures.values()), first, last)
    by_name = {n: _summarise(n, latencies[n], failures[n], *spans[n]) for n in sorted(latencies)}
    return StatsTable(total, MappingProxyType(by_name))
