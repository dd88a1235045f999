"""One run analysed once for every report: its record, score, fixes, per-service stats and time series."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.report.advice import Fix, what_to_fix
from harness.report.rundata import RunRecord, read_run, read_samples
from harness.report.score import Score, resilience_score
from harness.report.series import Series, time_series
from harness.report.stats import ServiceStats, prepare, service_stats

if TYPE_CHECKING:
    import pandas as pd

    from harness.report.meshview import MeshView

logger = logging.getLogger("harness.report")


@dataclass(frozen=True, eq=False)
class Analysis:
    """What report.html, summary.md and the baselines show about one run."""

    run: RunRecord
    score: Score
    fixes: tuple[Fix, ...]
    fix_note: str  # why there is no advice although SLOs broke ("" otherwise)
    stats: tuple[ServiceStats, ...]
    series: tuple[Series, ...]
    samples: int  # how many request samples the run has


def analyse(run_dir: Path, *, samples: pd.DataFrame | None = None, mesh: MeshView | None = None) -> Analysis:
    """Read and analyse a run directory; `samples` and `mesh` override what is read from disk."""
    run = read_run(run_dir)
    if samples is None:
        samples = read_samples(run_dir)
    return analyse_run(run, samples, mesh=mesh)


def analyse_run(run: RunRecord, samples: pd.DataFrame | None, *, mesh: MeshView | None = None) -> Analysis:
    """Analyse a run already read, with its samples (None when it has none)."""
    fixes, note = _fixes(run, mesh)
    prepared = prepare(samples) if samples is not None and len(samples) else None
    return Analysis(
        run=run, score=resilience_score(run), fixes=tuple(fixes), fix_note=note,
        stats=tuple(service_stats(prepared, run.phases)) if prepared is not None else (),
        series=tuple(time_series(prepared, run.origin)) if prepared is not None else (),
        samples=0 if samples is None else len(samples),
    )  # fmt: skip


def _fixes(run: RunRecord, mesh: MeshView | None) -> tuple[list[Fix], str]:
    if not any(row.breached for row in run.slos):
        return [], ""
    if mesh is None:
        from harness.report.meshview import declared_view

        try:
            mesh = declared_view()
        except HarnessError as exc:  # the report still tells what broke, only not which setting governs it
            logger.warning("no advice: the mesh configuration could not be read: %s", exc)
            return [], f"the mesh configuration could not be read, so no setting is named: {exc}"
    return what_to_fix(run, mesh), ""
