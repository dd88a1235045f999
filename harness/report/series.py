"""Time series per service in fixed buckets (1 s by default): throughput, error rate, p50/p95/p99 latency.

A request falls in the bucket of its completion time (timestamp + latency), relative to the run's
origin. Runs longer than MAX_POINTS seconds get wider buckets so a plot never has more points than that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.report.stats import ALL, QUANTILES, Prepared, grouped

MAX_POINTS = 1200


@dataclass(frozen=True, eq=False)
class Series:
    """One service's buckets; arrays are aligned, latency and error rate are NaN in empty buckets."""

    service: str
    bucket_s: float
    t: np.ndarray  # bucket start, seconds since the run's origin
    requests: np.ndarray  # completed requests per bucket
    throughput: np.ndarray  # requests per second
    error_rate: np.ndarray  # share 0..1 of failed requests
    latency: dict[float, np.ndarray]  # quantile -> ms


def time_series(data: Prepared, origin: float, *, bucket_s: float = 1.0, max_points: int = MAX_POINTS) -> list[Series]:
    """"all requests" first, then one series per request name, over the span the samples cover."""
    if len(data.completed) == 0:
        return []
    relative = data.completed - origin
    first = math.floor(float(relative.min()))
    span = float(relative.max()) - first
    bucket_s = max(bucket_s, math.ceil(span / max_points)) if span > bucket_s * max_points else bucket_s
    index = np.floor((relative - first) / bucket_s).astype(np.int64)
    n_buckets = int(index.max()) + 1
    t = first + np.arange(n_buckets) * bucket_s
    out = []
    for labels, codes in (((ALL,), np.zeros(len(index), dtype=np.int64)), (data.names, data.codes)):
        counts, failures, values = grouped(data, codes * n_buckets + index, len(labels) * n_buckets, QUANTILES)
        for i, label in enumerate(labels):
            part = slice(i * n_buckets, (i + 1) * n_buckets)
            n = counts[part].astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                error_rate = np.where(n > 0, failures[part] / n, np.nan)
            out.append(Series(service=label, bucket_s=bucket_s, t=t, requests=counts[part], throughput=n / bucket_s,
                              error_rate=error_rate, latency={q: values[q][part] for q in QUANTILES}))
    return out
