"""The suite's and the game day's data types: results, outcomes, operator decisions and steps.

They live apart from the code that makes them (runner.py, gameday.py, walk.py, aggregate.py, junit.py)
so those modules import one another's types without import cycles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from harness.errors import ExitCode, verdict_word

if TYPE_CHECKING:  # lower layers, imported for annotations only (run/ and report/ are heavy to import)
    from harness.report import RunRecord, Score
    from harness.run.runner import RunOutcome

__all__ = ["Choice", "Decision", "ExperimentResult", "INDEX", "JUNIT", "RunFunction", "SUITE_JSON", "SUMMARY",
           "Step", "SuiteOutcome"]

#: The files of a suite's report directory, beside one run directory per experiment.
SUMMARY, INDEX, JUNIT, SUITE_JSON = "summary.md", "index.html", "junit.xml", "suite.json"

Choice = Literal["go", "skip", "abort"]


class RunFunction(Protocol):
    """What the suite needs from `harness run`: harness.run.runner.run_file is the real one."""

    def __call__(self, path: Path, *, platform_name: str, report_dir: Path | None, keep_up: bool,
                 progress: bool) -> RunOutcome: ...


@dataclass(frozen=True)
class ExperimentResult:
    """One experiment of a suite. `ran` is False for those left when the suite was interrupted."""

    path: Path
    title: str
    exit_code: int
    run_dir: Path | None
    journal: dict[str, Any] = field(default_factory=dict, repr=False)
    error: str | None = None  # why there is no verdict: the HarnessError, or "not run"
    ran: bool = True
    duration_s: float = 0.0
    record: RunRecord | None = field(default=None, repr=False)  # the run directory as harness.report reads it
    score: Score | None = None  # harness.report's resilience score of the run
    # Tagged `failing-variant`: the experiment exists to show a weakness (the seed's ORed authorization
    # hole, all replicas killed), so its SLO failure is the expected outcome, as pytest's strict xfail.
    expect_fail: bool = False

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def counted_exit_code(self) -> int:
        """The code as the suite counts it: an expected failure (exit 1) counts as a pass, and a pass of
        an experiment that must fail counts as a failure (the weakness it shows is gone or unreached).
        Invalid, inconclusive and interrupted runs count as they are."""
        if self.expect_fail and self.exit_code == ExitCode.FAIL:
            return ExitCode.PASS
        if self.expect_fail and self.exit_code == ExitCode.PASS and self.ran:
            return ExitCode.FAIL
        return self.exit_code

    @property
    def verdict_text(self) -> str:
        """NOT RUN, the run's verdict word, or that word with what was expected of a failing variant."""
        if not self.ran:
            return "NOT RUN"
        word = verdict_word(self.exit_code)
        if self.expect_fail and self.exit_code == ExitCode.FAIL:
            return f"{word} (expected)"
        if self.expect_fail and self.exit_code == ExitCode.PASS:
            return f"{word} (expected FAIL)"
        return word


@dataclass(frozen=True)
class SuiteOutcome:
    tag: str
    exit_code: int  # the worst of the experiments' counted codes (ExitCode.worst of counted_exit_code)
    report_dir: Path  # summary.md, index.html, junit.xml, suite.json and one run directory per experiment
    results: tuple[ExperimentResult, ...]
    score: float | None = None  # 0..100: the mean of the runs' resilience scores (harness.report.suite_score)

    @property
    def junit(self) -> Path:
        return self.report_dir / JUNIT


@dataclass(frozen=True)
class Decision:
    """One operator decision, as recorded in the journal."""

    activity: str
    decision: Choice
    note: str
    at: float  # epoch seconds when the decision was taken


@dataclass(frozen=True)
class Step:
    """An action about to run, as the operator sees it."""

    index: int  # 1-based, among the method's actions
    total: int
    name: str
    function: str  # module.func, or the process path or URL for other providers
    arguments: Any

    def describe(self) -> list[str]:
        arguments = json.dumps(self.arguments, sort_keys=True, default=str)
        return [f"--- game day: action {self.index} of {self.total} ---",
                f"action     {self.name}", f"function   {self.function}", f"arguments  {arguments}"]
