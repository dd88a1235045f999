"""A `harness run` SIGKILLed at any point leaves no fault behind for the next command to measure on.

The run's process group is killed (the harness, and with it its Locust processes, which the kernel
kills when their parent dies) at the moment each kind of fault is in place, found by watching the
fault ledger and the mesh rather than by sleeping. The next command, `harness reset`, `harness up`
or a `harness run` of another experiment, must leave the mesh as declared: Istio resources as
shipped, no app knob set, nothing held down, every pod ready, an empty ledger. A run that follows undoes the
faults before its warm-up and journals them (harness.cleaned_before_run), and passes, where the
left fault (an ai-agent answering 503 to everything, a region held down) would have failed it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.platforms.local.private import knobs_client
from tests.local_mesh.meshkit import Mesh

ROOT = Path(__file__).parents[2]
EXPERIMENTS = ROOT / "experiments"
FAST_PHASES = {"HARNESS_WARMUP_S": "2", "HARNESS_BASELINE_S": "6", "HARNESS_RECOVERY_S": "6"}  # as test_experiment_runs
WAIT_S = 120.0
# Phases of a run whose SLO verdicts are not looked at (a killed run, the audit's): short, so the fault comes soon.
SHORT_PHASES = {"HARNESS_WARMUP_S": "1", "HARNESS_BASELINE_S": "1", "HARNESS_RECOVERY_S": "2"}
LIVE_LOAD = {"pod-kill": ["--users", "3", "--rate", "10"]}  # as test_experiment_runs: the load, not the machine


def run_env(mesh: Mesh, phases: dict[str, str] = FAST_PHASES) -> dict[str, str]:
    settings = mesh.platform.settings
    return {**os.environ, **phases, "HARNESS_STATE_DIR": str(settings.state_dir),
            "HARNESS_BASE_PORT": str(settings.base_port), "HARNESS_INGRESS_PORT": str(settings.ingress_port),
            "HARNESS_PROMETHEUS_PORT": str(settings.prometheus_port), "HARNESS_AI_LATENCY_MS": "2"}


def harness(mesh: Mesh, *args: str, phases: dict[str, str] = FAST_PHASES) -> subprocess.Popen[str]:
    """`harness ...` in a process group of its own (its pid is the group id), as a terminal would start it."""
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=run_env(mesh, phases),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def ledger(mesh: Mesh) -> list[dict[str, Any]]:
    folder = mesh.platform.ledger_dir
    entries = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entries.append(json.loads(path.read_text()))
        except (OSError, ValueError):  # removed or replaced while read
            continue
    return entries


def phase(report_dir: Path) -> str | None:
    try:
        return json.loads((report_dir / "journal.json").read_text())["harness"]["phase"]
    except (OSError, ValueError, KeyError):
        return None


def knobs(mesh: Mesh, pod: str) -> dict[str, Any]:
    with knobs_client(mesh.platform.state_dir, pod) as client:  # the app's socket and token
        return client.get("/admin/knobs").json()


def held(mesh: Mesh) -> list[str]:
    return sorted(p["name"] for p in mesh.platform.pods() if p.get("held"))


def has_entry(mesh: Mesh, kind: str) -> bool:
    return any(e["kind"] == kind and (kind != "kill" or e["undo"]["pods"]) for e in ledger(mesh))


def experiment(tmp_path: Path, base: str, method: list[dict[str, Any]] | None = None) -> Path:
    doc = yaml.safe_load((EXPERIMENTS / f"{base}.yaml").read_text())
    if method is not None:
        doc["method"] = method
    path = tmp_path / f"{base}-killed.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def action(func: str, pause_s: float, **arguments: Any) -> dict[str, Any]:
    return {"type": "action", "name": func.replace("_", "-"), "pauses": {"after": pause_s},
            "provider": {"type": "python", "module": "harness.chaos.actions", "func": func, "arguments": arguments}}


@dataclass(frozen=True)
class Case:
    name: str
    base: str  # the experiment run, then killed
    method: list[dict[str, Any]] | None  # replaces its method (None: as shipped)
    ready_to_kill: Callable[[Mesh, Path], bool]  # the fault is in place (or the phase reached)
    left: str | None  # the ledger kind the kill leaves behind, if any
    then: str  # "reset", "up" (the mesh is up: it only cleans) or the experiment run next


CASES = [
    Case("baseline", "latency-injection", None, lambda m, d: phase(d) == "baseline", None, "reset"),
    Case("source-fault", "latency-injection", [action("inject_delay", 30, service="user", delay_ms=300)],
         lambda m, d: has_entry(m, "istio") and "'fault'" in repr(m.platform.resources()), "istio", "reset"),
    Case("destination-fault", "abort-injection",
         [action("inject_abort", 30, service="ai-agent", http_status=503, percentage=100, side="destination")],
         lambda m, d: has_entry(m, "knobs") and knobs(m, "ai-agent-v1-us-east-0")["error_rate"] == 1,
         "knobs", "latency-injection"),
    Case("pod-kill", "pod-kill", None, lambda m, d: has_entry(m, "kill"), "kill", "up"),
    Case("region-hold", "cluster-failover", None,
         lambda m, d: has_entry(m, "hold") and "user-v1-us-east-0" in held(m), "hold", "pod-kill"),
    Case("scale", "latency-injection", [action("scale", 30, service="ai-agent", replicas=1)],
         lambda m, d: has_entry(m, "hold") and len(held(m)) == 2, "hold", "reset"),
    Case("recovery", "abort-injection",
         [action("inject_abort", 1, service="analytics", http_status=503, percentage=50)],
         lambda m, d: phase(d) == "recovery", None, "reset"),
]


def load_processes_of(report_dir: Path) -> list[int]:
    """Processes working in the run's folder: its Locust master and workers."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == report_dir:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def wait_until(condition: Callable[[], bool], what: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}: {process.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {WAIT_S} s waiting for {what}")


def assert_declared(mesh: Mesh) -> None:
    """The mesh as shipped: the conditions the residual-fault audit checks, read independently."""
    shipped = ROOT / "harness/mesh/manifests/istio"
    declared = sorted((d for p in shipped.glob("*.yaml") for d in yaml.safe_load_all(p.read_text()) if d),
                      key=lambda d: (d["kind"], d["metadata"]["name"]))
    assert sorted(mesh.platform.resources(), key=lambda d: (d["kind"], d["metadata"]["name"])) == declared
    assert held(mesh) == []
    mesh.wait_for(mesh.all_ready, 30, "every pod ready")
    for pod in mesh.platform.pods():
        values = knobs(mesh, pod["name"])
        assert (values["error_rate"], values["latency_ms"], values["hang"]) == (0, 0, False), pod["name"]
    assert ledger(mesh) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_run_killed_with_sigkill_leaves_nothing_the_next_command_does_not_undo(
        mesh: Mesh, tmp_path: Path, case: Case) -> None:
    report_dir = (tmp_path / "killed").resolve()
    run = harness(mesh, "run", str(experiment(tmp_path, case.base, case.method)), "--report-dir", str(report_dir),
                  "--no-progress", phases=SHORT_PHASES)
    try:
        wait_until(lambda: case.ready_to_kill(mesh, report_dir), f"the {case.name} moment", run)
        os.killpg(run.pid, signal.SIGKILL)  # the whole group: no handler, no undo, no journal write
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    wait_until(lambda: load_processes_of(report_dir) == [], "the killed run's Locust processes to be gone")

    left = [e["kind"] for e in ledger(mesh)]
    if case.left is not None:
        assert case.left in left, left
        status = harness(mesh, "status")
        _, stderr = status.communicate(timeout=60)
        assert status.returncode == 0, stderr
        assert stderr.count("a fault of a process that is gone is still recorded") == len(left), stderr
    if case.name == "recovery":
        assert left == []  # every fault was undone before the recovery window began

    if case.then == "reset":
        reset = harness(mesh, "reset")
        _, stderr = reset.communicate(timeout=120)
        assert reset.returncode == 0, stderr
        assert stderr.count("cleared a fault of a process that is gone") == len(left), stderr
    elif case.then == "up":
        up = harness(mesh, "up")
        stdout, stderr = up.communicate(timeout=120)
        assert up.returncode == 0, stderr
        assert "already up" in stdout
        assert stderr.count("cleaned up a fault of a process that is gone") == len(left), stderr
    else:
        next_dir = tmp_path / "next"
        following = harness(mesh, "run", str(EXPERIMENTS / f"{case.then}.yaml"), "--report-dir", str(next_dir),
                            "--no-progress", *LIVE_LOAD.get(case.then, []))
        stdout, stderr = following.communicate(timeout=300)
        journal = json.loads((next_dir / "journal.json").read_text())["harness"]
        assert following.returncode == 0, stdout + stderr
        assert [c["kind"] for c in journal["cleaned_before_run"]] == list(reversed(left))
        assert {c["outcome"] for c in journal["cleaned_before_run"]} == {"undone"}
        assert journal["residual_faults"] == []
    assert_declared(mesh)


@pytest.mark.parametrize("runner", ["harness run", "chaos run"])
def test_a_fault_the_run_did_not_undo_is_named_and_the_run_is_an_error(clean_mesh: Mesh, tmp_path: Path,
                                                                        runner: str) -> None:
    """The residual-fault audit at the end of every run: a knob an action set behind the harness's back
    (no undo registered) is still set after the rollbacks; `harness run` exits 2 naming it, and under
    plain `chaos run` the harness journal records it as the run's error."""
    method = [{"type": "action", "name": "slow-user-quietly", "pauses": {"after": 2}, "provider": {
        "type": "python", "module": "tests.local_mesh.unrecorded_actions", "func": "set_knobs_without_undo",
        "arguments": {"pod": "user-v1-eu-west-0", "latency_ms": 1}}}]
    report_dir = tmp_path / "run"
    path = experiment(tmp_path, "latency-injection", method)
    leftover = "pod user-v1-eu-west-0 has fault knobs set: latency_ms=1.0"  # as the app reports it
    if runner == "harness run":
        process = harness(clean_mesh, "run", str(path), "--report-dir", str(report_dir), "--no-progress",
                          phases=SHORT_PHASES)
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, stdout + stderr
        assert leftover in stderr
    else:
        chaos = Path(sys.executable).parent / "chaos"
        # Chaos Toolkit's script does not put the working directory on sys.path: the checkout's
        # tests package (the unrecorded action) is found through PYTHONPATH.
        env = {**run_env(clean_mesh, SHORT_PHASES), "HARNESS_RUN_DIR": str(report_dir), "PYTHONPATH": str(ROOT)}
        result = subprocess.run([str(chaos), "--no-log-file", "run", "--journal-path", str(tmp_path / "chaos.json"),
                                 str(path)], cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
        assert leftover in result.stdout + result.stderr
    journal = json.loads((report_dir / "journal.json").read_text())["harness"]
    assert journal["residual_faults"] == [leftover]
    assert leftover in journal["error"]


def test_status_from_another_folder_finds_the_running_mesh(mesh: Mesh, tmp_path: Path) -> None:
    """No HARNESS_STATE_DIR, another working directory: the default state folder
    ($XDG_STATE_HOME/mesh-harness, here a link to this mesh's) finds the mesh that is up."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "mesh-harness").symlink_to(mesh.platform.state_dir)
    env = {k: v for k, v in run_env(mesh).items() if k != "HARNESS_STATE_DIR"}
    env["XDG_STATE_HOME"] = str(xdg)
    elsewhere = tmp_path / "some-project"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "harness.cli", "status", "--json"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["up"] and status["state_dir"] == str(mesh.platform.state_dir)
    assert list(elsewhere.iterdir()) == []  # nothing written where the command ran (no ./.harness)


def test_an_istio_change_somebody_else_made_during_the_run_makes_it_inconclusive_not_an_error(
        clean_mesh: Mesh, tmp_path: Path) -> None:
    """A DestinationRule changed during the run by something other than the run (here an action with no
    undo, as `harness apply` from another shell would): the run's phases were judged on a mesh that
    changed under them, so the run is inconclusive (exit 3) naming it; it is no fault the run left
    (that stays exit 2, the test above), and the journal keeps them apart."""
    rule = next(doc for doc in clean_mesh.platform.resources() if doc["kind"] == "DestinationRule")
    changed = {**rule, "spec": {**rule["spec"], "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 7}}}}}
    method = [{"type": "action", "name": "someone-else-applies", "pauses": {"after": 2}, "provider": {
        "type": "python", "module": "tests.local_mesh.unrecorded_actions", "func": "apply_without_undo",
        "arguments": {"documents": [changed]}}}]
    report_dir = tmp_path / "run"
    process = harness(clean_mesh, "run", str(experiment(tmp_path, "latency-injection", method)), "--report-dir",
                      str(report_dir), "--no-progress")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 3, stdout + stderr
    journal = json.loads((report_dir / "journal.json").read_text())["harness"]
    name = f"DestinationRule parallel-ai/{rule['metadata']['name']}"
    assert journal["residual_faults"] == [] and not journal.get("error")
    assert journal["changed_during_run"] == [f"{name} differs from the run's starting one"]
    assert "changed while the run measured, not by the run" in journal["inconclusive"]
