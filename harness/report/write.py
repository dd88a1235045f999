"""Write every report into a run directory: report.html, junit.xml, summary.md and the samples as Parquet.

Called by `harness run` at the end of a run and by `harness report RUN_DIR` to regenerate. Each file
is written to a temporary name and renamed, so a reader never sees half a report. samples.csv stays:
it is the raw record; samples.parquet is added when pyarrow is installed and the CSV is newer than
it (otherwise the CSV is the only copy, which every reader here accepts).
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.files import atomic_write
from harness.report.analysis import analyse_run
from harness.report.junit import render_junit
from harness.report.page import render_html
from harness.report.rundata import SAMPLES_CSV, SAMPLES_PARQUET, read_journal, read_run, read_samples
from harness.report.summary import render_summary
from harness.report.xmltext import xml_safe

if TYPE_CHECKING:
    import pandas as pd

    from harness.report.meshview import MeshView

REPORT_HTML, JUNIT_XML, SUMMARY_MD = "report.html", "junit.xml", "summary.md"


def write_reports(run_dir: Path, *, mesh: MeshView | None = None) -> list[Path]:
    """Write the reports of a run directory; returns the files written."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    samples = read_samples(run_dir)
    analysis = analyse_run(run, samples, mesh=mesh)
    written = [
        _write(run_dir / REPORT_HTML, render_html(analysis)),
        _write(run_dir / JUNIT_XML, render_junit([(run, analysis.score)])),
        _write(run_dir / SUMMARY_MD, render_summary(analysis)),
    ]
    parquet = None
    if samples is not None and _parquet_stale(run_dir):
        parquet = write_parquet(samples, run_dir)
    return written + ([parquet] if parquet else [])


def regenerate(run_dir: Path) -> list[Path]:
    """`harness report RUN_DIR`: the same reports again; a missing or unreadable journal is a ConfigError."""
    read_journal(Path(run_dir))
    return write_reports(Path(run_dir))


def write_parquet(samples: pd.DataFrame, run_dir: Path) -> Path | None:
    """samples.parquet beside samples.csv when pyarrow is installed, else None (the CSV stays the copy)."""
    if importlib.util.find_spec("pyarrow") is None:
        return None
    target = Path(run_dir) / SAMPLES_PARQUET
    buffer = io.BytesIO()
    samples.to_parquet(buffer, index=False)
    try:
        atomic_write(target, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(f"cannot write the samples: {exc}", file=target) from exc
    return target


def _parquet_stale(run_dir: Path) -> bool:
    """True when samples.csv exists and samples.parquet is missing or older (a rerun of the report skips it)."""
    csv, parquet = run_dir / SAMPLES_CSV, run_dir / SAMPLES_PARQUET
    return csv.is_file() and (not parquet.is_file() or parquet.stat().st_mtime_ns < csv.stat().st_mtime_ns)


def _write(path: Path, text: str) -> Path:
    try:
        atomic_write(path, xml_safe(text))  # every report is text a parser may read: XML 1.0 characters only
    except OSError as exc:
        raise ConfigError(f"cannot write the report: {exc}", file=path) from exc
    return path
