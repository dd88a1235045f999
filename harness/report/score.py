"""The resilience score, 0 to 100, of a run and of a suite of runs.

Formula. Every SLO result (one SLO in one phase) is an item with a weight and a credit:

    weight = PHASE_WEIGHTS[phase] x the SLO's weight (1 unless given)
             baseline 1, chaos 4, recovery 2: holding up under the fault counts most, coming back
             counts next, and a healthy baseline says least about resilience.
    credit = 1                   pass
             0.5 x closeness     fail: at most half, more the nearer the value came to the objective
             0                   no_data (no data is never a pass)
    closeness, in 0..1:
             availability-like (">=" with an objective <= 1): the error budget allowed over the error
             share seen, (1 - objective) / (1 - value), e.g. 0.995 objective and 0.98 seen: 0.25;
             lower-is-better ("<=", latency or an error ratio): objective / value;
             any other ">=": value / objective.

A declared steady-state hypothesis is one more item, weight 2, credit 1 unless it deviated.

    score = 100 x sum(weight x credit) / sum(weight), one decimal.

A run that was interrupted, inconclusive (an SLO "error") or failed in the harness (exit 130, 3, 2)
gets no score (None): it measured nothing reliable. A run with no SLO results gets none either.
A suite's score is the mean of its runs' scores, runs without a score left out (the suite's exit
code reports them); None when no run has a score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from harness.errors import ExitCode
from harness.report.rundata import RunRecord, SloRow

PHASE_WEIGHTS = {"baseline": 1.0, "chaos": 4.0, "recovery": 2.0}
HYPOTHESIS_WEIGHT = 2.0
FAIL_CREDIT_MAX = 0.5
UNSCORED = {ExitCode.INVALID: "the harness failed", ExitCode.INCONCLUSIVE: "the run was inconclusive",
            ExitCode.INTERRUPTED: "the run was interrupted"}


@dataclass(frozen=True, kw_only=True)
class ScoreItem:
    """One SLO result's part in the score."""

    name: str
    phase: str
    verdict: str
    weight: float
    credit: float  # 0..1


@dataclass(frozen=True, kw_only=True)
class Score:
    """A run's resilience score; `value` is None with `reason` when the run gets none."""

    value: float | None
    reason: str = ""
    items: tuple[ScoreItem, ...] = ()

    def __str__(self) -> str:
        return f"{self.value:.1f}/100" if self.value is not None else f"none ({self.reason})"


def closeness(row: SloRow) -> float:
    """How near a failed value came to its objective, 0..1 (see the module docstring)."""
    value, objective = row.value, row.objective
    if value is None:
        return 0.0
    if row.comparator in (">=", ">"):
        if 0 < objective <= 1:
            return 1.0 if value >= 1 else _clip((1 - objective) / (1 - value))
        return _clip(value / objective) if objective > 0 else 0.0
    return 1.0 if value <= 0 else _clip(objective / value)


def credit(row: SloRow) -> float:
    """1 for a pass, up to 0.5 for a fail by how near it came, 0 for no data or an error."""
    if row.verdict == "pass":
        return 1.0
    if row.verdict == "fail":
        return FAIL_CREDIT_MAX * closeness(row)
    return 0.0


def resilience_score(run: RunRecord, *, slo_weights: Mapping[str, float] | None = None) -> Score:
    """The run's score from its SLO results and hypothesis; None for runs that measured nothing reliable."""
    if run.exit_code in UNSCORED:
        return Score(value=None, reason=UNSCORED[run.exit_code])
    if any(row.verdict == "error" for row in run.slos):
        return Score(value=None, reason="an SLO could not be evaluated")
    if not run.slos:
        return Score(value=None, reason="the run has no SLO results")
    weights = slo_weights or {}
    items = [ScoreItem(name=row.name, phase=row.phase, verdict=row.verdict, credit=credit(row),
                       weight=PHASE_WEIGHTS.get(row.phase, 1.0) * float(weights.get(row.name, 1.0)))
             for row in run.slos]
    if run.has_hypothesis:
        items.append(ScoreItem(name="steady-state hypothesis", phase="before and after",
                               verdict="fail" if run.deviated else "pass", weight=HYPOTHESIS_WEIGHT,
                               credit=0.0 if run.deviated else 1.0))
    total = sum(item.weight for item in items)
    value = 100.0 * sum(item.weight * item.credit for item in items) / total if total > 0 else None
    return Score(value=None if value is None else round(value, 1), items=tuple(items),
                 reason="" if value is not None else "every SLO has weight 0")


def suite_score(scores: Iterable[Score | float | None]) -> float | None:
    """The mean of the runs' scores, leaving out runs without one; None when none has a score."""
    values = [s.value if isinstance(s, Score) else s for s in scores]
    numbers = [float(v) for v in values if v is not None]
    return round(sum(numbers) / len(numbers), 1) if numbers else None


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))
