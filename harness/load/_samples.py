"""The per-request samples a run leaves (samples.csv, or samples-<pid>.csv per worker): columns, rows, frame."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import pandas

SAMPLE_COLUMNS = ("timestamp", "name", "method", "status", "latency_ms", "tier", "ok", "response_length", "error")
"""samples.csv, in order: request start (epoch s), request name, HTTP method, status (0: no response),
latency (ms), tier (from the request context or the `[tier]` in its name), ok (Locust's verdict),
response length (bytes), error (empty when ok)."""


class Sample(NamedTuple):
    """One request as the recorder saw it."""

    timestamp: float
    name: str
    method: str
    status: int
    latency_ms: float
    tier: str
    ok: bool
    response_length: int
    error: str


_NUMERIC = {"timestamp": "float64", "status": "int64", "latency_ms": "float64", "response_length": "int64"}


def sample_files(run_dir: Path) -> list[Path]:
    """samples.csv and every worker's samples-<pid>.csv in `run_dir`."""
    return sorted(run_dir.glob("samples.csv")) + sorted(run_dir.glob("samples-*.csv"))


def iter_samples(run_dir: Path) -> Iterator[Sample]:
    """Every complete row of every samples file (a row cut short by a kill is skipped)."""
    for path in sample_files(run_dir):
        with open(path, newline="") as handle:
            rows = csv.reader(handle)
            if next(rows, None) is None:
                continue
            for row in rows:
                if len(row) != len(SAMPLE_COLUMNS):
                    continue
                try:
                    yield Sample(float(row[0]), row[1], row[2], int(row[3]), float(row[4]), row[5],
                                 row[6] == "True", int(row[7]), row[8])
                except ValueError:
                    continue


def samples_frame(run_dir: Path) -> pandas.DataFrame:
    """Every sample of the run as one DataFrame, sorted by timestamp (pandas is imported here, lazily)."""
    import pandas

    frames = [pandas.DataFrame({c: pandas.Series(dtype="string") for c in SAMPLE_COLUMNS})]
    for path in sample_files(run_dir):
        if path.stat().st_size:
            frames.append(pandas.read_csv(path, dtype="string", keep_default_na=False, on_bad_lines="skip"))
    text = pandas.concat(frames, ignore_index=True)[list(SAMPLE_COLUMNS)]
    numbers = text[list(_NUMERIC)].apply(pandas.to_numeric, errors="coerce")
    whole = numbers.notna().all(axis=1) & text["ok"].isin(["True", "False"])  # drops a row cut by a kill
    frame = text[whole].assign(ok=(text["ok"][whole] == "True").astype(bool))
    for column, dtype in _NUMERIC.items():
        frame[column] = numbers[column][whole].astype(dtype)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
