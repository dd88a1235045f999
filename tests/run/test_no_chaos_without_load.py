"""No chaos without load: a load that does not start, or dies, stops the run before any fault (exit 2).

The runs here go through `harness run` (harness.cli.main) and plain Chaos Toolkit on a stand-in
platform whose ingress is a closed loopback port: Locust still starts its users (their requests fail),
which is all these tests need. The method's one action writes a marker file, so "no fault was
injected" is checked directly. chaostoolkit-lib drops exceptions raised in control hooks except
InterruptExecution (chaoslib/control/__init__.py, apply_controls), which is what the stop relies on.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.platforms.fake import FakePlatform

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SLO = "slos:\n  - {name: client-ok, source: client, template: availability, objective: 0.5, comparator: '>='}\n"
MARKER_MODULE = '''
from pathlib import Path


def inject(marker: str) -> dict:
    """The test's stand-in for a fault: it leaves a file behind."""
    Path(marker).write_text("a fault was injected")
    return {"injected": True}
'''


def experiment(tmp_path: Path, locustfile: str, *, baseline_s: float = 1) -> tuple[Path, Path]:
    """An experiment whose method writes a marker file; returns (experiment file, marker path)."""
    (tmp_path / "h9c_marker_action.py").write_text(MARKER_MODULE)
    (tmp_path / "locustfile.py").write_text(textwrap.dedent(locustfile))
    (tmp_path / "slos.yaml").write_text(CLIENT_SLO)
    marker = tmp_path / "fault-was-injected"
    document = {
        "title": "no chaos without load", "version": "1.0.0", "description": "test",
        "controls": [{"name": "harness", "provider": {"type": "python", "module": "harness.run.control", "arguments": {
            "load": {"locustfile": "locustfile.py", "users": 2, "spawn_rate": 10},
            "slo_file": "slos.yaml", "warmup_s": 0.5, "baseline_s": baseline_s, "recovery_s": 1}}}],
        "method": [{"type": "action", "name": "mark", "provider": {
            "type": "python", "module": "h9c_marker_action", "func": "inject", "arguments": {"marker": str(marker)}}}],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(document))
    return path, marker


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakePlatform:
    """Up, with no pods and no Istio resources; its ingress and Prometheus are loopback ports nothing
    listens on (harness.platforms.fake)."""
    platform = FakePlatform(pods=[], declared=[], ledger_dir=tmp_path / "ledger")
    monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: platform)
    monkeypatch.syspath_prepend(str(tmp_path))
    return platform


BROKEN_AT_IMPORT = """
raise RuntimeError("this locustfile is broken on purpose")
"""

DIES_AFTER_START = """
import os
import time

from locust import HttpUser, constant, task

STARTED = time.monotonic()


class Dies(HttpUser):
    wait_time = constant(0.05)

    @task
    def chat(self):
        if time.monotonic() - STARTED > 0.5:
            os._exit(3)  # the load generator dies in the middle of the run
        self.client.get("/", name="probe")
"""


def test_a_load_that_fails_to_start_stops_the_run_before_any_fault_with_exit_2_and_locusts_log(
        tmp_path: Path, stand_in: FakePlatform, capsys: pytest.CaptureFixture[str]) -> None:
    path, marker = experiment(tmp_path, BROKEN_AT_IMPORT)
    run_dir = tmp_path / "run"
    code = main(["run", str(path), "--report-dir", str(run_dir), "--no-progress"])
    assert code == 2
    assert not marker.exists(), "the method ran although the load never started"
    journal = json.loads((run_dir / "journal.json").read_text())
    assert "the load did not start" in journal["harness"]["error"]
    assert "broken on purpose" in journal["harness"]["error"]  # Locust's log tail, not just "failed"
    assert journal["harness"]["exit_code"] == 2
    assert "broken on purpose" in capsys.readouterr().err


def test_any_error_while_starting_the_load_stops_the_run_before_any_fault(
        tmp_path: Path, stand_in: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only LoadError: Chaos Toolkit would drop any exception of the hook and run the method."""
    def broken_start(*_: Any) -> None:
        raise RuntimeError("the platform's status could not be read")

    monkeypatch.setattr("harness.run.evaluation.start_load", broken_start)
    path, marker = experiment(tmp_path, DIES_AFTER_START)
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--report-dir", str(run_dir), "--no-progress"]) == 2
    assert not marker.exists()
    error = json.loads((run_dir / "journal.json").read_text())["harness"]["error"]
    assert "RuntimeError: the platform's status could not be read" in error


def test_a_load_that_dies_in_the_baseline_stops_the_run_before_any_fault_with_exit_2(
        tmp_path: Path, stand_in: FakePlatform) -> None:
    path, marker = experiment(tmp_path, DIES_AFTER_START, baseline_s=20)
    run_dir = tmp_path / "run"
    code = main(["run", str(path), "--report-dir", str(run_dir), "--no-progress"])
    assert code == 2
    assert not marker.exists(), "the method ran although the load had died"
    journal = json.loads((run_dir / "journal.json").read_text())
    assert "the load stopped during the" in journal["harness"]["error"]
    assert journal["harness"]["phases"]["chaos"]["start"] is None
    assert journal["status"] == "interrupted"


DIES_ONCE_THE_FAULT_IS_IN = """
import os
from pathlib import Path

from locust import HttpUser, constant, task

MARKER = Path(os.environ["H9C_MARKER"])


class DiesInChaos(HttpUser):
    wait_time = constant(0.05)

    @task
    def chat(self):
        if MARKER.exists():
            os._exit(3)  # the load generator dies while the fault is in place
        self.client.get("/", name="probe")
"""


def test_a_load_that_dies_during_chaos_stops_the_chaos_rolls_back_and_exits_2(
        tmp_path: Path, stand_in: FakePlatform) -> None:
    path, marker = experiment(tmp_path, DIES_ONCE_THE_FAULT_IS_IN)
    document = json.loads(path.read_text())
    document["controls"][0]["provider"]["arguments"]["load"]["env"] = {"H9C_MARKER": str(marker)}
    document["method"][0]["pauses"] = {"after": 30}  # the chaos would last 30 s; the dead load ends it
    rolled_back = tmp_path / "rolled-back"
    document["rollbacks"] = [{"type": "action", "name": "roll-back", "provider": {
        "type": "python", "module": "h9c_marker_action", "func": "inject", "arguments": {"marker": str(rolled_back)}}}]
    path.write_text(json.dumps(document))
    run_dir = tmp_path / "run"
    code = main(["run", str(path), "--report-dir", str(run_dir), "--no-progress"])
    assert code == 2
    journal = json.loads((run_dir / "journal.json").read_text())
    assert "the load stopped during the chaos phase" in journal["harness"]["error"]
    assert marker.exists() and rolled_back.exists()  # the fault went in, and the rollbacks still ran
    assert journal["harness"]["phases"]["recovery"]["start"] is None  # no recovery judged without load
    chaos = journal["harness"]["phases"]["chaos"]
    assert chaos["end"] - chaos["start"] < 25  # stopped by the dead load, not by the 30 s pause


def test_plain_chaos_run_with_a_harness_control_that_cannot_be_configured_injects_nothing(
        tmp_path: Path, stand_in: FakePlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslib.experiment import run_experiment

    from harness.chaos.context import use_platform
    from harness.run import control

    path, marker = experiment(tmp_path, DIES_AFTER_START)
    reused = tmp_path / "reused"
    reused.mkdir()
    (reused / "samples.csv").write_text("a previous run's samples\n")
    monkeypatch.setenv("HARNESS_RUN_DIR", str(reused))  # configure_control refuses it
    document = json.loads(path.read_text())
    document["__harness_path__"] = str(path)
    use_platform(stand_in)  # type: ignore[arg-type]
    try:
        journal = run_experiment(document)
    finally:
        use_platform(None)
        control.set_session(None)
    assert not marker.exists(), "plain chaos run injected a fault without the harness's load"
    assert journal["status"] == "interrupted"
    assert (reused / "samples.csv").read_text() == "a previous run's samples\n"


def test_a_reused_report_dir_is_refused_before_the_platform_is_touched(
        tmp_path: Path, stand_in: FakePlatform, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path, marker = experiment(tmp_path, DIES_AFTER_START)
    reused = tmp_path / "reused"
    reused.mkdir()
    (reused / "samples.csv").write_text("old\n")
    monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: pytest.fail("platform touched"))
    assert main(["run", str(path), "--report-dir", str(reused)]) == 2
    err = capsys.readouterr().err
    assert "--report-dir" in err and "samples.csv" in err and str(reused) in err
    assert not marker.exists()


@pytest.mark.parametrize("workers", ["33", "-1"])
def test_more_workers_than_the_machine_has_cpus_is_refused_before_anything_starts(
        tmp_path: Path, workers: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = experiment(tmp_path, DIES_AFTER_START)
    monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: pytest.fail("platform touched"))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert main(["run", str(path), "--workers", workers, "--report-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--workers" in err and "at most one per CPU" in err


def test_the_worker_limit_follows_the_machines_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.load._spec import number_problem

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert number_problem("workers", 4) is None
    assert number_problem("workers", 5) is not None
    monkeypatch.setattr("os.cpu_count", lambda: None)  # unknown: one worker is always possible
    assert number_problem("workers", 1) is None


if sys.platform != "linux":  # pragma: no cover
    pytestmark = pytest.mark.skip("Locust processes and signals as on Linux")
