"""Per-service summary statistics of the samples (p50/p95/p99, availability, throughput) per phase.

A request counts in the window it completed in (timestamp + latency), as the client-side SLOs count
it; windows are (start, end]. Quantiles are inverted-CDF quantiles, as in harness.slo.client_side.
Every computation is vectorised with numpy: one sort per call, so a million samples take well under
a second. "all requests" is the service name of the aggregate over every request name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

QUANTILES = (0.5, 0.95, 0.99)
ALL = "all requests"
RUN = "run"  # the phase name of the whole run, from the first phase start to the last phase end


@dataclass(frozen=True, kw_only=True)
class ServiceStats:
    """One service (Locust request name, or "all requests") over one phase."""

    service: str
    phase: str  # baseline | chaos | recovery | run
    requests: int
    availability: float | None  # share 0..1 of requests with ok and 0 < status < 500
    throughput_rps: float | None  # completed requests per second of the window
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class Prepared:
    """Sample columns as numpy arrays, computed once and shared by statistics and time series."""

    names: tuple[str, ...]  # request names, sorted; codes index into it
    codes: np.ndarray  # int, per sample
    completed: np.ndarray  # epoch seconds the request completed
    latency: np.ndarray  # ms
    failed: np.ndarray  # bool: not (ok and 0 < status < 500)


def prepare(samples: pd.DataFrame) -> Prepared:
    """Pull the columns every statistic needs out of the samples once."""
    import pandas as pd

    codes, uniques = pd.factorize(samples["name"].astype("string").fillna(""), sort=True)
    latency = samples["latency_ms"].to_numpy(dtype=float)
    status = samples["status"].to_numpy(dtype=float)
    ok = _ok_column(samples) & (status > 0) & (status < 500)
    return Prepared(names=tuple(str(u) for u in uniques), codes=codes.astype(np.int64),
                    completed=samples["timestamp"].to_numpy(dtype=float) + latency / 1000.0,
                    latency=latency, failed=~ok)


def grouped(keys: np.ndarray, n_keys: int, latency: np.ndarray, failed: np.ndarray,
            quantiles: tuple[float, ...] = QUANTILES) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """Per key 0..n_keys-1: request count, failure count and latency quantiles (NaN for an empty key)."""
    counts = np.bincount(keys, minlength=n_keys)
    failures = np.bincount(keys, weights=failed.astype(float), minlength=n_keys)
    order = np.lexsort((latency, keys))
    ordered = latency[order]
    starts = np.cumsum(counts) - counts
    values: dict[float, np.ndarray] = {}
    for q in quantiles:
        rank = np.maximum(np.ceil(q * counts).astype(np.int64) - 1, 0)  # inverted CDF: smallest x with F(x) >= q
        index = np.minimum(starts + rank, max(len(ordered) - 1, 0))
        picked = ordered[index] if len(ordered) else np.zeros(n_keys)
        values[q] = np.where(counts > 0, picked, np.nan)
    return counts, failures, values


def service_stats(samples: pd.DataFrame | Prepared, phases: Mapping[str, tuple[float, float]]) -> list[ServiceStats]:
    """Stats per request name and for all requests, in every phase and over the whole run."""
    data = samples if isinstance(samples, Prepared) else prepare(samples)
    windows = dict(phases)
    if phases:
        windows[RUN] = (min(s for s, _ in phases.values()), max(e for _, e in phases.values()))
    elif len(data.completed):
        windows[RUN] = (float(data.completed.min()) - 1e-6, float(data.completed.max()))
    out: list[ServiceStats] = []
    for phase, (start, end) in windows.items():
        inside = (data.completed > start) & (data.completed <= end)
        codes = data.codes[inside]
        latency, failed = data.latency[inside], data.failed[inside]
        for labels, keys in (((ALL,), np.zeros(len(codes), dtype=np.int64)), (data.names, codes)):
            counts, failures, values = grouped(keys, len(labels), latency, failed)
            for i, label in enumerate(labels):
                out.append(_stats(label, phase, int(counts[i]), float(failures[i]), end - start,
                                  {q: values[q][i] for q in QUANTILES}))
    return out


def _ok_column(samples: pd.DataFrame) -> np.ndarray:
    """The ok column as booleans (read from CSV as text, "False" would otherwise count as true)."""
    column = samples["ok"]
    if column.dtype == bool:
        return column.to_numpy()
    return column.astype("string").str.lower().isin(["true", "1"]).to_numpy(dtype=bool)


def _stats(service: str, phase: str, count: int, failures: float, duration_s: float,
           quantiles: Mapping[float, float]) -> ServiceStats:
    def q(value: float) -> float | None:
        return None if count == 0 or np.isnan(value) else round(float(value), 3)

    return ServiceStats(
        service=service, phase=phase, requests=count,
        availability=None if count == 0 else (count - failures) / count,
        throughput_rps=None if duration_s <= 0 else count / duration_s,
        p50_ms=q(quantiles[0.5]), p95_ms=q(quantiles[0.95]), p99_ms=q(quantiles[0.99]),
    )  # fmt: skip
