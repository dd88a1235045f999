"""Specifications of the reports written into a run directory: report.html, summary.md, samples.parquet."""

from __future__ import annotations

import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from harness.report import write_reports
from harness.report import write as write_module
from harness.slo import load_samples
from tests.report.reportkit import FAILING, PASSING, SLOW, RunFactory


class _Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Elements:
    parser = _Elements()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_write_reports_writes_html_junit_summary_and_parquet_into_the_run_directory(run_dir: RunFactory) -> None:
    directory = run_dir(FAILING)

    written = write_reports(directory)

    names = [p.name for p in written]
    assert names[:3] == ["report.html", "junit.xml", "summary.md"]
    assert all(p.parent == directory and p.stat().st_size > 0 for p in written)
    assert (directory / "samples.csv").is_file(), "the raw CSV stays"
    assert not list(directory.glob(".*.tmp")), "no temporary file is left behind"


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_samples_parquet_holds_every_sample_of_the_csv(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)

    write_reports(directory)

    csv = load_samples(directory / "samples.csv")
    parquet = pd.read_parquet(directory / "samples.parquet")
    assert len(parquet) == len(csv) > 0
    assert list(parquet.columns) == list(csv.columns)
    assert parquet["latency_ms"].sum() == pytest.approx(csv["latency_ms"].sum())


def test_without_pyarrow_the_csv_is_the_only_copy_of_the_samples(run_dir: RunFactory,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    directory = run_dir(PASSING)
    real = importlib.util.find_spec
    monkeypatch.setattr(write_module.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))

    written = write_reports(directory)

    assert [p.name for p in written] == ["report.html", "junit.xml", "summary.md"]
    assert not (directory / "samples.parquet").exists()


def test_report_html_puts_the_verdict_and_score_at_the_top(run_dir: RunFactory) -> None:
    directory = run_dir(FAILING)
    write_reports(directory)

    html = (directory / "report.html").read_text()

    header = html[html.index("<body>"):html.index("</header>")]
    assert 'id="verdict">FAIL<' in header
    assert "exit 1" in header and "resilience score 50.3/100" in header


@pytest.mark.parametrize(("name", "word"), [(PASSING, "PASS"), (FAILING, "FAIL")])
def test_report_html_verdict_follows_the_exit_code(run_dir: RunFactory, name: str, word: str) -> None:
    directory = run_dir(name)
    write_reports(directory)

    assert f'id="verdict">{word}<' in (directory / "report.html").read_text()


@pytest.mark.parametrize(("exit_code", "word", "reason"), [
    (3, "INCONCLUSIVE", "inconclusive: Prometheus unreachable"),
    (130, "INTERRUPTED", "interrupted by SIGINT"),
])  # fmt: skip
def test_report_html_says_inconclusive_or_interrupted_with_the_reason(run_dir: RunFactory, exit_code: int,
                                                                       word: str, reason: str) -> None:
    directory = run_dir(PASSING, exit_code=exit_code, inconclusive="Prometheus unreachable" if exit_code == 3 else None,
                        interrupted_by="SIGINT" if exit_code == 130 else None)
    write_reports(directory)

    html = (directory / "report.html").read_text()

    assert f'id="verdict">{word}<' in html and reason in html
    assert "resilience score none" in html


def test_report_html_plots_throughput_errors_and_latency_per_service(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)
    write_reports(directory)

    page = _parse(directory / "report.html")

    titles = [attrs.get("aria-label") for tag, attrs in page.tags if tag == "svg"]
    for service in ("all requests", "chat [canary]", "chat [premium]", "chat [standard]"):
        assert [t for t in titles if t and t.startswith(f"{service}:")] == [
            f"{service}: throughput", f"{service}: error rate", f"{service}: latency"]
    legend = "".join(page.text)
    assert "p50" in legend and "p95" in legend and "p99" in legend
    assert sum(1 for tag, _ in page.tags if tag == "polyline") >= 4 * 5


def test_report_html_shades_and_labels_every_fault_window_and_marks_the_phases(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)
    write_reports(directory)

    page = _parse(directory / "report.html")

    shaded = [attrs for tag, attrs in page.tags if tag == "rect" and attrs.get("class") == "fault"]
    assert len(shaded) == 3 * 12, "three kills shaded on each of the 12 charts"
    text = "".join(page.text)
    assert text.count("kill ai-agent-v1-us-west-0") >= 2 * 12 and "kill ai-agent-v1-us-east-0" in text
    phases = [attrs for tag, attrs in page.tags if tag == "line" and attrs.get("class") == "phase"]
    assert len(phases) == 4 * 12, "baseline, chaos and recovery starts and the end, on each chart"


def test_report_html_has_the_slo_table_per_phase_with_each_query(run_dir: RunFactory) -> None:
    directory = run_dir(FAILING)
    write_reports(directory)

    html = (directory / "report.html").read_text()

    section = html[html.index('id="slos"'):]
    assert [m for m in re.findall(r"<h3>(\w+) ", section)][:3] == ["baseline", "chaos", "recovery"]
    assert "destination_service_name=&quot;ai-agent-service&quot;" in section
    assert "client samples: share of samples with ok and 0 &lt; status &lt; 500" in section
    assert '<span class="fail">fail</span>' in section


def test_report_html_lists_pods_killed_with_recovery_and_fault_latencies(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)
    write_reports(directory)

    html = (directory / "report.html").read_text()

    kills = html[html.index('id="kills"'):]
    assert "ai-agent-v1-us-west-0" in kills and "1.64 s" in kills and "1.82 s" in kills
    faults = html[html.index('id="faults"'):html.index('id="kills"')]
    assert "inject ms" in faults and "revert ms" in faults and "8.5" in faults


def test_report_html_needs_no_network(run_dir: RunFactory) -> None:
    directory = run_dir(FAILING)
    write_reports(directory)

    page = _parse(directory / "report.html")

    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not re.search(r"(https?:)?//|url\(", value or ""), f"<{tag} {name}={value!r}> would fetch"
    styles = "".join(t for t in page.text if "{" in t)
    assert "url(" not in styles and "@import" not in styles


def test_summary_md_gives_verdict_score_slo_table_faults_and_what_to_fix(run_dir: RunFactory) -> None:
    directory = run_dir(FAILING)
    write_reports(directory)

    summary = (directory / "summary.md").read_text()

    assert summary.startswith("## FAIL: 503s on calls to user fail chats")
    assert "**Resilience score:** 50.3/100" in summary
    assert "| ai-agent-availability | chaos | 0.572 | >= 0.995 | **fail** |" in summary
    assert "- abort 503 50% user-service: +5.6 s to +14.2 s (inject 525.51 ms, revert 587.2 ms)" in summary
    fixes = summary[summary.index("**What to fix**"):]
    assert "`VirtualService (none for user-service)` `spec.http[].retries`" in fixes
    assert "istio#13705" in fixes


def test_summary_md_of_a_passing_run_has_nothing_to_fix(run_dir: RunFactory) -> None:
    directory = run_dir(PASSING)
    write_reports(directory)

    summary = (directory / "summary.md").read_text()

    assert summary.startswith("## PASS: ") and "100.0/100" in summary
    assert "What to fix" not in summary
    assert "pod ai-agent-v1-us-east-0 killed at +9.0 s, ready again after 1.82 s" in summary


def test_summary_md_of_a_slow_run_names_the_route_timeouts(run_dir: RunFactory) -> None:
    directory = run_dir(SLOW)
    write_reports(directory)

    summary = (directory / "summary.md").read_text()

    assert "`VirtualService/ai-agent-routing` `spec.http[0].timeout`" in summary
    assert "timeout 60s, above the SLO's 500 ms" in summary


def test_a_run_without_samples_still_gets_every_report(run_dir: RunFactory) -> None:
    directory = run_dir(FAILING)
    (directory / "samples.csv").unlink()

    written = write_reports(directory)

    assert [p.name for p in written] == ["report.html", "junit.xml", "summary.md"]
    assert "No request samples in this run." in (directory / "report.html").read_text()
