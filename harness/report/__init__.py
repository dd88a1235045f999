"""Reports of a run (report.html, junit.xml, summary.md), resilience scores, and baselines for sign-off."""

from harness.report.advice import Fix, what_to_fix
from harness.report.analysis import Analysis, analyse
from harness.report.baseline import Snapshot, baseline_for, save_baseline
from harness.report.commands import (RegeneratedReport, SavedBaseline, compare_with_baseline, regenerate_report,
                                     save_run_as_baseline)
from harness.report.compare import Comparison, Delta, Tolerance, compare, comparison_exit_code, parse_tolerance
from harness.report.compare_text import render_comparison
from harness.report.meshview import MeshView
from harness.report.rundata import RunRecord, read_run
from harness.report.score import Score, ScoreItem, resilience_score, suite_score
from harness.report.stats import ServiceStats
from harness.report.write import regenerate, write_reports

__all__ = [
    "Analysis",
    "Comparison",
    "Delta",
    "Fix",
    "MeshView",
    "RegeneratedReport",
    "RunRecord",
    "SavedBaseline",
    "Score",
    "ScoreItem",
    "ServiceStats",
    "Snapshot",
    "Tolerance",
    "analyse",
    "baseline_for",
    "compare",
    "compare_with_baseline",
    "comparison_exit_code",
    "parse_tolerance",
    "read_run",
    "regenerate",
    "regenerate_report",
    "render_comparison",
    "resilience_score",
    "save_baseline",
    "save_run_as_baseline",
    "suite_score",
    "what_to_fix",
    "write_reports",
]
