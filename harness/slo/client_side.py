"""Client-side SLOs (what users saw) from the load generator's per-request samples, vectorised with numpy.

Samples: one row per request with columns timestamp (epoch s, request start), name, method, status (0 for a
connection error), latency_ms, tier, ok, response_length, error. A phase window (start, end] takes
the samples with start < timestamp <= end, as a Prometheus range ending at `end` does.
    availability  share of requests with ok and 0 < status < 500
    error_ratio   share of requests with status >= 500 or status 0 (connection errors)
    latency       the quantile of latency_ms over every request, failed ones included: the smallest
                  latency that at least that share of requests did not exceed (inverted CDF)
pandas is imported only to read a CSV: it is slow to import, and mesh SLOs do not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import ConfigError
from harness.slo.model import Phase, Slo, SloResult

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("timestamp", "name", "method", "status", "latency_ms", "tier", "ok", "response_length", "error")
_NEEDED = ("timestamp", "name", "status", "latency_ms", "tier", "ok")
_NUMERIC = ("timestamp", "status", "latency_ms")  # what the SLOs and reports compute with
_DESCRIPTION = {
    "availability": "share of samples with ok and 0 < status < 500",
    "error_ratio": "share of samples with status >= 500 or status 0",
    "latency": "quantile {quantile} of latency_ms (inverted CDF)",
}


def load_samples(path: str | Path) -> pd.DataFrame:
    """Read a samples CSV; a missing file or column is a ConfigError naming the file."""
    import pandas as pd

    dtypes = {"name": "string", "method": "string", "tier": "string", "error": "string"}
    try:
        samples = pd.read_csv(path, dtype=dtypes, keep_default_na=False)  # an empty tier stays ""
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"cannot read the samples CSV: {exc}", file=path) from exc
    missing = [column for column in COLUMNS if column not in samples.columns]
    if missing:
        raise ConfigError(f"missing columns {', '.join(missing)}; expected {', '.join(COLUMNS)}", file=path, field="columns")
    for column in _NUMERIC:
        _check_numeric(samples, column, path)
    samples["ok"] = _ok(samples)
    return samples


def _check_numeric(samples: pd.DataFrame, column: str, path: str | Path) -> None:
    """The column as finite numbers; the first row that is not one is a ConfigError naming it."""
    import pandas as pd

    values = pd.to_numeric(samples[column], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        row = int(np.argmax(bad))
        raw = str(samples[column].iloc[row])[:40]
        raise ConfigError(f"expected a finite number in every row of {column}, got {raw!r} on line {row + 2}",
                          file=path, field=f"{column} (line {row + 2})")
    samples[column] = values


def evaluate_samples(slos: Sequence[Slo], phase: Phase, start: float, end: float, samples: pd.DataFrame) -> list[SloResult]:
    """Every client SLO that holds in `phase`, over the samples of (start, end]; none there is no_data."""
    missing = [column for column in _NEEDED if column not in samples.columns]
    if missing:
        raise ValueError(f"samples lack columns {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    # A request belongs to the window it completed in, as in Prometheus (a counter grows at the
    # response): one in flight when chaos starts and failed by it counts in chaos, not baseline.
    completed = samples["timestamp"].to_numpy(dtype=float) + samples["latency_ms"].to_numpy(dtype=float) / 1000.0
    in_window = (completed > start) & (completed <= end)
    results = []
    for slo in slos:
        if slo.source != "client" or phase not in slo.phases:
            continue
        value, count = sample_value(slo, samples, in_window)
        results.append(_result(slo, phase, start, end, value, count))
    return results


def sample_value(slo: Slo, samples: pd.DataFrame, in_window: np.ndarray) -> tuple[float | None, int]:
    """The SLO's value over the rows selected by `in_window` (and its tier/request), and their count."""
    selected = in_window
    if slo.tier is not None:
        selected = selected & samples["tier"].eq(slo.tier).to_numpy(dtype=bool, na_value=False)
    if slo.request is not None:
        selected = selected & samples["name"].eq(slo.request).to_numpy(dtype=bool, na_value=False)
    count = int(np.count_nonzero(selected))
    if count == 0:
        return None, 0
    if slo.template == "latency":
        latencies = samples["latency_ms"].to_numpy(dtype=float)[selected]
        return float(np.quantile(latencies, slo.quantile, method="inverted_cdf")), count
    status = samples["status"].to_numpy(dtype=float)[selected]
    if slo.template == "availability":
        ok = _ok(samples)[selected]
        return float(np.count_nonzero(ok & (status > 0) & (status < 500)) / count), count
    if slo.template == "error_ratio":
        return float(np.count_nonzero((status >= 500) | (status == 0)) / count), count
    raise ValueError(f"SLO {slo.name!r}: no client-side computation for template {slo.template!r}")


def describe(slo: Slo) -> str:
    """What a client SLO computes, for SloResult.query."""
    filters = [f"{key}={value}" for key, value in (("tier", slo.tier), ("request", slo.request)) if value]
    text = _DESCRIPTION[str(slo.template)].format(quantile=slo.quantile)
    return f"client samples: {text}" + (f" where {' and '.join(filters)}" if filters else "")


def _ok(samples: pd.DataFrame) -> np.ndarray:
    """The ok column as booleans; read as text, "False" would otherwise count as true."""
    column = samples["ok"]
    if column.dtype == bool:
        return column.to_numpy()
    return column.astype("string").str.lower().isin(["true", "1"]).to_numpy(dtype=bool)


def _result(slo: Slo, phase: Phase, start: float, end: float, value: float | None, count: int) -> SloResult:
    if value is None:
        verdict, detail = "no_data", "no samples in the window"
    else:
        verdict, detail = ("pass" if slo.holds(value) else "fail"), f"{count} samples"
    return SloResult(
        name=slo.name, phase=phase, query=describe(slo), value=value, objective=slo.objective,
        comparator=slo.comparator, verdict=verdict, window_start=start, window_end=end, source="client",
        detail=detail,
    )  # fmt: skip
