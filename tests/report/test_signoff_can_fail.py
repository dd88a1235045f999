"""Sign-off comparisons that can fail: missing SLOs regress, a failed run never signs off, baselines are
keyed by a stable experiment id, only a PASS run becomes a baseline unless --force, and junit.xml
and every report parse as XML 1.0 whatever an error message carried (ANSI colour codes included).

XML 1.0 characters: https://www.w3.org/TR/xml/#charsets; the junit files are parsed with expat
(xml.etree.ElementTree) as CI report readers do.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.report import compare, comparison_exit_code, render_comparison, save_baseline, write_reports
from harness.report.baseline import baseline_for
from harness.report.compare import Tolerance
from harness.report.xmltext import xml_safe

from .reportkit import FAILING, PASSING, RunFactory, journal_of

ANSI_ERROR = "\x1b[31mboom\x1b[0m: Locust said \x00\x07\x1b[1mno\x1b[22m \ufffe"


def _titled(run_dir: RunFactory, into: str, title: str, **harness: Any) -> Path:
    journal = journal_of(PASSING)
    journal["experiment"]["title"] = title
    journal["harness"].update(harness)
    return run_dir(PASSING, into=into, journal=journal)


def test_an_slo_the_baseline_judged_and_the_run_did_not_is_a_regression(run_dir: RunFactory) -> None:
    baseline = run_dir(PASSING, into="baseline")
    candidate = run_dir(PASSING, into="run", slo_results=[])

    comparison = compare(candidate, baseline, Tolerance())

    missing = [d for d in comparison.regressions if d.note.startswith("missing in the run")]
    assert {(d.subject.split(": ")[-1], d.phase) for d in missing} == {
        (r["name"], r["phase"]) for r in journal_of(PASSING)["harness"]["slo_results"]}
    assert comparison_exit_code(comparison) == 1
    assert "no regressions" not in render_comparison(comparison)


@pytest.mark.parametrize("code", [1, 2, 3, 130])
def test_a_run_whose_own_exit_code_is_not_0_is_never_signed_off(run_dir: RunFactory, code: int) -> None:
    comparison = compare(run_dir(PASSING, into="run", exit_code=code), run_dir(PASSING, into="baseline"))

    assert comparison.regressions == ()  # the metrics are identical...
    assert comparison_exit_code(comparison) == code  # ...and yet the comparison fails with the run's own code
    text = render_comparison(comparison)
    assert "NOT SIGNED OFF" in text and "no regressions past the tolerance" not in text


def test_baselines_are_keyed_by_the_experiment_file_name_not_the_title(run_dir: RunFactory, tmp_path: Path) -> None:
    store = tmp_path / "baselines"
    first = save_baseline(_titled(run_dir, "a", "Pod kill!", experiment_file="/x/pod-kill-a.yaml"), store)
    second = save_baseline(_titled(run_dir, "b", "pod-kill", experiment_file="/x/pod-kill-b.yaml"), store)

    assert first == store / "pod-kill-a" / "baseline.json" and second == store / "pod-kill-b" / "baseline.json"
    assert json.loads(first.read_text())["experiment"] == "Pod kill!"
    again = _titled(run_dir, "c", "Pod kill!", experiment_file="/elsewhere/pod-kill-a.yaml")
    assert baseline_for(again, store) == first


def test_an_explicit_id_wins_over_the_file_name(run_dir: RunFactory, tmp_path: Path) -> None:
    journal = journal_of(PASSING)
    journal["experiment"]["id"] = "checkout-pod-kill"
    journal["harness"]["experiment_file"] = "/x/pod-kill.yaml"
    saved = save_baseline(run_dir(PASSING, journal=journal), tmp_path / "baselines")
    assert saved.parent.name == "checkout-pod-kill"


def test_two_experiments_under_one_id_are_a_collision(run_dir: RunFactory, tmp_path: Path) -> None:
    store = tmp_path / "baselines"
    save_baseline(_titled(run_dir, "a", "Pod kill!"), store)  # journals without a file: names from titles

    with pytest.raises(ConfigError) as raised:
        save_baseline(_titled(run_dir, "b", "pod kill"), store)
    assert "collision" in str(raised.value) and raised.value.field == "experiment.id"
    with pytest.raises(ConfigError, match="collision"):
        baseline_for(_titled(run_dir, "c", "POD KILL"), store)


def test_every_non_ascii_title_no_longer_shares_one_baseline(run_dir: RunFactory, tmp_path: Path) -> None:
    store = tmp_path / "baselines"
    save_baseline(_titled(run_dir, "a", "Pod-Kill unter Last", experiment_file="/x/pod-kill.yaml"), store)
    save_baseline(_titled(run_dir, "b", "ポッド削除", experiment_file="/x/pod-kill-ja.yaml"), store)
    with pytest.raises(ConfigError, match="collision"):
        save_baseline(_titled(run_dir, "c", "节点故障", experiment_file="/y/pod-kill-ja.yaml"), store)


def test_a_failed_run_becomes_a_baseline_only_with_force(run_dir: RunFactory, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "baselines"
    failing = run_dir(FAILING)
    with pytest.raises(ConfigError) as raised:
        save_baseline(failing, store)
    assert raised.value.field == "harness.exit_code" and "--force" in str(raised.value)

    assert main(["baseline", "save", str(failing)]) == 2
    assert main(["baseline", "save", str(failing), "--force"]) == 0
    assert "FAIL" in capsys.readouterr().out


def test_an_interrupted_run_is_refused_even_with_force(run_dir: RunFactory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="completed with a verdict"):
        save_baseline(run_dir(PASSING, exit_code=130, interrupted_by="SIGINT"), tmp_path / "b", force=True)


def test_the_comparison_notes_a_baseline_that_did_not_pass(run_dir: RunFactory, tmp_path: Path) -> None:
    saved = save_baseline(run_dir(PASSING, into="old", exit_code=1), tmp_path / "baselines", force=True)
    comparison = compare(run_dir(PASSING, into="new"), saved)
    assert any("baseline's own verdict is FAIL" in note for note in comparison.notes)


def test_junit_and_every_report_parse_as_xml_whatever_the_error_carried(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING, exit_code=2, error=ANSI_ERROR)

    write_reports(directory)

    root = ET.fromstring((directory / "junit.xml").read_bytes())  # expat: fails on any XML 1.0 violation
    message = root.find(".//testcase[@classname='experiment']/error").get("message")
    assert "boom: Locust said no" in message and "\x1b" not in message
    for name in ("report.html", "summary.md"):
        text = (directory / name).read_text()
        assert "boom" in text and xml_safe(text) == text


def test_the_suite_junit_of_an_experiment_that_failed_with_colour_codes_parses(tmp_path: Path) -> None:
    from harness.suite.junit import write_junit
    from harness.suite.model import ExperimentResult

    result = ExperimentResult(tmp_path / "x.yaml", "x \x1b[31mred\x1b[0m", 2, None, error=ANSI_ERROR)
    path = write_junit([result], tmp_path / "junit.xml", tag="nightly")

    root = ET.parse(path).getroot()
    assert root.find("testsuite").get("name") == "x red"
    assert "boom: Locust said no" in root.find(".//error").get("message")


@pytest.mark.parametrize(("raw", "clean"), [
    ("\x1b[31mred\x1b[0m", "red"), ("a\x00b\x0bc\x1fd", "abcd"), ("tab\tnl\ncr\r", "tab\tnl\ncr\r"),
    ("\ud800x\ufffe\uffffy", "xy"), ("\x1b]0;title\x07text", "text"), ("emoji \U0001f600 ok", "emoji \U0001f600 ok"),
])
def test_xml_safe_removes_colour_codes_and_what_xml_forbids(raw: str, clean: str) -> None:
    assert xml_safe(raw) == clean
