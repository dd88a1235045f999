"""Specifications of the resilience score: 0 to 100, chaos counts most, no score for runs that measured nothing."""

from __future__ import annotations

import pytest

from harness.report import Score, read_run, resilience_score, suite_score
from harness.report.rundata import SloRow
from harness.report.score import closeness, credit
from tests.report.reportkit import FAILING, PASSING, SLOW, RunFactory, journal_of


def _row(verdict: str, value: float | None, *, objective: float = 0.995, comparator: str = ">=",
         phase: str = "chaos") -> SloRow:
    return SloRow(name="s", phase=phase, query="", value=value, objective=objective, comparator=comparator,
                  verdict=verdict, window_start=0.0, window_end=1.0, source="mesh")


def test_a_run_where_every_slo_held_scores_100(run_dir: RunFactory) -> None:
    assert resilience_score(read_run(run_dir(PASSING))).value == 100.0


def test_a_failing_run_scores_lower_than_a_passing_one(run_dir: RunFactory) -> None:
    passing = resilience_score(read_run(run_dir(PASSING)))
    failing = resilience_score(read_run(run_dir(FAILING)))
    slow = resilience_score(read_run(run_dir(SLOW)))

    assert passing.value is not None and failing.value is not None and slow.value is not None
    assert failing.value < passing.value and slow.value < passing.value
    assert 0 <= failing.value <= 100


def test_the_score_is_the_weighted_credit_of_every_slo_and_the_hypothesis(run_dir: RunFactory) -> None:
    score = resilience_score(read_run(run_dir(FAILING)))

    weights = {(i.name, i.phase): i.weight for i in score.items}
    assert weights[("ai-agent-availability", "baseline")] == 1
    assert weights[("ai-agent-availability", "chaos")] == 4
    assert weights[("ai-agent-availability", "recovery")] == 2
    assert weights[("steady-state hypothesis", "before and after")] == 2
    expected = 100 * sum(i.weight * i.credit for i in score.items) / sum(i.weight for i in score.items)
    assert score.value == pytest.approx(expected, abs=0.05)
    assert score.value == 50.3


def test_a_breach_in_chaos_costs_more_than_the_same_breach_in_baseline(run_dir: RunFactory) -> None:
    journal = journal_of(PASSING)
    results = journal["harness"]["slo_results"]
    in_baseline = [dict(r, verdict="fail", value=0.9) if (r["name"], r["phase"]) == ("client-availability", "baseline")
                   else r for r in results]
    in_chaos = [dict(r, verdict="fail", value=0.9) if (r["name"], r["phase"]) == ("client-availability", "chaos")
                else r for r in results]

    baseline_breach = resilience_score(read_run(run_dir(PASSING, into="b", slo_results=in_baseline, exit_code=1)))
    chaos_breach = resilience_score(read_run(run_dir(PASSING, into="c", slo_results=in_chaos, exit_code=1)))

    assert chaos_breach.value is not None and baseline_breach.value is not None
    assert chaos_breach.value < baseline_breach.value < 100


@pytest.mark.parametrize(("changes", "reason"), [
    ({"exit_code": 130, "interrupted_by": "SIGINT"}, "the run was interrupted"),
    ({"exit_code": 3, "inconclusive": "Prometheus unreachable"}, "the run was inconclusive"),
    ({"exit_code": 2, "error": "boom"}, "the harness failed"),
    ({"slo_results": []}, "the run has no SLO results"),
])  # fmt: skip
def test_an_interrupted_or_inconclusive_run_gets_no_score(run_dir: RunFactory, changes: dict[str, object],
                                                          reason: str) -> None:
    score = resilience_score(read_run(run_dir(PASSING, **changes)))

    assert score.value is None and score.reason == reason
    assert str(score) == f"none ({reason})"


def test_a_failed_slo_earns_up_to_half_its_weight_by_how_near_it_came() -> None:
    assert credit(_row("pass", 1.0)) == 1.0
    assert closeness(_row("fail", 0.98)) == pytest.approx(0.25), "0.5% budget over 2% errors"
    assert credit(_row("fail", 0.98)) == pytest.approx(0.125)
    assert closeness(_row("fail", 1000.0, objective=500, comparator="<=")) == pytest.approx(0.5)
    assert credit(_row("fail", 0.995, comparator=">")) == 0.5, "a fail never earns more than half"
    assert credit(_row("no_data", None)) == 0.0


def test_slo_weights_change_how_much_an_slo_counts(run_dir: RunFactory) -> None:
    run = read_run(run_dir(FAILING))

    heavy = resilience_score(run, slo_weights={"client-availability": 10})
    light = resilience_score(run, slo_weights={"client-availability": 0.1})

    assert heavy.value is not None and light.value is not None and heavy.value < light.value


def test_a_suite_scores_the_mean_of_its_scored_runs() -> None:
    assert suite_score([Score(value=100.0), Score(value=50.0), Score(value=None, reason="interrupted")]) == 75.0
    assert suite_score([80.0, None, 60.0]) == 70.0
    assert suite_score([None, Score(value=None, reason="x")]) is None
    assert suite_score([]) is None
