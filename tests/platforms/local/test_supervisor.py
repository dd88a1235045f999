"""Specifications of the local process supervisor, checked against real child processes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from harness import procfs
from harness.errors import ConfigError, MissingDependencyError, ReadinessTimeout
from harness.net import free_port
from harness.platforms.local.supervisor import (
    ProcessEvent,
    ProcessSpec,
    RestartPolicy,
    Supervisor,
    pids_alive,
    reap_leftovers,
)

REPO = Path(__file__).resolve().parents[3]
PY = sys.executable
FAST = RestartPolicy(initial_backoff_s=0.05, max_backoff_s=1.0, factor=2.0, reset_after_s=10.0)

# Every child script exits on its own within two minutes, so a failed test cannot leak it for long.
SAFETY_EXIT = "import os, threading; threading.Timer(120, os._exit, (0,)).start()\n"
HEALTH_SERVER = SAFETY_EXIT + textwrap.dedent(
    """
    import http.server, signal, sys
    if "--ignore-sigterm" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    print("listening", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
    """
)
SLEEPER = "import time; time.sleep(60)"
STUBBORN_SLEEPER = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('armed', flush=True); time.sleep(60)"
)
# A supervisor in its own python process, to be SIGKILLed by the test: a crash it cannot clean up.
CRASHING_SUPERVISOR = textwrap.dedent(
    f"""
    import asyncio, pathlib, sys
    from harness.platforms.local.supervisor import ProcessSpec, Supervisor
    async def main():
        state_file, log = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
        supervisor = Supervisor(state_file, kill_children_on_exit=sys.argv[3] == "1")
        argv = [sys.executable, "-c", {STUBBORN_SLEEPER!r}]
        await supervisor.start(ProcessSpec(name="orphan", argv=argv, env={{}}, log_path=log))
        print("started", flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
    """
)


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # bounded by the timeout
            await asyncio.sleep(0.02)


class Rig:
    """A supervisor plus the events it emitted, each with the monotonic time it arrived."""

    def __init__(self, directory: Path, **kwargs: object) -> None:
        self.dir = directory
        self.state_file = directory / "state" / "supervisor.json"
        self.events: list[ProcessEvent] = []
        self.times: list[float] = []
        kwargs.setdefault("policy", FAST)
        self.sup = Supervisor(self.state_file, on_change=self._record, **kwargs)  # type: ignore[arg-type]

    def _record(self, event: ProcessEvent) -> None:
        self.events.append(event)
        self.times.append(time.monotonic())

    def kinds(self, name: str) -> list[str]:
        return [e.kind for e in self.events if e.name == name]

    def of_kind(self, name: str, kind: str) -> list[ProcessEvent]:
        return [e for e in self.events if e.name == name and e.kind == kind]

    def health(self, name: str, *flags: str) -> ProcessSpec:
        port = free_port()
        return ProcessSpec(
            name=name,
            argv=[PY, "-c", HEALTH_SERVER, str(port), *flags],
            env={},
            log_path=self.dir / f"{name}.log",
            ready_url=f"http://127.0.0.1:{port}/health",
        )

    def script(self, name: str, code: str, ready_url: str | None = None) -> ProcessSpec:
        return ProcessSpec(
            name=name, argv=[PY, "-c", code], env={}, log_path=self.dir / f"{name}.log", ready_url=ready_url
        )


MakeRig = Callable[..., Rig]


@pytest_asyncio.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(**kwargs: object) -> Rig:
        rigs.append(Rig(tmp_path / f"rig{len(rigs)}", **kwargs))
        return rigs[-1]

    yield make
    for rig in rigs:
        await rig.sup.stop_all(grace_s=1.0)


@pytest.mark.asyncio
async def test_start_reports_ready_and_records_pid_and_start_time(make_rig: MakeRig) -> None:
    rig = make_rig()
    spec = rig.health("web")
    pid = await rig.sup.start(spec)
    await rig.sup.wait_ready(["web"], timeout_s=10)

    state = rig.sup.status()["web"]
    assert (state.pid, state.running, state.ready, state.restarts) == (pid, True, True, 0)
    assert rig.kinds("web") == ["started", "ready"]
    record = json.loads(rig.state_file.read_text())["processes"]["web"]
    assert record == {"pid": pid, "start_time_ticks": procfs.start_time_ticks(pid), "argv": list(spec.argv)}
    assert pids_alive(rig.state_file) == [pid]


@pytest.mark.asyncio
async def test_a_process_without_ready_url_is_ready_once_running(make_rig: MakeRig) -> None:
    rig = make_rig()
    await rig.sup.start(rig.script("sleeper", SLEEPER))
    await rig.sup.wait_ready(["sleeper"], timeout_s=5)
    assert rig.kinds("sleeper") == ["started", "ready"]


@pytest.mark.asyncio
async def test_sigkill_restarts_with_a_new_pid_and_one_restart_in_event_order(make_rig: MakeRig) -> None:
    rig = make_rig()
    await rig.sup.start(rig.health("web"))
    await rig.sup.wait_ready(["web"], timeout_s=10)
    old_ticks = procfs.start_time_ticks(rig.sup.status()["web"].pid or 0)

    old = await rig.sup.kill("web")
    await until(lambda: rig.kinds("web").count("ready") == 2)

    state = rig.sup.status()["web"]
    assert state.pid != old and state.running and state.ready
    assert (state.restarts, state.last_exit_code) == (1, -signal.SIGKILL)
    assert rig.kinds("web") == ["started", "ready", "exited", "restarting", "started", "ready"]
    exited, restarting = rig.of_kind("web", "exited")[0], rig.of_kind("web", "restarting")[0]
    assert (exited.pid, exited.returncode) == (old, -signal.SIGKILL)
    assert restarting.delay_s == FAST.initial_backoff_s
    assert not procfs.is_running(old, old_ticks or 0)
    assert pids_alive(rig.state_file) == [state.pid]


@pytest.mark.asyncio
async def test_a_crash_loop_backs_off_with_growing_delays(make_rig: MakeRig) -> None:
    policy = RestartPolicy(initial_backoff_s=0.02, max_backoff_s=0.16, factor=2.0, reset_after_s=10.0)
    rig = make_rig(policy=policy)
    await rig.sup.start(rig.script("crasher", "import sys; print('crashing'); sys.exit(3)"))
    await until(lambda: rig.kinds("crasher").count("started") >= 6)
    await rig.sup.stop("crasher")

    delays = [e.delay_s for e in rig.of_kind("crasher", "restarting")][:5]
    assert delays == pytest.approx([0.02, 0.04, 0.08, 0.16, 0.16])  # doubles, then capped
    gaps = _exit_to_start_gaps(rig, "crasher")[:5]
    assert all(gap >= delay for gap, delay in zip(gaps, delays))  # each restart really waited
    assert [e.returncode for e in rig.of_kind("crasher", "exited")][:5] == [3] * 5
    assert rig.sup.status()["crasher"].restarts >= 5


def _exit_to_start_gaps(rig: Rig, name: str) -> list[float]:
    timed = [(t, e.kind) for t, e in zip(rig.times, rig.events) if e.name == name]
    exits = [t for t, kind in timed if kind == "exited"]
    starts = [t for t, kind in timed if kind == "started"][1:]
    return [start - exit_ for exit_, start in zip(exits, starts)]


@pytest.mark.asyncio
async def test_backoff_resets_after_a_process_ran_reset_after_s(make_rig: MakeRig) -> None:
    policy = RestartPolicy(initial_backoff_s=0.02, max_backoff_s=1.0, factor=2.0, reset_after_s=0.2)
    rig = make_rig(policy=policy)
    await rig.sup.start(rig.script("slow-crasher", "import sys, time; time.sleep(0.3); sys.exit(1)"))
    await until(lambda: rig.kinds("slow-crasher").count("restarting") >= 3)
    await rig.sup.stop("slow-crasher")

    delays = [e.delay_s for e in rig.of_kind("slow-crasher", "restarting")][:3]
    assert delays == pytest.approx([0.02, 0.02, 0.02])


@pytest.mark.asyncio
async def test_stop_all_leaves_no_pid_alive_and_restarts_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    names = ["web-a", "web-b", "sleeper"]
    for spec in (rig.health("web-a"), rig.health("web-b"), rig.script("sleeper", SLEEPER)):
        await rig.sup.start(spec)
    await rig.sup.wait_ready(names, timeout_s=10)
    pids = {name: rig.sup.status()[name].pid or 0 for name in names}
    ticks = {name: procfs.start_time_ticks(pid) or 0 for name, pid in pids.items()}

    await rig.sup.stop_all(grace_s=2.0)
    await asyncio.sleep(FAST.initial_backoff_s * 4)  # several backoffs: time enough for a wrong restart

    for name in names:
        assert not procfs.is_running(pids[name], ticks[name])
        assert not Path(f"/proc/{pids[name]}").exists()
        assert rig.kinds(name) == ["started", "ready", "exited", "stopped"]
        assert rig.sup.status()[name].last_exit_code == -signal.SIGTERM
    assert pids_alive(rig.state_file) == []
    assert json.loads(rig.state_file.read_text())["processes"] == {}


@pytest.mark.asyncio
async def test_a_process_ignoring_sigterm_is_sigkilled_after_grace(make_rig: MakeRig) -> None:
    rig = make_rig()
    await rig.sup.start(rig.health("stubborn", "--ignore-sigterm"))
    await rig.sup.wait_ready(["stubborn"], timeout_s=10)  # serving: the SIGTERM handler is in place

    await rig.sup.stop("stubborn", grace_s=0.3)

    state = rig.sup.status()["stubborn"]
    assert (state.running, state.last_exit_code) == (False, -signal.SIGKILL)
    assert rig.kinds("stubborn") == ["started", "ready", "exited", "stopped"]


@pytest.mark.asyncio
async def test_pause_restarts_holds_a_killed_process_down_until_resume(make_rig: MakeRig) -> None:
    rig = make_rig()
    await rig.sup.start(rig.health("region-pod"))
    await rig.sup.wait_ready(["region-pod"], timeout_s=10)

    rig.sup.pause_restarts("region-pod")
    old = await rig.sup.kill("region-pod")
    await until(lambda: "exited" in rig.kinds("region-pod"))
    await asyncio.sleep(FAST.initial_backoff_s * 4)
    held = rig.sup.status()["region-pod"]
    assert (held.running, held.paused, held.restarts) == (False, True, 0)
    assert rig.kinds("region-pod") == ["started", "ready", "exited"]

    rig.sup.resume_restarts("region-pod")
    await rig.sup.wait_ready(["region-pod"], timeout_s=10)
    state = rig.sup.status()["region-pod"]
    assert state.pid != old and (state.restarts, state.paused) == (1, False)
    assert rig.kinds("region-pod") == ["started", "ready", "exited", "restarting", "started", "ready"]


@pytest.mark.asyncio
async def test_pause_during_backoff_cancels_the_pending_restart(make_rig: MakeRig) -> None:
    rig = make_rig(policy=RestartPolicy(initial_backoff_s=0.3))
    await rig.sup.start(rig.script("sleeper", SLEEPER))
    await rig.sup.kill("sleeper")
    await until(lambda: "restarting" in rig.kinds("sleeper"))

    rig.sup.pause_restarts("sleeper")
    await asyncio.sleep(0.5)
    assert rig.kinds("sleeper").count("started") == 1 and not rig.sup.status()["sleeper"].running

    rig.sup.resume_restarts("sleeper")
    await rig.sup.wait_ready(["sleeper"], timeout_s=5)
    assert rig.sup.status()["sleeper"].restarts == 1


@pytest.mark.asyncio
async def test_restart_now_replaces_the_process_without_counting_a_restart(make_rig: MakeRig) -> None:
    rig = make_rig()
    old = await rig.sup.start(rig.health("web"))
    await rig.sup.wait_ready(["web"], timeout_s=10)

    new = await rig.sup.restart_now("web", grace_s=1.0)
    await rig.sup.wait_ready(["web"], timeout_s=10)

    state = rig.sup.status()["web"]
    assert new != old and state.pid == new
    assert (state.restarts, state.last_exit_code) == (0, -signal.SIGTERM)
    assert rig.kinds("web") == ["started", "ready", "exited", "restarting", "started", "ready"]


@pytest.mark.asyncio
async def test_wait_ready_timeout_names_the_process_and_includes_its_log_tail(make_rig: MakeRig) -> None:
    rig = make_rig()
    url = f"http://127.0.0.1:{free_port()}/health"  # nothing listens there
    code = "import time; print('boom: config file missing', flush=True); time.sleep(60)"
    await rig.sup.start(rig.script("broken", code, ready_url=url))
    await rig.sup.start(rig.script("fine", SLEEPER))

    with pytest.raises(ReadinessTimeout) as caught:
        await rig.sup.wait_ready(["fine", "broken"], timeout_s=1.0)

    message = str(caught.value)
    assert message.startswith("not ready after 1 s: broken\n")
    assert url in message and "boom: config file missing" in message


@pytest.mark.asyncio
async def test_starting_a_missing_program_is_a_missing_dependency(make_rig: MakeRig) -> None:
    rig = make_rig()
    spec = ProcessSpec(name="ghost", argv=["/nonexistent/envoy"], env={}, log_path=rig.dir / "ghost.log")
    with pytest.raises(MissingDependencyError, match="ghost: cannot run '/nonexistent/envoy'"):
        await rig.sup.start(spec)
    assert "ghost" not in rig.sup.status()


def test_a_ready_url_off_loopback_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ready_url: web: 'http://10.0.0.1:80/' must be an http"):
        ProcessSpec(name="web", argv=["x"], env={}, log_path=tmp_path / "x.log",
                    ready_url="http://10.0.0.1:80/")


async def crash_a_supervisor(directory: Path, *, kill_children_on_exit: bool) -> tuple[int, int]:
    """Run a supervisor in a child python that starts one process, then SIGKILL that child.

    Returns the orphan's pid and start time, read from the state file the dead supervisor left.
    """
    state_file = directory / "state.json"
    child = await asyncio.create_subprocess_exec(
        PY, "-c", CRASHING_SUPERVISOR, str(state_file), str(directory / "orphan.log"),
        "1" if kill_children_on_exit else "0",
        stdout=subprocess.PIPE, env={"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 15) == b"started\n"
        await until(lambda: "armed" in (directory / "orphan.log").read_text())
    finally:
        if child.returncode is None:
            child.kill()  # by its pid: the supervisor dies with no chance to clean up
        await child.wait()
    record = json.loads(state_file.read_text())["processes"]["orphan"]
    return record["pid"], record["start_time_ticks"]


@pytest.mark.asyncio
async def test_pdeathsig_kills_the_children_of_a_supervisor_that_died_abruptly(tmp_path: Path) -> None:
    try:
        pid, ticks = await crash_a_supervisor(tmp_path, kill_children_on_exit=True)
        await until(lambda: not procfs.is_running(pid, ticks), timeout_s=5)
        assert pids_alive(tmp_path / "state.json") == []
    finally:
        reap_leftovers(tmp_path / "state.json", grace_s=0.5)


@pytest.mark.asyncio
async def test_reap_leftovers_stops_what_a_crashed_supervisor_left_running(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    try:
        pid, ticks = await crash_a_supervisor(tmp_path, kill_children_on_exit=False)
        await asyncio.sleep(0.2)
        assert pids_alive(state_file) == [pid]  # it outlived its supervisor

        assert reap_leftovers(state_file, grace_s=0.3) == [pid]  # it ignores SIGTERM: SIGKILLed

        assert not procfs.is_running(pid, ticks)
        assert not state_file.exists()
    finally:
        reap_leftovers(state_file, grace_s=0.5)


def test_reap_leftovers_skips_a_pid_whose_start_time_does_not_match(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    proc = subprocess.Popen([PY, "-c", SLEEPER])
    try:
        ticks = procfs.start_time_ticks(proc.pid) or 0
        entry = {"pid": proc.pid, "start_time_ticks": ticks + 1, "argv": ["recycled"]}
        state_file.write_text(json.dumps({"supervisor_pid": 1, "processes": {"old": entry}}))

        assert pids_alive(state_file) == []
        assert reap_leftovers(state_file, grace_s=0.3) == []

        assert procfs.is_running(proc.pid, ticks)
        assert not state_file.exists()
    finally:
        proc.kill()
        proc.wait(timeout=5)
