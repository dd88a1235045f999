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


@dataclass(frozen=True, eq=False)
class Prepared:
    """Sample columns as numpy arrays, computed once and shared by statistics and time series."""

    names: tuple[str, ...]  # request names, sorted; codes index into it
    codes: np.ndarray  # int, per sample
    completed: np.ndarray  # epoch seconds the request completed
    latency: np.ndarray  # ms
    failed: np.ndarray  # bool: not (ok and 0 < status < 500)
    by_latency: np.ndarray  # sample indices in ascending latency: the one float sort every quantile shares


def prepare(samples: pd.DataFrame) -> Prepared:
    """Pull the columns every statistic needs out of the samples once."""
    import pandas as pd

    codes, uniques = pd.factorize(samples["name"].astype("string").fillna(""), sort=True)
    latency = samples["latency_ms"].to_numpy(dtype=float)
    status = samples["status"].to_numpy(dtype=float)
    ok = _ok_column(samples) & (status > 0) & (status < 500)
    return Prepared(names=tuple(str(u) for u in uniques), codes=codes.astype(np.int64),
                    completed=samples["timestamp"].to_numpy(dtype=float) + latency / 1000.0,
                    latency=latency, failed=~ok, by_latency=np.argsort(latency))


def grouped(data: Prepared, keys: np.ndarray, n_keys: int,
            quantiles: tuple[float, ...] = QUANTILES) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """Per key 0..n_keys-1 (a sample with key n_keys or more is left out): request count, failure count and
    latency quantiles (NaN for an empty key).

    The samples are already in latency order (data.by_latency); a stable sort by key keeps that order
    within each key, and keys fit 16 bits in practice, where numpy's stable sort is a radix sort.
    """
    keys = np.minimum(keys, n_keys)
    counts = np.bincount(keys, minlength=n_keys + 1)
    failures = np.bincount(keys, weights=data.failed.astype(float), minlength=n_keys + 1)[:n_keys]
    ranked = keys[data.by_latency].astype(np.uint16 if n_keys < 2**16 else np.int64)
    ordered = data.latency[data.by_latency[np.argsort(ranked, kind="stable")]]
    starts = (np.cumsum(counts) - counts)[:n_keys]
    counts = counts[:n_keys]
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
    found: dict[tuple[str, str], ServiceStats] = {}
    for layer in _layers(windows):
        starts = np.array([start for _, start, _ in layer])
        ends = np.array([end for _, _, end in layer])
        index = np.searchsorted(starts, data.completed, side="left") - 1  # the window with start < completed ...
        inside = (index >= 0) & (data.completed <= ends[np.maximum(index, 0)])  # ... that ends at or after it
        window = np.where(inside, index, len(layer))
        for labels, codes in (((ALL,), np.zeros(len(data.codes), dtype=np.int64)), (data.names, data.codes)):
            n = len(labels)
            counts, failures, values = grouped(data, np.where(inside, window * n + codes, len(layer) * n),
                                               len(layer) * n)
            for w, (phase, start, end) in enumerate(layer):
                for i, label in enumerate(labels):
                    k = w * n + i
                    found[(label, phase)] = _stats(label, phase, int(counts[k]), float(failures[k]), end - start,
                                                   {q: values[q][k] for q in QUANTILES})
    return [found[(label, phase)] for phase in windows for label in (ALL, *data.names)]


def _layers(windows: Mapping[str, tuple[float, float]]) -> list[list[tuple[str, float, float]]]:
    """Windows in layers of disjoint ones, each sorted by start: one pass over the samples per layer."""
    layers: list[list[tuple[str, float, float]]] = []
    for name, (start, end) in sorted(windows.items(), key=lambda item: item[1]):
        layer = next((la for la in layers if la[-1][2] <= start), None)
        if layer is None:
            layers.append([(name, start, end)])
        else:
            layer.append((name, start, end))
    return layers


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
