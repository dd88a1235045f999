"""Specifications of baselines for sign-off: compare a run with a baseline, save a baseline, find it again."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.report import (Tolerance, baseline_for, compare, comparison_exit_code, parse_tolerance,
                            render_comparison, save_baseline)
from tests.report.reportkit import FAILING, PASSING, RunFactory, journal_of


def _edit_samples(directory: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    path = directory / "samples.csv"
    edit(pd.read_csv(path, keep_default_na=False)).to_csv(path, index=False)


def _slower(samples: pd.DataFrame) -> pd.DataFrame:
    samples["latency_ms"] = samples["latency_ms"] * 1.5
    return samples


def test_an_identical_run_passes(run_dir: RunFactory) -> None:
    comparison = compare(run_dir(PASSING, into="run"), run_dir(PASSING, into="baseline"), Tolerance())

    assert comparison.regressions == ()
    assert comparison_exit_code(comparison) == 0
    assert all(d.change in (0.0, None) for d in comparison.deltas)
    assert "no regressions past the tolerance" in render_comparison(comparison)


def test_a_latency_regression_past_the_tolerance_fails(run_dir: RunFactory) -> None:
    candidate = run_dir(PASSING, into="run")
    _edit_samples(candidate, _slower)

    comparison = compare(candidate, run_dir(PASSING, into="baseline"), Tolerance())

    regressed = {(d.subject, d.phase, d.metric) for d in comparison.regressions}
    assert ("all requests", "chaos", "p99_ms") in regressed and ("chat [standard]", "run", "p50_ms") in regressed
    assert all(d.change == pytest.approx(50.0, abs=0.5) for d in comparison.regressions if d.metric == "p99_ms")
    assert comparison_exit_code(comparison) == 1


def test_a_latency_change_within_the_tolerance_passes(run_dir: RunFactory) -> None:
    candidate = run_dir(PASSING, into="run")
    _edit_samples(candidate, _slower)

    comparison = compare(candidate, run_dir(PASSING, into="baseline"), parse_tolerance("latency=60%"))

    assert [d for d in comparison.regressions if d.group == "service"] == []


def test_an_availability_drop_is_judged_in_percentage_points(run_dir: RunFactory) -> None:
    candidate = run_dir(PASSING, into="run")

    def fail_some(samples: pd.DataFrame) -> pd.DataFrame:
        samples.loc[samples.index[::50], ["status", "ok"]] = [503, False]
        return samples

    _edit_samples(candidate, fail_some)

    comparison = compare(candidate, run_dir(PASSING, into="baseline"), Tolerance())

    (delta,) = [d for d in comparison.regressions if (d.subject, d.phase, d.metric) == ("all requests", "run",
                                                                                          "availability")]
    assert delta.unit == "pts" and delta.change == pytest.approx(-2.0, abs=0.3) and delta.limit == 0.1


def test_a_throughput_drop_past_the_tolerance_fails(run_dir: RunFactory) -> None:
    candidate = run_dir(PASSING, into="run")
    _edit_samples(candidate, lambda s: s.iloc[::2])

    comparison = compare(candidate, run_dir(PASSING, into="baseline"), Tolerance())

    (delta,) = [d for d in comparison.regressions if (d.subject, d.phase, d.metric) == ("all requests", "run",
                                                                                          "throughput_rps")]
    assert delta.change == pytest.approx(-50.0, abs=1.0)


def test_an_slo_that_went_from_pass_to_fail_is_a_regression_labelled_with_its_service(run_dir: RunFactory) -> None:
    comparison = compare(run_dir(FAILING, into="run"), run_dir(FAILING, into="baseline", slo_results=[
        dict(r, verdict="pass", value=1.0) for r in journal_of(FAILING)["harness"]["slo_results"]]), Tolerance())

    slos = {(d.subject, d.phase): d for d in comparison.regressions if d.group == "slo"}
    delta = slos[("ai-agent-service: ai-agent-availability", "chaos")]
    assert delta.change == pytest.approx(-42.8, abs=0.1) and delta.unit == "pts"
    assert "verdict pass -> fail" in delta.note
    assert ("client: client-availability", "chaos") in slos


def test_too_few_requests_are_shown_but_not_judged(run_dir: RunFactory) -> None:
    candidate = run_dir(PASSING, into="run")
    _edit_samples(candidate, _slower)

    comparison = compare(candidate, run_dir(PASSING, into="baseline"), Tolerance())

    canary = [d for d in comparison.deltas if (d.subject, d.phase) == ("chat [canary]", "baseline")]
    assert canary and all(d.limit is None and not d.regression for d in canary)
    assert "under 20 requests: not judged" in canary[0].note


def test_the_table_lists_each_metric_and_names_every_regression(run_dir: RunFactory) -> None:
    candidate = run_dir(PASSING, into="run")
    _edit_samples(candidate, _slower)

    text = render_comparison(compare(candidate, run_dir(PASSING, into="baseline"), Tolerance()))

    header = next(line for line in text.splitlines() if line.startswith("service / SLO"))
    assert header.split() == ["service", "/", "SLO", "phase", "metric", "baseline", "run", "change", "limit"]
    row = next(line for line in text.splitlines() if line.startswith("all requests") and " chaos " in line
               and "p99 ms" in line)
    assert "+50.0%" in row and "+10%" in row and "REGRESSION" in row
    assert "regressions past the tolerance:" in text
    assert "  all requests in chaos: p99 ms 161.6 -> 242.4 (+50.0%, tolerance 10%)" in text


@pytest.mark.parametrize(("text", "expected"), [
    ("p99=10%,availability=0.1,throughput=10%", Tolerance(p99_pct=10.0)),
    ("latency=5%, p99=20%", Tolerance(latency_pct=5.0, p99_pct=20.0)),
    ("availability=0.5pts,throughput=25", Tolerance(availability_pts=0.5, throughput_pct=25.0)),
    ("", Tolerance()),
])  # fmt: skip
def test_tolerance_is_parsed_from_the_command_line_text(text: str, expected: Tolerance) -> None:
    assert parse_tolerance(text) == expected


def test_a_per_quantile_tolerance_overrides_the_latency_one() -> None:
    tolerance = parse_tolerance("latency=5%,p99=20%")

    assert (tolerance.latency_limit(0.5), tolerance.latency_limit(0.95), tolerance.latency_limit(0.99)) == (5, 5, 20)


@pytest.mark.parametrize(("text", "message"), [
    ("p99=lots", "expected KEY=VALUE items like p99=10%,availability=0.1,throughput=10%"),
    ("p42=10%", "got 'p42=10%'"),
    ("availability=0.1%", "availability is in percentage points"),
    ("throughput=10pts", "throughput is a percentage"),
])  # fmt: skip
def test_a_bad_tolerance_is_a_config_error_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_tolerance(text)

    assert raised.value.field == "--tolerance" and message in str(raised.value)


def test_save_baseline_keeps_journal_and_stats_but_not_the_samples(run_dir: RunFactory, tmp_path: Path) -> None:
    store = tmp_path / "baselines"

    path = save_baseline(run_dir(PASSING), store)

    assert path == store / "ai-agent-v1-pods-killed-repeatedly-under-load" / "baseline.json"
    assert [p.name for p in path.parent.iterdir()] == ["baseline.json"]
    data = json.loads(path.read_text())
    assert data["experiment"] == "ai-agent v1 pods killed repeatedly under load" and data["exit_code"] == 0
    assert data["journal"]["harness"]["slo_results"] == journal_of(PASSING)["harness"]["slo_results"]
    assert {(s["service"], s["phase"]) for s in data["stats"]} >= {("all requests", "chaos"), ("chat [premium]", "run")}
    assert "samples" not in data and path.stat().st_size < 40_000


def test_baseline_for_finds_the_saved_baseline_of_the_runs_experiment(run_dir: RunFactory, tmp_path: Path) -> None:
    store = tmp_path / "baselines"
    saved = save_baseline(run_dir(PASSING, into="old"), store)

    assert baseline_for(run_dir(PASSING, into="new"), store) == saved
    assert baseline_for(run_dir(FAILING), store) is None


def test_a_run_compares_with_a_saved_baseline_after_its_directory_is_gone(run_dir: RunFactory, tmp_path: Path) -> None:
    old = run_dir(PASSING, into="old")
    saved = save_baseline(old, tmp_path / "baselines")
    shutil.rmtree(old)
    candidate = run_dir(PASSING, into="new")
    _edit_samples(candidate, _slower)

    assert comparison_exit_code(compare(run_dir(PASSING, into="same"), saved, Tolerance())) == 0
    assert comparison_exit_code(compare(candidate, saved.parent, Tolerance())) == 1


def test_an_interrupted_run_cannot_be_a_baseline(run_dir: RunFactory, tmp_path: Path) -> None:
    directory = run_dir(PASSING, exit_code=130, interrupted_by="SIGINT")

    with pytest.raises(ConfigError) as raised:
        save_baseline(directory, tmp_path / "baselines")

    assert raised.value.file == str(directory / "journal.json") and raised.value.field == "harness.exit_code"
    assert "INTERRUPTED (exit 130): interrupted by SIGINT" in str(raised.value)


def test_comparing_with_something_that_is_no_baseline_names_it(run_dir: RunFactory, tmp_path: Path) -> None:
    bogus = tmp_path / "baseline.json"
    bogus.write_text('{"experiment": "x"}')

    with pytest.raises(ConfigError) as raised:
        compare(run_dir(PASSING), bogus, Tolerance())

    assert raised.value.file == str(bogus) and "not a baseline written by `harness baseline save`" in str(raised.value)
    with pytest.raises(ConfigError, match="expected a run directory"):
        compare(run_dir(PASSING, into="again"), tmp_path / "nowhere", Tolerance())
