"""The `harness` command line as users call it: commands exist, parse, and map results to exit codes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
RUNS = ROOT / "tests" / "report" / "data"


def harness(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize("command", ["up", "down", "status", "apply", "kill", "run", "validate", "suite",
                                     "gameday", "report", "compare", "baseline", "demo"])
def test_every_command_has_help(command: str) -> None:
    result = harness(command, "--help")
    assert result.returncode == 0 and "usage: harness" in result.stdout


def test_report_regenerates_the_reports_of_a_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUNS / "pod-kill-pass", run)
    result = harness("report", str(run))
    assert result.returncode == 0, result.stderr
    assert {"report.html", "junit.xml", "summary.md"} <= {p.name for p in run.iterdir()}


def test_report_of_a_folder_without_a_journal_names_it(tmp_path: Path) -> None:
    result = harness("report", str(tmp_path))
    assert result.returncode == 2 and "journal.json" in result.stderr


def test_a_run_compared_with_itself_passes_and_a_failing_run_regresses(tmp_path: Path) -> None:
    same = harness("compare", str(RUNS / "pod-kill-pass"), str(RUNS / "pod-kill-pass"))
    assert same.returncode == 0, same.stdout + same.stderr
    worse = harness("compare", str(RUNS / "abort-critical-fail"), str(RUNS / "pod-kill-pass"),
                    "--tolerance", "p99=10%,availability=0.1,throughput=10%")
    assert worse.returncode == 1, worse.stdout + worse.stderr


def test_a_saved_baseline_is_found_by_compare(tmp_path: Path) -> None:
    env = {"HARNESS_BASELINE_DIR": str(tmp_path / "baselines")}
    saved = harness("baseline", "save", str(RUNS / "pod-kill-pass"), **env)
    assert saved.returncode == 0, saved.stderr
    compared = harness("compare", str(RUNS / "pod-kill-pass"), **env)
    assert compared.returncode == 0, compared.stdout + compared.stderr


def test_kind_only_flags_are_refused_on_the_local_platform() -> None:
    result = harness("status", "--clusters", "3")
    assert result.returncode == 2 and "kind only" in result.stderr


def test_the_kind_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    result = harness("up", "--platform", "kind", "--dry-run", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "kind create cluster --name parallel-ai" in result.stdout
    assert "istioctl install" in result.stdout


def test_suite_with_an_unknown_tag_names_the_tags_that_exist() -> None:
    result = harness("suite", "no-such-tag")
    assert result.returncode == 2 and "nightly" in result.stderr


STATUS = {"platform": "local", "profile": "dev", "ingress_url": "http://127.0.0.1:18080",
          "ingress_host": "ai-agent-service.parallel-ai.svc.cluster.local", "prometheus_url": "http://127.0.0.1:19090",
          "pods": [{"name": "analytics-v1-us-west-0", "service": "analytics-service", "version": "v1",
                    "region": "us-west", "ready": False, "restarts": 3, "pid": 41234, "sidecar_pid": 41236,
                    "sidecar_admin_url": "http://127.0.0.1:21033", "inbound_port": 21031}]}


@pytest.mark.parametrize("width, shown, hidden", [(80, ["41236", "21031", "no"], ["analytics-service", "21033"]),
                                                  (140, ["analytics-service", "us-west", "21033", "21031"], [])])
def test_the_status_table_keeps_every_cell_whole_at_the_terminal_width(
        width: int, shown: list[str], hidden: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli

    monkeypatch.setenv("COLUMNS", str(width))
    cli._print_status(STATUS)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "analytics-v1-us-west-0" in line)
    assert all(cell in row.split() for cell in shown), row
    assert not any(cell in row.split() for cell in hidden), row
    table = out.splitlines()[3:]  # after platform, ingress (never broken inside its URL) and prometheus
    assert "…" not in out and max(len(line) for line in table) <= width
