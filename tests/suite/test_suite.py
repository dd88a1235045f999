"""Specifications of `harness suite TAG`: every tagged experiment on one mesh, the worst verdict, one report."""

from __future__ import annotations

import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import harness.suite
from harness.errors import ConfigError, ExitCode, InconclusiveError
from harness.platforms.fake import FakePlatform
from harness.suite import SuiteOutcome, run_suite
from tests.suite.suitekit import FakeRun, slo, write_experiment


@pytest.fixture
def experiments(tmp_path: Path) -> Path:
    directory = tmp_path / "experiments"
    directory.mkdir()
    write_experiment(directory, "a-pod-kill", ["nightly", "pod-kill"])
    write_experiment(directory, "b-latency", ["nightly", "latency"])
    write_experiment(directory, "c-canary-leaks", ["canary", "failing-variant"])
    write_experiment(directory, "d-failover", ["nightly", "failover"])
    return directory


def ops(platform: FakePlatform) -> list[str]:
    """What the suite asked of the platform, in order (harness.platforms.fake records every call)."""
    return [op for op, _ in platform.calls]


def suite(experiments: Path, tmp_path: Path, run: FakeRun, platform: FakePlatform | None = None,
          **options: object) -> SuiteOutcome:
    platform = platform or FakePlatform(up_now=False)
    return run_suite("nightly", experiments_dir=experiments, platform_name="local",
                     report_dir=tmp_path / "report", run=run, get_platform=lambda name: platform, **options)


def junit(outcome: SuiteOutcome) -> ET.Element:
    return ET.parse(outcome.junit).getroot()


def test_a_suite_runs_every_tagged_experiment_in_file_order_and_carries_on_past_failures(
        experiments: Path, tmp_path: Path) -> None:
    run = FakeRun({"a-pod-kill": 1, "b-latency": 0, "d-failover": 0})
    outcome = suite(experiments, tmp_path, run)
    assert [c["name"] for c in run.calls] == ["a-pod-kill", "b-latency", "d-failover"]
    assert [r.exit_code for r in outcome.results] == [1, 0, 0]
    assert outcome.exit_code == 1


def test_an_invalid_experiment_or_a_harness_error_does_not_stop_the_suite(experiments: Path, tmp_path: Path) -> None:
    run = FakeRun({"a-pod-kill": ConfigError("unknown service 'ai-agnet'", file="a-pod-kill.yaml"),
                   "b-latency": RuntimeError("a bug in the harness")})
    outcome = suite(experiments, tmp_path, run)
    assert [c["name"] for c in run.calls] == ["a-pod-kill", "b-latency", "d-failover"]
    assert [r.exit_code for r in outcome.results] == [2, 2, 0]
    assert "ai-agnet" in (outcome.results[0].error or "")
    assert outcome.results[1].error == "RuntimeError: a bug in the harness"
    assert outcome.exit_code == 2


@pytest.mark.parametrize(("codes", "worst"), [
    ([0, 0, 0], 0), ([0, 1, 0], 1), ([1, 3, 0], 3), ([3, 2, 1], 2), ([2, 0, 130], 130), ([], 0), ([0, 7], 2),
])
def test_the_suite_exit_code_is_the_worst_verdict_130_then_2_then_3_then_1_then_0(codes: list[int], worst: int) -> None:
    assert ExitCode.worst(codes) == worst


def test_the_suite_exit_code_counts_an_inconclusive_error_raised_by_a_run(experiments: Path, tmp_path: Path) -> None:
    outcome = suite(experiments, tmp_path, FakeRun({"a-pod-kill": 1, "b-latency": InconclusiveError("no Prometheus")}))
    assert [r.exit_code for r in outcome.results] == [1, 3, 0] and outcome.exit_code == 3


def test_an_interrupted_experiment_stops_the_suite_and_the_rest_are_reported_not_run(
        experiments: Path, tmp_path: Path) -> None:
    run = FakeRun({"a-pod-kill": 1, "b-latency": 130})
    outcome = suite(experiments, tmp_path, run)
    assert [c["name"] for c in run.calls] == ["a-pod-kill", "b-latency"]
    assert [(r.name, r.exit_code, r.ran) for r in outcome.results] == [
        ("a-pod-kill", 1, True), ("b-latency", 130, True), ("d-failover", 130, False)]
    assert outcome.exit_code == 130
    skipped = junit(outcome).find("testsuite[@name='d-failover title']/testcase[@name='verdict']/skipped")
    assert skipped is not None and "interrupted" in skipped.get("message", "")


def test_ctrl_c_during_a_run_stops_the_suite_writes_the_report_and_takes_the_mesh_down(
        experiments: Path, tmp_path: Path) -> None:
    platform = FakePlatform(up_now=False)
    outcome = suite(experiments, tmp_path, FakeRun({"a-pod-kill": KeyboardInterrupt()}), platform)
    assert outcome.exit_code == 130 and [r.ran for r in outcome.results] == [True, False, False]
    assert ops(platform) == ["up", "down"]
    assert outcome.junit.is_file()


def test_the_mesh_comes_up_once_for_the_suite_and_each_run_is_told_to_keep_it_up(
        experiments: Path, tmp_path: Path) -> None:
    platform, run = FakePlatform(up_now=False), FakeRun({})
    suite(experiments, tmp_path, run, platform)
    assert ops(platform) == ["up", "down"]
    assert all(c["keep_up"] is True and c["platform_name"] == "local" for c in run.calls)


def test_a_mesh_that_was_already_up_or_keep_up_is_left_up(experiments: Path, tmp_path: Path) -> None:
    already_up = FakePlatform(up_now=True)
    suite(experiments, tmp_path, FakeRun({}), already_up)
    assert ops(already_up) == []
    kept = FakePlatform(up_now=False)
    suite(experiments, tmp_path, FakeRun({}), kept, keep_up=True)
    assert ops(kept) == ["up"]


def test_each_run_gets_its_own_directory_inside_the_suite_report_dir(experiments: Path, tmp_path: Path) -> None:
    run = FakeRun({})
    outcome = suite(experiments, tmp_path, run)
    assert [c["report_dir"] for c in run.calls] == [
        outcome.report_dir / "01-a-pod-kill", outcome.report_dir / "02-b-latency", outcome.report_dir / "03-d-failover"]


def test_the_aggregate_junit_is_valid_xml_with_one_testsuite_per_experiment_and_one_testcase_per_slo_and_phase(
        experiments: Path, tmp_path: Path) -> None:
    breached = [slo("ai-agent-availability", "baseline", "pass", 0.999),
                slo("ai-agent-availability", "chaos", "fail", 0.93),
                slo("ai-agent-latency-p99", "chaos", "fail", 812.0, objective=500, comparator="<="),
                slo("user-availability", "recovery", "no_data", None)]
    outcome = suite(experiments, tmp_path, FakeRun({"b-latency": 1}, slos={"b-latency": breached}))
    root = junit(outcome)

    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["a-pod-kill title", "b-latency title", "d-failover title"]
    for element in suites:
        cases = element.findall("testcase")
        assert int(element.get("tests")) == len(cases)
        assert int(element.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(element.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
        experiment = element.find("properties/property[@name='experiment']")
        assert experiment is not None and experiment.get("value", "").endswith(".yaml")
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key)) == sum(int(s.get(key)) for s in suites)

    latency = root.find("testsuite[@name='b-latency title']")
    slo_cases = [c for c in latency.findall("testcase") if c.get("classname") != "experiment"]
    assert [(c.get("classname"), c.get("name")) for c in slo_cases] == [
        ("ai-agent-availability", "baseline"), ("ai-agent-availability", "chaos"), ("ai-agent-latency-p99", "chaos"),
        ("user-availability", "recovery")]
    failures = [c.find("failure").get("message") for c in slo_cases if c.find("failure") is not None]
    assert len(failures) == 3
    assert "0.93" in failures[0] and ">= 0.99" in failures[0]  # the value against the objective
    assert "812" in failures[1] and "<= 500" in failures[1]
    assert "no data" in failures[2]
    assert int(root.find("testsuite[@name='a-pod-kill title']").get("failures")) == 0


def test_an_experiment_that_could_not_run_is_one_error_testcase_naming_why(experiments: Path, tmp_path: Path) -> None:
    outcome = suite(experiments, tmp_path, FakeRun({"a-pod-kill": ConfigError("no SLO file at slos/x.yaml")}))
    cases = junit(outcome).findall("testsuite[@name='a-pod-kill title']/testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [("experiment", "verdict")]
    assert "no SLO file at slos/x.yaml" in cases[0].find("error").get("message")


def test_the_summary_and_index_link_each_runs_report(experiments: Path, tmp_path: Path) -> None:
    outcome = suite(experiments, tmp_path, FakeRun({"b-latency": 3}, write_report_for={"a-pod-kill"}))
    index = (outcome.report_dir / "index.html").read_text()
    summary = (outcome.report_dir / "summary.md").read_text()
    assert (outcome.report_dir / "01-a-pod-kill" / "report.html").read_text() == "<html>run report</html>"  # kept
    assert (outcome.report_dir / "02-b-latency" / "report.html").is_file()  # written when the run did not
    assert 'href="01-a-pod-kill/report.html"' in index and 'href="02-b-latency/report.html"' in index
    assert 'id="verdict"' in index and "INCONCLUSIVE" in index
    assert summary.startswith("# Suite `nightly`: INCONCLUSIVE (exit 3)")
    assert "| a-pod-kill | PASS | 0 | 100.0/100 | 3/3 | [01-a-pod-kill/report.html](01-a-pod-kill/report.html) |" \
        in summary
    assert "inconclusive: Prometheus unreachable" in summary
    assert (outcome.report_dir / "suite.json").is_file()


def test_what_failed_lists_each_breached_slo_with_its_value_against_the_objective(experiments: Path,
                                                                                  tmp_path: Path) -> None:
    breached = [slo("ai-agent-availability", "chaos", "fail", 0.93)]
    outcome = suite(experiments, tmp_path, FakeRun({"b-latency": 1}, slos={"b-latency": breached}))
    summary = (outcome.report_dir / "summary.md").read_text()
    line = next(line for line in summary.splitlines() if line.startswith("- **b-latency** `ai-agent-availability`"))
    assert "[chaos]" in line and "0.93" in line and ">= 0.99" in line


def test_the_suite_score_is_the_mean_of_the_runs_scores_leaving_out_runs_without_one(
        experiments: Path, tmp_path: Path) -> None:
    half = [slo("ai-agent-availability", "baseline", "pass", 0.999), slo("ai-agent-availability", "chaos", "no_data", None)]
    outcome = suite(experiments, tmp_path, FakeRun({"b-latency": 1, "d-failover": 3}, slos={"b-latency": half}))
    scores = [r.score.value if r.score else None for r in outcome.results]
    assert scores[0] == 100.0 and scores[1] is not None and scores[1] < 100.0 and scores[2] is None  # exit 3: none
    assert outcome.score == pytest.approx((scores[0] + scores[1]) / 2, abs=0.1)
    assert f"Resilience score: **{outcome.score:.1f}/100**" in (outcome.report_dir / "summary.md").read_text()


def test_an_unknown_tag_is_a_config_error_listing_the_tags_in_use(experiments: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        run_suite("weekly", experiments_dir=experiments, platform_name="local", report_dir=tmp_path / "r",
                  run=FakeRun({}), get_platform=lambda name: FakePlatform(up_now=False))
    message = str(error.value)
    assert "'weekly'" in message
    assert "canary, failing-variant, failover, latency, nightly, pod-kill" in message


def test_an_unreadable_experiment_file_counts_as_invalid_rather_than_dropping_out(experiments: Path,
                                                                                 tmp_path: Path) -> None:
    (experiments / "e-broken.yaml").write_text("title: [unclosed\n")
    run = FakeRun({})
    outcome = suite(experiments, tmp_path, run)
    assert "e-broken" not in [c["name"] for c in run.calls]
    broken = outcome.results[-1]
    assert (broken.name, broken.exit_code) == ("e-broken", 2) and "cannot read its tags" in (broken.error or "")
    assert outcome.exit_code == 2


def test_the_shipped_nightly_suite_is_the_five_experiments_on_the_seed_mesh() -> None:
    """Nightly checks the mesh the harness deploys and must pass whenever it and the harness are healthy:
    the five experiments as written, at their realistic load (issue 14), where the seed's DestinationRules
    hold when requests arrive spread over each second; no failing variants, no fixed-mesh variants."""
    from harness.suite import entries_tagged

    nightly = [e.name for e in entries_tagged("nightly", Path(__file__).resolve().parents[2] / "experiments")]
    assert nightly == ["abort-injection", "canary", "cluster-failover", "latency-injection", "pod-kill"]


def test_the_public_surface_is_one_sorted_all_and_every_module_opens_with_a_one_line_docstring() -> None:
    import importlib
    import inspect
    import pkgutil

    assert harness.suite.__all__ == sorted(harness.suite.__all__)
    public = {n for n, v in vars(harness.suite).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(harness.suite.__all__)
    for info in pkgutil.iter_modules(harness.suite.__path__):
        doc = inspect.getdoc(importlib.import_module(f"harness.suite.{info.name}")) or ""
        assert doc and doc.split("\n\n")[0].count("\n") == 0, info.name


def canary_suite(experiments: Path, tmp_path: Path, run: FakeRun) -> SuiteOutcome:
    return run_suite("canary", experiments_dir=experiments, platform_name="local", report_dir=tmp_path / "report",
                     run=run, get_platform=lambda name: FakePlatform(up_now=False))


def test_a_failing_variant_that_fails_counts_as_a_pass_and_its_failures_are_skipped_in_junit(
        experiments: Path, tmp_path: Path) -> None:
    """A `failing-variant` shows a weakness (the seed's ORed authorization hole): the nightly suite that
    holds it is green when it fails with exit 1, as pytest's strict xfail, and its junit failures read
    as skipped "expected failure" so CI junit readers agree with the exit code."""
    run = FakeRun({"c-canary-leaks": 1}, slos={"c-canary-leaks": [slo("premium-p99", "chaos", "fail", 900.0, 500.0, "<=")]})
    outcome = canary_suite(experiments, tmp_path, run)
    assert [(r.exit_code, r.counted_exit_code, r.verdict_text) for r in outcome.results] == [(1, 0, "FAIL (expected)")]
    assert outcome.exit_code == 0
    root = junit(outcome)
    assert root.get("failures") == "0"
    skipped = {case.get("classname", ""): case.find("skipped").get("message", "") for case in root.iter("testcase")
               if case.find("skipped") is not None}
    assert any("premium-p99" in name and message.startswith("expected failure (tag failing-variant): value 900")
               for name, message in skipped.items()), skipped
    summary = (outcome.report_dir / "summary.md").read_text()
    assert "FAIL (expected)" in summary and "## What failed" not in summary


def test_a_failing_variant_that_passes_fails_the_suite_and_other_codes_count_as_they_are(
        experiments: Path, tmp_path: Path) -> None:
    outcome = canary_suite(experiments, tmp_path, FakeRun({"c-canary-leaks": 0}))
    assert (outcome.results[0].verdict_text, outcome.exit_code) == ("PASS (expected FAIL)", 1)
    outcome = canary_suite(experiments, tmp_path / "again", FakeRun({"c-canary-leaks": 3}))
    assert (outcome.results[0].counted_exit_code, outcome.exit_code) == (3, 3)
