"""The fault ledger without a mesh: on disk before the fault, gone after its undo, undone from another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.chaos.audit import clean_orphans, reset_mesh, residual_faults
from harness.chaos.ledger import FaultLedger, Owner, check_no_foreign, describe_orphans
from harness.chaos.undo import UndoRegistry
from harness.errors import ConfigError, PlatformError
from harness.platforms.fake import FakePlatform
from harness.platforms.model import Pod

DECLARED_VS = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
               "metadata": {"name": "ai-agent-routing", "namespace": "parallel-ai"},
               "spec": {"hosts": ["ai-agent-service"], "http": [{"route": [{"destination": {"host": "ai-agent"}}]}]}}
FAULTY_VS = {**DECLARED_VS, "spec": {**DECLARED_VS["spec"], "http": [
    {"route": [{"destination": {"host": "ai-agent"}}], "fault": {"delay": {"fixedDelay": "0.3s"}}}]}}
CLEARED = {"latency_ms": 0, "error_rate": 0.0, "error_status": 500, "hang": False}


def pod(name: str, app: str) -> Pod:
    return Pod(name=name, service=f"{app}-service", app=app, version="v1", region="us-east", ready=True, restarts=0)


def faulty_mesh(ledger_dir: Path, up: bool = True) -> FakePlatform:
    """Two pods of the in-memory platform, left as a killed run leaves them: the routing VirtualService
    carries a delay, user's pod is held down, ai-agent's app is slowed by a knob."""
    platform = FakePlatform(pods=[pod("ai-agent-v1-us-east-0", "ai-agent"), pod("user-v1-us-east-0", "user")],
                            declared=[DECLARED_VS], ledger_dir=ledger_dir)
    platform.apply_documents([FAULTY_VS])
    platform.hold("user-v1-us-east-0", down=True)
    platform.set_knobs("ai-agent-v1-us-east-0", latency_ms=300)
    if not up:
        platform.down()
    platform.calls.clear()
    return platform


def record_in_a_process_that_exits(ledger_dir: Path) -> None:
    """Faults recorded by a process that is then gone (as after SIGKILL): what a killed run leaves."""
    code = f"""
from pathlib import Path
from harness.chaos.ledger import FaultLedger
ledger = FaultLedger(Path({str(ledger_dir)!r}))
ledger.record("hold", "restore region us-east", {{"pods": ["user-v1-us-east-0"], "deployments": {{"user-v1-us-east": 1}}}})
ledger.record("knobs", "clear delay knobs on ai-agent-service", {{"pods": ["ai-agent-v1-us-east-0"], "values": {CLEARED!r}}})
ledger.record("istio", "remove delay fault on ai-agent-service", {{"delete": [], "apply": [{DECLARED_VS!r}]}})
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_entry_is_on_disk_0600_before_register_returns_and_gone_once_undone(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "ledger")
    registry = UndoRegistry()
    seen_at_effect: list[int] = []
    token = registry.register("remove delay fault on ai-agent-service", lambda: seen_at_effect.append(
        len(ledger.entries())), ledger=ledger, kind="istio", undo={"delete": [], "apply": [DECLARED_VS]})
    (path,) = (tmp_path / "ledger").glob("*.json")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    entry = json.loads(path.read_text())
    assert entry["owner"]["pid"] == os.getpid() and entry["owner"]["start_ticks"] > 0
    assert entry["undo"]["apply"] == [DECLARED_VS] and entry["kind"] == "istio"
    registry.run(token)
    assert seen_at_effect == [1]  # the undo ran while its entry still existed...
    assert ledger.entries() == []  # ...and the entry went once it had run


def test_a_failed_undo_keeps_its_entry(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "ledger")
    registry = UndoRegistry()

    def broken() -> None:
        raise RuntimeError("API server unreachable")

    registry.register("clear delay knobs on user-service", broken, ledger=ledger, kind="knobs",
                      undo={"pods": ["user-v1-us-east-0"], "values": CLEARED})
    (undo,) = registry.run_all()
    assert "API server unreachable" in undo.error
    assert [e.description for e in ledger.entries()] == ["clear delay knobs on user-service"]
    platform = faulty_mesh(tmp_path / "ledger")
    assert residual_faults(platform, ledger=ledger)[-1] == "fault not undone: clear delay knobs on user-service"


def test_entries_of_a_live_process_are_not_orphans_and_of_a_gone_one_are(tmp_path: Path) -> None:
    ledger = FaultLedger(tmp_path / "ledger")
    ledger.record("kill", "wait for killed user pods to be ready", {"pods": []})
    assert ledger.orphans() == []
    record_in_a_process_that_exits(tmp_path / "ledger")
    assert [e.kind for e in ledger.orphans()] == ["hold", "knobs", "istio"]
    lines = describe_orphans(ledger)
    assert len(lines) == 3 and all("left by pid" in line and "-c" in line for line in lines)


def test_a_recycled_pid_is_not_taken_for_the_owner() -> None:
    """The same pid with another start time is another process (as a recycled pid would be)."""
    me = Owner.current()
    assert me.alive()
    assert not Owner(me.pid, me.start_ticks + 1, me.command).alive()
    assert not Owner(me.pid, None, me.command).alive()


def test_orphans_are_undone_newest_first_and_cleared(tmp_path: Path) -> None:
    record_in_a_process_that_exits(tmp_path / "ledger")
    platform = faulty_mesh(tmp_path / "ledger")
    cleaned = clean_orphans(platform)
    assert [c["outcome"] for c in cleaned] == ["undone"] * 3
    assert [(op, arg if op != "knobs" else arg[0]) for op, arg in platform.calls] == [
        ("apply", ["VirtualService/ai-agent-routing"]), ("knobs", "ai-agent-v1-us-east-0"),
        ("release", "user-v1-us-east-0")]
    assert FaultLedger(tmp_path / "ledger").entries() == []
    assert residual_faults(platform) == []


def test_with_the_mesh_down_orphans_are_dropped_not_undone(tmp_path: Path) -> None:
    record_in_a_process_that_exits(tmp_path / "ledger")
    platform = faulty_mesh(tmp_path / "ledger", up=False)
    cleaned = clean_orphans(platform)
    assert {c["outcome"] for c in cleaned} == {"discarded: the mesh is not running"} and platform.calls == []
    assert FaultLedger(tmp_path / "ledger").entries() == []


def test_an_orphan_whose_undo_fails_stops_the_run_and_stays(tmp_path: Path) -> None:
    record_in_a_process_that_exits(tmp_path / "ledger")
    platform = faulty_mesh(tmp_path / "ledger")

    def unreachable(*args: Any, **kwargs: Any) -> dict:
        raise PlatformError("the mesh does not answer")

    platform.apply_documents = unreachable  # type: ignore[method-assign]
    with pytest.raises(PlatformError, match="remove delay fault on ai-agent-service.*does not answer"):
        clean_orphans(platform)
    assert [e.kind for e in FaultLedger(tmp_path / "ledger").entries()] == ["istio"]


def test_reset_restores_the_declared_mesh_and_clears_orphans(tmp_path: Path) -> None:
    record_in_a_process_that_exits(tmp_path / "ledger")
    platform = faulty_mesh(tmp_path / "ledger")
    assert len(residual_faults(platform)) == 3  # the fault, the knob and the hold
    result = reset_mesh(platform)
    assert len(result["orphans_cleared"]) == 3 and result["live_entries"] == []
    assert residual_faults(platform) == [] and FaultLedger(tmp_path / "ledger").entries() == []


def test_the_audit_names_each_leftover(tmp_path: Path) -> None:
    platform = faulty_mesh(tmp_path / "ledger")
    assert residual_faults(platform) == [
        "VirtualService parallel-ai/ai-agent-routing differs from the declared one (it carries a fault)",
        "pod user-v1-us-east-0 is held down",
        "pod ai-agent-v1-us-east-0 has fault knobs set: latency_ms=300",
    ]


def test_a_run_refuses_to_start_while_another_live_process_has_faults(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    code = (f"from pathlib import Path; import sys; from harness.chaos.ledger import FaultLedger; "
            f"FaultLedger(Path({str(ledger_dir)!r})).record('kill', 'wait for killed user pods', {{'pods': []}}); "
            "print('ready', flush=True); sys.stdin.read()")
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "ready"
        with pytest.raises(PlatformError, match=f"another harness process.*pid {other.pid}"):
            check_no_foreign(FaultLedger(ledger_dir))
    finally:
        other.kill()
        other.wait(timeout=30)
    check_no_foreign(FaultLedger(ledger_dir))  # gone: an orphan now, which the run undoes instead


def test_any_command_names_the_faults_of_a_process_that_is_gone(tmp_path: Path) -> None:
    """Even one that never touches the mesh (`validate`): one stderr line per orphaned entry."""
    state = tmp_path / "state"
    record_in_a_process_that_exits(state / "ledger")
    env = {**os.environ, "HARNESS_STATE_DIR": str(state), "HARNESS_PLATFORM": "local"}
    root = Path(__file__).parents[2]
    result = subprocess.run([sys.executable, "-m", "harness.cli", "validate", "experiments/pod-kill.yaml"], cwd=root,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "a fault of a process that is gone" in line]
    assert len(lines) == 3 and any("restore region us-east" in line for line in lines), result.stderr
    assert all("`harness reset` undoes it" in line for line in lines)


def test_an_unreadable_entry_stops_run_and_up_until_reset_restores_the_mesh_and_removes_it(tmp_path: Path) -> None:
    """A torn or hand-edited entry may stand for a fault still in the mesh that no process can undo from
    it: skipping it would let the next run measure on that fault. It is named by every command, refused
    (exit 2, the file named) by the clean-up `run` and `up` do first, and removed only by `harness reset`,
    which restores the declared mesh whatever the entry said."""
    ledger_dir = tmp_path / "ledger"
    platform = faulty_mesh(ledger_dir)
    ledger_dir.mkdir(parents=True, exist_ok=True)
    broken = ledger_dir / "0001-torn.json"
    broken.write_text('{"id": "0001-torn", "kind": "istio", "descr')
    assert any(str(broken) in line for line in describe_orphans(FaultLedger(ledger_dir)))
    with pytest.raises(ConfigError) as caught:
        clean_orphans(platform)
    assert caught.value.exit_code == 2 and caught.value.file == str(broken) and "harness reset" in str(caught.value)
    assert broken.exists() and len(residual_faults(platform)) == 3  # nothing guessed, nothing half-done
    result = reset_mesh(platform)
    assert result["unreadable_removed"] == [str(broken)] and not broken.exists()
    assert residual_faults(platform) == [] and clean_orphans(platform) == []


def test_the_audit_keeps_apart_what_others_changed_from_what_the_run_left(tmp_path: Path) -> None:
    """A resource none of the run's changes named differs: somebody else changed it while the run
    measured (the run is inconclusive); one the run changed and did not restore is its leftover (an
    error). Knobs and holds are always the run's to answer for."""
    platform = faulty_mesh(tmp_path / "ledger")
    vs = "VirtualService parallel-ai/ai-agent-routing differs from the declared one (it carries a fault)"
    others: list[str] = []
    left = residual_faults(platform, touched=frozenset(), others=others)
    assert others == [vs] and vs not in left and len(left) == 2
    others = []
    left = residual_faults(platform, touched={("VirtualService", "parallel-ai", "ai-agent-routing")}, others=others)
    assert others == [] and vs in left
