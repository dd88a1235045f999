"""`harness signoff`: one go/no-go over every `release` experiment, each compared with its baseline.

The runs are the suite tests' scripted stand-in (tests/suite/suitekit.FakeRun) on the fake platform;
baselines are saved and compared by the real harness.report (save_baseline, compare).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.platforms.fake import FakePlatform
from harness.report import save_baseline
from harness.suite.signoff import SIGNOFF_HTML, SIGNOFF_JSON, SIGNOFF_MD, run_signoff
from tests.suite.suitekit import FakeRun, passing_slos, slo, write_experiment


def capacity_slos(value: float) -> list[dict[str, Any]]:
    row = slo("capacity-at-slo", "chaos", "pass", value, objective=80)
    row.update(query="capacity steps (harness.run.capacity)", source="client")
    return passing_slos() + [row]


@pytest.fixture
def experiments(tmp_path: Path) -> Path:
    directory = tmp_path / "experiments"
    directory.mkdir()
    write_experiment(directory, "capacity", ["release", "capacity"])
    write_experiment(directory, "pod-kill", ["release", "nightly"])
    write_experiment(directory, "canary", ["nightly"])
    return directory


def signoff(experiments: Path, tmp_path: Path, into: str, run: FakeRun, **options: Any) -> Any:
    return run_signoff(experiments_dir=experiments, platform_name="local", report_dir=tmp_path / into,
                       store=tmp_path / "baselines", run=run, get_platform=lambda name: FakePlatform(up_now=False),
                       **options)


def test_without_baselines_there_is_no_go_and_the_report_says_how_to_save_one(experiments: Path,
                                                                              tmp_path: Path) -> None:
    result = signoff(experiments, tmp_path, "first", FakeRun({}, slos={"capacity": capacity_slos(200)}))
    assert result.exit_code == 3 and not result.go
    assert [e.title for e in result.evidence] == ["capacity title", "pod-kill title"]  # release only
    text = (result.report_dir / SIGNOFF_MD).read_text()
    assert "NO-GO" in text and "harness baseline save" in text


def save_all(result: Any, store: Path) -> None:
    for evidence in result.evidence:
        save_baseline(Path(evidence.run_dir), store)


def test_everything_passed_and_nothing_regressed_is_a_go(experiments: Path, tmp_path: Path) -> None:
    save_all(signoff(experiments, tmp_path, "first", FakeRun({}, slos={"capacity": capacity_slos(200)})),
             tmp_path / "baselines")
    result = signoff(experiments, tmp_path, "second", FakeRun({}, slos={"capacity": capacity_slos(196)}),
                     tolerance="capacity=10%")
    assert result.exit_code == 0 and result.go
    assert all(e.baseline and not e.regressions for e in result.evidence)
    assert "# Release sign-off: GO" in (result.report_dir / SIGNOFF_MD).read_text()


def test_a_capacity_drop_past_the_tolerance_is_a_no_go_naming_what_regressed_and_by_how_much(
        experiments: Path, tmp_path: Path) -> None:
    save_all(signoff(experiments, tmp_path, "first", FakeRun({}, slos={"capacity": capacity_slos(200)})),
             tmp_path / "baselines")
    result = signoff(experiments, tmp_path, "second", FakeRun({}, slos={"capacity": capacity_slos(150)}),
                     tolerance="capacity=10%")
    assert result.exit_code == 1
    capacity = result.evidence[0]
    assert [r["subject"] for r in capacity.regressions] == ["client: capacity-at-slo"]
    assert capacity.regressions[0]["change"] == -25.0
    text = (result.report_dir / SIGNOFF_MD).read_text()
    assert "regressed: client: capacity-at-slo value in chaos: 200 -> 150 (-25%, tolerance 10%)" in text
    data = json.loads((result.report_dir / SIGNOFF_JSON).read_text())
    assert data["verdict"] == "NO-GO" and data["exit_code"] == 1
    assert "capacity-at-slo" in (result.report_dir / SIGNOFF_HTML).read_text()


def test_a_run_that_failed_is_a_no_go_even_without_regressions(experiments: Path, tmp_path: Path) -> None:
    save_all(signoff(experiments, tmp_path, "first", FakeRun({})), tmp_path / "baselines")
    result = signoff(experiments, tmp_path, "second", FakeRun({"pod-kill": 1}))
    assert result.exit_code == 1 and result.evidence[1].code == 1


def test_a_bad_tolerance_is_refused_before_anything_runs(experiments: Path, tmp_path: Path) -> None:
    run = FakeRun({})
    with pytest.raises(ConfigError) as caught:
        signoff(experiments, tmp_path, "first", run, tolerance="capacity=lots")
    assert caught.value.field == "--tolerance" and run.calls == []


def test_an_error_with_terminal_colour_codes_reaches_the_signoff_reports_as_plain_text(experiments: Path,
                                                                                       tmp_path: Path) -> None:
    run = FakeRun({"pod-kill": ConfigError("\x1b[31mbad\x1b[0m field\x07", file="pod-kill.yaml")},
                  slos={"capacity": capacity_slos(200)})
    result = signoff(experiments, tmp_path, "coloured", run)
    for name in (SIGNOFF_MD, SIGNOFF_HTML):
        text = (result.report_dir / name).read_text()
        assert "bad field" in text and "\x1b" not in text and "\x07" not in text
