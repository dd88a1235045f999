"""Specifications of `harness report`, `harness compare` and `harness baseline save` as the CLI calls them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import cli
from harness.errors import ConfigError
from harness.report import compare_with_baseline, regenerate, regenerate_report
from tests.report.reportkit import FAILING, PASSING, RunFactory


def test_regenerate_writes_the_reports_again(run_dir: RunFactory) -> None:
    directory = run_dir(FAILING)
    first = regenerate(directory)
    (directory / "report.html").write_text("stale")

    again = regenerate(directory)

    assert again == first[:3], "report.html, junit.xml, summary.md; samples.parquet is already up to date"
    assert 'id="verdict">FAIL<' in (directory / "report.html").read_text()


def test_regenerate_of_a_missing_directory_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        regenerate(tmp_path / "no-such-run")

    assert raised.value.file == str(tmp_path / "no-such-run")
    assert "expected a run directory written by `harness run`" in str(raised.value)


def test_regenerate_of_a_directory_without_a_journal_names_the_journal(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        regenerate(tmp_path)

    assert raised.value.file == str(tmp_path / "journal.json")
    assert "expected the run's journal here" in str(raised.value)


def test_regenerate_of_an_unparsable_journal_says_where_it_breaks(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)
    (directory / "journal.json").write_text('{"experiment": {"title": "x"},\n  "status": }')

    with pytest.raises(ConfigError) as raised:
        regenerate(directory)

    assert raised.value.file == str(directory / "journal.json")
    assert "expected JSON, got an error at line 2 column" in str(raised.value)


def test_regenerate_of_json_that_is_no_journal_names_the_field(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)
    (directory / "journal.json").write_text('{"status": "completed"}')

    with pytest.raises(ConfigError) as raised:
        regenerate(directory)

    assert (raised.value.file, raised.value.field) == (str(directory / "journal.json"), "experiment")


def test_regenerate_of_a_harness_section_of_the_wrong_shape_names_it(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING, slo_results=[{"name": "x"}])

    with pytest.raises(ConfigError) as raised:
        regenerate(directory)

    # The field is exact: the first thing the entry lacks (it has only a name).
    assert (raised.value.file, raised.value.field) == (str(directory / "journal.json"), "harness.slo_results[0].phase")
    assert "expected a string" in str(raised.value)


def test_an_unfinished_run_is_reported_as_an_error(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING, exit_code=None, phase="chaos", journal={"status": "running"})

    regenerate(directory)

    html = (directory / "report.html").read_text()
    assert 'id="verdict">ERROR<' in html
    assert "the run did not finish (journal status &#x27;running&#x27;, phase &#x27;chaos&#x27;)" in html


def test_a_plain_chaos_toolkit_journal_is_reported_as_an_error_saying_so(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)
    journal = json.loads((directory / "journal.json").read_text())
    del journal["harness"]
    (directory / "journal.json").write_text(json.dumps(journal))

    regenerate(directory)

    html = (directory / "report.html").read_text()
    assert 'id="verdict">ERROR<' in html and "it was not written by `harness run`" in html


def test_report_returns_the_files_and_the_run_and_the_cli_prints_them(
        run_dir: RunFactory, capsys: pytest.CaptureFixture[str]) -> None:
    directory = run_dir(FAILING)
    report = regenerate_report(directory)
    assert directory / "report.html" in report.written and report.run.exit_code == 1
    assert capsys.readouterr().out == ""  # the library prints nothing: cli.py does

    code = cli.main(["report", str(directory)])

    out = capsys.readouterr().out
    assert code == 0
    assert f"wrote {directory / 'report.html'}" in out
    assert "verdict: FAIL (exit 1), resilience score 50.3/100" in out


def test_cli_baseline_save_then_compare_uses_the_saved_baseline(run_dir: RunFactory, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_BASELINE_DIR", str(tmp_path / "store"))

    assert cli.main(["baseline", "save", str(run_dir(PASSING, into="old"))]) == 0
    saved = capsys.readouterr().out
    code = cli.main(["compare", str(run_dir(PASSING, into="new")), "--tolerance",
                     "p99=10%,availability=0.1,throughput=10%"])

    assert "as the baseline of 'ai-agent v1 pods killed repeatedly under load'" in saved
    assert str(tmp_path / "store") in saved
    assert code == 0
    assert "no regressions past the tolerance" in capsys.readouterr().out


def test_cli_compare_exits_1_on_a_regression_and_prints_it(run_dir: RunFactory,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    silent = run_dir(PASSING, into="silent")
    (silent / "samples.csv").write_text((silent / "samples.csv").read_text().splitlines()[0] + "\n")

    good = run_dir(PASSING, into="good")
    comparison = compare_with_baseline(silent, good, "throughput=10%")
    assert comparison.regressions and capsys.readouterr().out == ""

    code = cli.main(["compare", str(silent), str(good), "--tolerance", "throughput=10%"])

    out = capsys.readouterr().out
    assert code == 1
    assert "all requests in chaos: req/s 36.9 -> 0.0 (-100.0%, tolerance 10%)" in out


def test_cli_compare_without_a_saved_baseline_says_how_to_save_one(run_dir: RunFactory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        compare_with_baseline(run_dir(PASSING), None, None, store=tmp_path / "empty")

    assert raised.value.field == "BASELINE"
    assert "save one with `harness baseline save RUN`" in str(raised.value)
