"""Suites and game days: every experiment with a tag in one go, or one experiment step by step with an operator.

    outcome = run_suite("nightly", experiments_dir=Path("experiments"), platform_name="local",
                        report_dir=Path("runs/nightly"), keep_up=False)
    outcome.exit_code        # the worst verdict: 130 > 2 > 3 > 1 > 0 (harness.errors.ExitCode.worst)
    code = run_gameday(Path("experiments/pod-kill.yaml"), platform_name="local", yes=False)
"""

from harness.suite.gameday import gameday_experiment, run_gameday
from harness.suite.model import Decision, ExperimentResult, RunFunction, Step, SuiteOutcome
from harness.suite.runner import run_suite
from harness.suite.select import SuiteEntry, entries_tagged
from harness.suite.walk import Walk

__all__ = [
    "Decision",
    "ExperimentResult",
    "RunFunction",
    "Step",
    "SuiteEntry",
    "SuiteOutcome",
    "Walk",
    "entries_tagged",
    "gameday_experiment",
    "run_gameday",
    "run_suite",
]
