"""Specifications of junit.xml: one testsuite per experiment, one testcase per SLO and phase, CI-readable."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.report import write_reports
from tests.report.reportkit import FAILING, PASSING, RunFactory, journal_of


SUITE_ATTRIBUTES = {"name", "tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"}


def _junit(directory: Path) -> ET.Element:
    write_reports(directory)
    return ET.parse(directory / "junit.xml").getroot()


def _assert_schema_shape(root: ET.Element) -> None:
    """The shape the JUnit XSD (and Jenkins, GitLab, GitHub reporters) read."""
    assert root.tag == "testsuites"
    assert {"tests", "failures", "errors", "time"} <= set(root.attrib)
    for suite in root:
        assert suite.tag == "testsuite" and SUITE_ATTRIBUTES <= set(suite.attrib)
        children = [c.tag for c in suite]
        assert children[0] == "properties" and set(children[1:]) <= {"testcase"}
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("errors", "")) == sum(1 for c in cases if c.find("error") is not None)
        float(suite.get("time", ""))
        assert len(suite.get("timestamp", "")) == 19 and suite.get("timestamp", "")[10] == "T"
        for case in cases:
            assert case.get("classname") and case.get("name") and float(case.get("time", "")) >= 0
            for outcome in case:
                assert outcome.tag in ("failure", "error", "skipped") and outcome.get("message")
    assert int(root.get("tests", "")) == sum(int(s.get("tests", "")) for s in root)


def test_junit_has_one_testsuite_named_after_the_experiment(run_dir: RunFactory) -> None:
    root = _junit(run_dir(FAILING))

    _assert_schema_shape(root)
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "503s on calls to user fail chats (expected to fail)"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["verdict"] == "FAIL" and properties["exit_code"] == "1"


def test_junit_has_one_testcase_per_slo_and_phase(run_dir: RunFactory) -> None:
    suite = _junit(run_dir(FAILING)).find("testsuite")
    assert suite is not None

    cases = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]

    assert cases == [(slo, phase) for phase in ("baseline", "chaos", "recovery")
                     for slo in ("ai-agent-availability", "client-availability")]


def test_a_breached_slo_is_a_failure_giving_value_against_objective(run_dir: RunFactory) -> None:
    suite = _junit(run_dir(FAILING)).find("testsuite")
    assert suite is not None

    failures = {(c.get("classname"), c.get("name")): c.find("failure") for c in suite.iter("testcase")
                if c.find("failure") is not None}

    assert set(failures) == {("ai-agent-availability", "chaos"), ("client-availability", "chaos")}
    failure = failures[("ai-agent-availability", "chaos")]
    assert failure is not None
    assert failure.get("message") == "value 0.571953 against objective >= 0.995"
    assert "destination_service_name=\"ai-agent-service\"" in (failure.text or "")


def test_a_passing_run_has_no_failures(run_dir: RunFactory) -> None:
    root = _junit(run_dir(PASSING))

    _assert_schema_shape(root)
    assert root.get("tests") == "12" and root.get("failures") == "0" and root.get("errors") == "0"


def test_no_data_is_a_failure_and_an_unevaluated_slo_an_error(run_dir: RunFactory) -> None:
    results = journal_of(PASSING)["harness"]["slo_results"]
    results[0].update(verdict="no_data", value=None, detail="no samples in the window")
    results[1].update(verdict="error", value=None, detail="query yielded 2 series")
    root = _junit(run_dir(PASSING, slo_results=results, exit_code=3, inconclusive="query yielded 2 series"))

    _assert_schema_shape(root)
    cases = list(root.iter("testcase"))
    no_data = cases[0].find("failure")
    assert no_data is not None and no_data.get("message") == "no data against objective >= 0.995"
    assert no_data.get("type") == "no_data"
    error = cases[1].find("error")
    assert error is not None and error.get("message") == "query yielded 2 series"
    assert all(c.get("classname") != "experiment" for c in cases), "the SLO error already explains exit 3"


def test_a_verdict_the_slos_do_not_explain_gets_its_own_testcase(run_dir: RunFactory) -> None:
    interrupted = _junit(run_dir(PASSING, into="interrupted", exit_code=130, interrupted_by="SIGINT"))
    deviated = _junit(run_dir(PASSING, into="deviated", exit_code=1, journal={"deviated": True}))

    _assert_schema_shape(interrupted)
    _assert_schema_shape(deviated)
    (case,) = [c for c in interrupted.iter("testcase") if c.get("classname") == "experiment"]
    error = case.find("error")
    assert error is not None and error.get("message") == "INTERRUPTED (exit 130): interrupted by SIGINT"
    (case,) = [c for c in deviated.iter("testcase") if c.get("classname") == "experiment"]
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "the steady-state hypothesis deviated"
