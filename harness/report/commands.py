"""What `harness report`, `harness compare` and `harness baseline save` do; cli.py parses and calls these.

Each prints its result and returns the exit code; bad input raises ConfigError (exit 2 in the CLI).
The baseline store is ./baselines unless HARNESS_BASELINE_DIR names another folder.
"""

from __future__ import annotations

from pathlib import Path

from harness import environment
from harness.errors import ConfigError
from harness.report.baseline import DEFAULT_STORE, baseline_for, save_baseline
from harness.report.compare import compare, comparison_exit_code, parse_tolerance
from harness.report.compare_text import render_comparison
from harness.report.rundata import read_run
from harness.report.score import resilience_score
from harness.report.write import regenerate


def baseline_store(store: Path | None = None) -> Path:
    """The folder baselines live in: the argument, else HARNESS_BASELINE_DIR, else ./baselines."""
    return Path(store) if store is not None else (environment.get_path("HARNESS_BASELINE_DIR") or DEFAULT_STORE)


def cli_report(run_dir: Path) -> int:
    """`harness report RUN_DIR`: regenerate the reports, print where they are and the verdict; 0."""
    written = regenerate(Path(run_dir))
    run = read_run(Path(run_dir))
    for path in written:
        print(f"wrote {path}")
    print(f"verdict: {run.verdict} (exit {run.exit_code}), resilience score {resilience_score(run)}")
    return 0


def cli_compare(run: Path, baseline: Path | None = None, tolerance_text: str | None = None,
                store: Path | None = None) -> int:
    """`harness compare RUN [BASELINE] [--tolerance ...]`: print the table; 1 on a regression, else 0.

    Without BASELINE the run's experiment's saved baseline is used.
    """
    tolerance = parse_tolerance(tolerance_text)
    if baseline is None:
        baseline = baseline_for(Path(run), baseline_store(store))
        if baseline is None:
            raise ConfigError(f"no baseline saved for experiment {read_run(Path(run)).title!r} under "
                              f"{baseline_store(store)}; save one with `harness baseline save RUN` or name one",
                              field="BASELINE")
    comparison = compare(Path(run), Path(baseline), tolerance)
    print(render_comparison(comparison), end="")
    return comparison_exit_code(comparison)


def cli_baseline_save(run: Path, store: Path | None = None, *, force: bool = False) -> int:
    """`harness baseline save RUN [--force]`: save the run as its experiment's baseline, print where; 0.
    A run that did not PASS needs `force`."""
    path = save_baseline(Path(run), baseline_store(store), force=force)
    record = read_run(Path(run))
    print(f"saved {run} ({record.verdict}) as the baseline of {record.title!r}: {path}")
    return 0
