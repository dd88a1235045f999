"""Baselines for pre-release sign-off: save a run as its experiment's baseline, find it, read it back.

A baseline is one file, `<store>/<experiment id>/baseline.json` (store defaults to ./baselines),
holding the run's journal, its per-service summary stats (ServiceStats for every phase) and where it
came from. It does not keep the samples: comparisons need only the stats and SLO results, so the
file stays small and the run directory may be deleted. Saving again replaces the experiment's baseline.

The experiment id is stable: the experiment's explicit `id`, else its file name without the suffix
(`harness run` records the file in the journal). Titles are not ids: two titles can map to one name
("Pod kill!" and "pod-kill"), every non-ASCII title to none. Only a journal that records neither (one
written before the file was recorded) falls back to a name made from the title. Two experiments
under one id is a collision, an error: the baseline records its experiment's title, and a run of
another title is refused. Only a PASS run becomes a baseline unless `force` (a FAIL or INCONCLUSIVE run
then may); an ERROR or INTERRUPTED run never does: it did not judge every phase.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, ExitCode
from harness.files import atomic_write
from harness.pathcheck import checked_path
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
    experiment_id: str = ""
    stats: tuple[ServiceStats, ...]
    slos: tuple[SloRow, ...]


def slug(title: str) -> str:
    """A file-system-safe name for an experiment title: lower case, runs of other characters to "-"."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80] or "experiment"


ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ID_EXPECTED = "letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128"


def experiment_id(journal: Mapping[str, Any], *, file: Path | None = None) -> str:
    """The stable id of a run's experiment: its `id`, else its file's name without the suffix (as
    recorded in harness.experiment_file), else (older journals) a name made from the title."""
    experiment = journal.get("experiment") if isinstance(journal.get("experiment"), Mapping) else {}
    explicit = experiment.get("id")
    if explicit is not None:
        if not isinstance(explicit, str) or not ID_PATTERN.fullmatch(explicit):
            raise ConfigError(f"expected an experiment id of {ID_EXPECTED}, got {str(explicit)[:60]!r}", file=file,
                              field="experiment.id")
        return explicit
    harness = journal.get("harness") if isinstance(journal.get("harness"), Mapping) else {}
    recorded = harness.get("experiment_file")
    if isinstance(recorded, str) and recorded:
        stem = Path(recorded).stem
        if not ID_PATTERN.fullmatch(stem):
            raise ConfigError(f"the experiment file name {stem[:60]!r} is no usable id ({ID_EXPECTED}); give the "
                              "experiment an explicit `id`", file=file, field="harness.experiment_file")
        return stem
    return slug(str(experiment.get("title") or "experiment"))


def snapshot(run_dir: Path) -> Snapshot:
    """The stats and SLO results of a run directory (stats from its samples)."""
    run = read_run(run_dir)
    samples = read_samples(run_dir)
    stats = service_stats(samples, run.phases) if samples is not None and len(samples) else []
    return Snapshot(source=Path(run_dir), experiment=run.title, exit_code=run.exit_code, stats=tuple(stats),
                    slos=run.slos, experiment_id=experiment_id(run.journal, file=Path(run_dir) / JOURNAL))


def load_snapshot(path: Path) -> Snapshot:
    """A run directory, a baseline.json, or a folder holding one."""
    path = checked_path(path, field="RUN or BASELINE")
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
        code = data["exit_code"]
        if isinstance(code, bool) or not isinstance(code, int):
            raise ValueError(f"exit_code: expected a whole number, got {code!r}")
        identity = data.get("experiment_id") or experiment_id(data["journal"], file=file)
        return Snapshot(source=file, experiment=str(data["experiment"]), exit_code=code, stats=stats, slos=slos,
                        experiment_id=str(identity))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"not a baseline written by `harness baseline save` (format {FORMAT}): {exc}",
                          file=file, field=str(exc.args[0]) if isinstance(exc, KeyError) else None) from exc


def save_baseline(run: Path, store: Path = DEFAULT_STORE, *, force: bool = False) -> Path:
    """Mark a run as its experiment's baseline; returns the baseline file. A run that did not PASS is
    refused unless `force`; another experiment's baseline under the same id is a collision (an error)."""
    record = read_run(run)
    _check_usable(record, force=force)
    snap = snapshot(run)
    target = Path(store) / snap.experiment_id / BASELINE_FILE
    _check_collision(target, record, snap.experiment_id)
    payload: dict[str, Any] = {
        "format": FORMAT, "experiment": record.title, "experiment_id": snap.experiment_id, "saved_at": time.time(),
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
    target = Path(store) / experiment_id(record.journal, file=Path(run) / JOURNAL) / BASELINE_FILE
    if not target.is_file():
        return None
    _check_collision(target, record, target.parent.name)
    return target


def _check_usable(record: RunRecord, *, force: bool) -> None:
    why = f"{record.verdict} (exit {record.exit_code}){': ' + record.reason if record.reason else ''}"
    if ExitCode.of(record.exit_code) in (ExitCode.INVALID, ExitCode.INTERRUPTED):  # of(): unknown codes are INVALID
        raise ConfigError(f"a baseline must be a run that completed with a verdict; this one is {why}",
                          file=record.run_dir / JOURNAL, field="harness.exit_code")
    if record.exit_code != ExitCode.PASS and not force:
        raise ConfigError(f"expected a PASS run as the baseline, this one is {why}; pass --force to sign off "
                          "against it anyway", file=record.run_dir / JOURNAL, field="harness.exit_code")


def _check_collision(target: Path, record: RunRecord, identity: str) -> None:
    """The baseline under this id must be of the same experiment (the same title)."""
    if not target.is_file():
        return
    existing = _read_json(target).get("experiment")
    if existing != record.title:
        raise ConfigError(f"baseline id {identity!r} collision: {target} holds the baseline of experiment "
                          f"{str(existing)[:80]!r}, this run is of {record.title[:80]!r}; give the experiments "
                          f"distinct `id`s (or, if the title was changed, remove {target})",
                          file=record.run_dir / JOURNAL, field="experiment.id")


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
