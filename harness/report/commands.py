"""What `harness report`, `harness compare` and `harness baseline save` do; cli.py parses, prints and exits.

Each returns what it made (files, a comparison, a saved baseline) and raises ConfigError on bad input;
printing and the exit code are the CLI's (harness/cli.py). The baseline store is ./baselines unless
HARNESS_BASELINE_DIR names another folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import environment
from harness.errors import ConfigError
from harness.report.baseline import DEFAULT_STORE, baseline_for, save_baseline
from harness.report.compare import Comparison, compare, parse_tolerance
from harness.report.rundata import RunRecord, read_run
from harness.report.score import Score, resilience_score
from harness.report.write import regenerate


@dataclass(frozen=True)
class RegeneratedReport:
    """The files `harness report` wrote and the run they describe."""

    written: tuple[Path, ...]
    run: RunRecord
    score: Score


@dataclass(frozen=True)
class SavedBaseline:
    """Where `harness baseline save` put the run, and the run."""

    path: Path
    run: RunRecord


def baseline_store(store: Path | None = None) -> Path:
    """The folder baselines live in: the argument, else HARNESS_BASELINE_DIR, else ./baselines."""
    return Path(store) if store is not None else (environment.get_path("HARNESS_BASELINE_DIR") or DEFAULT_STORE)


def regenerate_report(run_dir: Path) -> RegeneratedReport:
    """`harness report RUN_DIR`: regenerate report.html, junit.xml and summary.md of a run."""
    written = regenerate(Path(run_dir))
    run = read_run(Path(run_dir))
    return RegeneratedReport(written=tuple(written), run=run, score=resilience_score(run))


def compare_with_baseline(run: Path, baseline: Path | None = None, tolerance_text: str | None = None,
                          store: Path | None = None) -> Comparison:
    """`harness compare RUN [BASELINE] [--tolerance ...]`; without BASELINE, the run's experiment's saved one."""
    tolerance = parse_tolerance(tolerance_text)
    if baseline is None:
        baseline = baseline_for(Path(run), baseline_store(store))
        if baseline is None:
            raise ConfigError(f"no baseline saved for experiment {read_run(Path(run)).title!r} under "
                              f"{baseline_store(store)}; save one with `harness baseline save RUN` or name one",
                              field="BASELINE")
    return compare(Path(run), Path(baseline), tolerance)


def save_run_as_baseline(run: Path, store: Path | None = None, *, force: bool = False) -> SavedBaseline:
    """`harness baseline save RUN [--force]`: the run becomes its experiment's baseline; a run that did not
    PASS needs `force`."""
    path = save_baseline(Path(run), baseline_store(store), force=force)
    return SavedBaseline(path=path, run=read_run(Path(run)))
