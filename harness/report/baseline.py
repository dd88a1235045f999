"""Baselines for pre-release sign-off: save a run as its experiment's baseline, find it, read it back.

A baseline is one file, `<store>/<experiment-slug>/baseline.json` (store defaults to ./baselines, the
slug comes from the experiment's title), holding the run's journal, its per-service summary stats
(ServiceStats for every phase) and where it came from. It does not keep the samples: comparisons
need only the stats and SLO results, so the file stays small and the run directory may be deleted.
Saving again replaces the experiment's baseline.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ExitCode
from harness.files import atomic_write
from harness.report.rundata import JOURNAL, RunRecord, SloRow, slo_row, read_run, read_samples
from harness.report.stats import ServiceStats, service_stats

BASELINE_FILE = "baseline.json"
FORMAT = 1
DEFAULT_STORE = Path("baselines")


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What a comparison needs from a run or a saved baseline."""

    source: Path  # the run directory or baseline file it was read from
    experiment: str
    exit_code: int
    stats: tuple[ServiceStats, ...]
    slos: tuple[SloRow, ...]


def slug(title: str) -> str:
    """A file-system-safe name for an experiment title: lower case, runs of other characters to "-"."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80] or "experiment"


def snapshot(run_dir: Path) -> Snapshot:
    """The stats and SLO results of a run directory (stats from its samples)."""
    run = read_run(run_dir)
    samples = read_samples(run_dir)
    stats = service_stats(samples, run.phases) if samples is not None and len(samples) else []
    return Snapshot(source=Path(run_dir), experiment=run.title, exit_code=run.exit_code, stats=tuple(stats),
                    slos=run.slos)


def load_snapshot(path: Path) -> Snapshot:
    """A run directory, a baseline.json, or a folder holding one."""
    path = Path(path)
    if path.is_dir() and (path / JOURNAL).is_file():
        return snapshot(path)
    file = path / BASELINE_FILE if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"expected a run directory (with {JOURNAL}) or a saved baseline ({BASELINE_FILE}), found "
                          "neither", file=path)
    data = _read_json(file)
    try:
        stats = tuple(ServiceStats(**s) for s in data["stats"])
        slos = tuple(slo_row(r) for r in (data["journal"].get("harness") or {}).get("slo_results") or [])
        return Snapshot(source=file, experiment=str(data["experiment"]), exit_code=int(data["exit_code"]),
                        stats=stats, slos=slos)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"not a baseline written by `harness baseline save` (format {FORMAT}): {exc}",
                          file=file, field=str(exc.args[0]) if isinstance(exc, KeyError) else None) from exc


def save_baseline(run: Path, store: Path = DEFAULT_STORE) -> Path:
    """Mark a run as its experiment's baseline; returns the baseline file."""
    record = read_run(run)
    _check_usable(record)
    snap = snapshot(run)
    target = Path(store) / slug(record.title) / BASELINE_FILE
    payload: dict[str, Any] = {
        "format": FORMAT, "experiment": record.title, "saved_at": time.time(),
        "run_dir": str(Path(run).resolve()), "exit_code": record.exit_code, "verdict": record.verdict,
        "stats": [dataclasses.asdict(s) for s in snap.stats], "journal": record.journal,
    }  # fmt: skip
    try:
        # Durable: a baseline is kept for later runs to be compared against, not rewritten by them.
        atomic_write(target, json.dumps(payload, indent=1), durable=True)
    except OSError as exc:
        raise ConfigError(f"cannot write the baseline: {exc}", file=target) from exc
    return target


def baseline_for(run: Path, store: Path = DEFAULT_STORE) -> Path | None:
    """The saved baseline of the run's experiment, or None when none was saved."""
    record = read_run(run)
    target = Path(store) / slug(record.title) / BASELINE_FILE
    return target if target.is_file() else None


def _check_usable(record: RunRecord) -> None:
    if record.exit_code not in (ExitCode.PASS, ExitCode.FAIL):
        raise ConfigError(f"a baseline must be a run that completed with a verdict; this one is {record.verdict} "
                          f"(exit {record.exit_code}){': ' + record.reason if record.reason else ''}",
                          file=record.run_dir / JOURNAL, field="harness.exit_code")


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the baseline: {exc}", file=file) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"expected JSON, got an error at line {exc.lineno} column {exc.colno}: {exc.msg}",
                          file=file) from exc
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object", file=file)
    return data
