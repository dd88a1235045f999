"""Process supervisor for the local platform (the ReplicaSet/kubelet's role); the local daemon drives it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

import httpx

from harness import procfs
from harness.errors import ConfigError, MissingDependencyError, PlatformError, ReadinessTimeout
from harness.procfs import PidRecord, pids_alive, reap_leftovers

__all__ = [
    "EventKind",
    "ProcessEvent",
    "ProcessSpec",
    "ProcessState",
    "ReadinessPolicy",
    "RestartPolicy",
    "Supervisor",
    "pids_alive",
    "reap_leftovers",
]

logger = logging.getLogger(__name__)

EventKind = Literal["started", "ready", "exited", "restarting", "stopped"]

_LOG_TAIL_BYTES = 4096
_LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class ProcessSpec:
    """One process to supervise; a restart reuses the spec, so the process keeps its name."""

    name: str  # unique within a supervisor: the pod or component name
    argv: Sequence[str]  # argv[0] without a slash is looked up on env's PATH (else /bin:/usr/bin)
    env: Mapping[str, str]  # the child's whole environment: nothing is inherited, so runs repeat
    log_path: Path  # stdout and stderr are appended here; the directory is created
    cwd: Path | None = None  # None: the supervisor's working directory
    ready_url: str | None = None  # ready once GET answers 200; None: ready once running
    ready_socket: Path | None = None  # fetch ready_url over this Unix socket (an app listening on one)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a process needs a name", field="name")
        if not self.argv:
            raise ConfigError(f"{self.name}: must name a program to run", field="argv")
        object.__setattr__(self, "argv", tuple(str(arg) for arg in self.argv))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "log_path", Path(self.log_path))
        if self.cwd is not None:
            object.__setattr__(self, "cwd", Path(self.cwd))
        if self.ready_url is not None:
            _check_ready_url(self.name, self.ready_url)


def _check_ready_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname != "127.0.0.1":
        raise ConfigError(
            f"{name}: {url!r} must be an http(s) URL on 127.0.0.1 (the local mesh binds nothing else)",
            field="ready_url",
        )


@dataclass(frozen=True)
class RestartPolicy:
    """Crash-loop backoff shaped like the kubelet's (10 s doubling to 5 min) but fast at first,
    because chaos experiments measure recovery time."""

    initial_backoff_s: float = 0.2  # wait before restarting after an unexpected exit
    max_backoff_s: float = 10.0  # cap; the kubelet's 5 min would stall an experiment
    factor: float = 2.0  # each further quick exit multiplies the wait by this
    reset_after_s: float = 10.0  # a process that ran this long starts over at initial_backoff_s

    def __post_init__(self) -> None:
        checks = {
            "initial_backoff_s": self.initial_backoff_s >= 0,
            "max_backoff_s": self.max_backoff_s >= self.initial_backoff_s,
            "factor": self.factor >= 1,
            "reset_after_s": self.reset_after_s > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"{getattr(self, name)!r} is out of range (want initial >= 0, max >= initial, "
                    "factor >= 1, reset_after_s > 0)",
                    field=name,
                )


@dataclass(frozen=True)
class ReadinessPolicy:
    """How ready_url is polled after each (re)start."""

    poll_interval_s: float = 0.02  # Envoy restarts in ~0.07 s; recovery time is what gets measured
    fast_window_s: float = 30.0  # poll at poll_interval_s this long after a start
    slow_interval_s: float = 1.0  # then slower: a process this late is likely stuck
    give_up_after_s: float = 3600.0  # then stop probing (and log it); the process stays unready
    request_timeout_s: float = 0.5  # per GET; a 127.0.0.1 port answers in milliseconds


@dataclass(frozen=True)
class ProcessEvent:
    """A change the daemon acts on, e.g. drop a pod's endpoint on "exited", add it on "ready"."""

    kind: EventKind
    name: str
    pid: int | None  # the process concerned; for "restarting" and "stopped", the last one
    returncode: int | None = None  # "exited": exit status, negative when killed by that signal
    delay_s: float | None = None  # "restarting": backoff before the new process is started


@dataclass(frozen=True)
class ProcessState:
    """A snapshot of one supervised process, as status() reports it."""

    name: str
    pid: int | None  # the running process, or the last one while down
    running: bool
    ready: bool
    restarts: int  # automatic restarts after unexpected exits and kills (restart_now not counted)
    last_exit_code: int | None  # negative when killed by that signal
    started_at: float | None  # wall clock of the latest start, seconds since the epoch
    paused: bool  # automatic restarts held by pause_restarts


@dataclass(eq=False)
class _Managed:
    """Mutable bookkeeping for one name; only the supervisor's event loop touches it."""

    spec: ProcessSpec
    next_backoff_s: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # serialises spawn and terminate
    proc: asyncio.subprocess.Process | None = None  # None while down
    pid: int | None = None
    start_ticks: int | None = None
    pidfd: int | None = None
    started_at: float | None = None
    started_mono: float = 0.0
    ready: bool = False
    restarts: int = 0
    last_exit_code: int | None = None
    paused: bool = False
    held: bool = False  # down while paused: a restart is owed on resume_restarts
    stopped: bool = False
    terminating: bool = False  # the supervisor is ending the process: its exit is expected
    exit_task: asyncio.Task[None] | None = None
    ready_task: asyncio.Task[None] | None = None
    restart_task: asyncio.Task[None] | None = None  # set only while sleeping the backoff


class Supervisor:
    """Starts processes, restarts them per RestartPolicy, and records their PIDs in state_file.

    Call it only from the event loop it runs on. With kill_children_on_exit (the default) every
    child gets PR_SET_PDEATHSIG=SIGKILL, so if this process dies abruptly its children die too;
    the PID registry and reap_leftovers cover the case where that safety net is off or fails.
    """

    def __init__(
        self,
        state_file: Path,
        *,
        policy: RestartPolicy = RestartPolicy(),
        on_change: Callable[[ProcessEvent], None] | None = None,
        kill_children_on_exit: bool = True,
        readiness: ReadinessPolicy = ReadinessPolicy(),
    ) -> None:
        self._state_file = Path(state_file)
        self._policy = policy
        self._readiness = readiness
        self._on_change = on_change
        self._kill_children_on_exit = kill_children_on_exit
        self._procs: dict[str, _Managed] = {}
        self._changed = asyncio.Event()  # set on every ready/exit, for wait_ready

    async def start(self, spec: ProcessSpec) -> int:
        """Start and supervise a new process; returns its pid (readiness comes later)."""
        old = self._procs.get(spec.name)
        if old is not None and not old.stopped:
            raise PlatformError(f"{spec.name} is already supervised (pid {old.pid}); stop it first")
        managed = _Managed(spec, next_backoff_s=self._policy.initial_backoff_s)
        self._procs[spec.name] = managed
        try:
            async with managed.lock:
                return await self._spawn(managed)
        except BaseException:
            if managed.proc is None:
                self._forget(spec.name, old)
            raise

    async def wait_ready(self, names: Iterable[str], timeout_s: float) -> None:
        """Return once every named process is ready, else raise ReadinessTimeout with log tails."""
        managed = [self._get(name) for name in names]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not all(m.ready for m in managed):  # bounded by the deadline
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ReadinessTimeout(_not_ready_message([m for m in managed if not m.ready], timeout_s))
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to the running process and return its pid; restarts then follow the policy."""
        managed = self._get(name)
        if managed.proc is None:
            raise PlatformError(f"{name} is not running")
        self._signal(managed, sig)
        return managed.proc.pid

    async def restart_now(self, name: str, *, grace_s: float = 3.0) -> int:
        """Replace the process at once, ignoring backoff and pause; returns the new pid.

        The running process gets SIGTERM, then SIGKILL after grace_s. An intentional restart:
        not counted in `restarts`. Also brings back a stopped process. If the new process cannot
        be started the error is raised and the process stays down.
        """
        managed = self._get(name)
        self._cancel_backoff(managed)
        managed.held = managed.stopped = False
        async with managed.lock:
            if managed.proc is not None:
                await self._terminate(managed, grace_s)
            self._emit("restarting", managed, managed.pid, managed.last_exit_code, 0.0)
            return await self._spawn(managed)

    async def stop(self, name: str, *, grace_s: float = 3.0) -> None:
        """SIGTERM, SIGKILL after grace_s, and wait for the exit; a stopped process stays down."""
        managed = self._get(name)
        if managed.stopped and managed.proc is None:
            return
        managed.stopped, managed.held = True, False
        self._cancel_backoff(managed)
        async with managed.lock:
            if managed.proc is not None:
                await self._terminate(managed, grace_s)
        self._emit("stopped", managed, managed.pid, managed.last_exit_code)

    async def stop_all(self, grace_s: float = 3.0) -> None:
        """Stop every process in parallel, so the whole takes one grace period, not one each."""
        results = await asyncio.gather(
            *(self.stop(name, grace_s=grace_s) for name in list(self._procs)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise PlatformError("; ".join(str(e) for e in errors)) from errors[0]

    def status(self) -> dict[str, ProcessState]:
        """A snapshot of every process this supervisor knows, stopped ones included."""
        return {name: _state_of(m) for name, m in self._procs.items()}

    def pause_restarts(self, name: str) -> None:
        """Hold `name` down after its next exit (or now, if it is waiting to restart)."""
        managed = self._get(name)
        managed.paused = True
        if self._cancel_backoff(managed):
            managed.held = True

    def resume_restarts(self, name: str) -> None:
        """Allow automatic restarts again; a process held down is restarted at once."""
        managed = self._get(name)
        managed.paused = False
        if managed.held and not managed.stopped:
            managed.held = False
            self._schedule_restart(managed, 0.0)

    # -- process lifecycle ---------------------------------------------------------------------

    async def _spawn(self, managed: _Managed) -> int:
        """Fork and exec the spec, then register the child; the caller holds managed.lock."""
        spec = managed.spec
        if spec.cwd is not None and not spec.cwd.is_dir():
            raise PlatformError(f"{spec.name}: working directory {spec.cwd} does not exist")
        try:
            proc = await self._exec(spec)
        except FileNotFoundError as exc:
            raise MissingDependencyError(
                f"{spec.name}: cannot run {spec.argv[0]!r}: not found; install it or fix the command"
            ) from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise PlatformError(f"{spec.name}: cannot start {spec.argv[0]!r}: {exc}") from exc
        self._register(managed, proc)  # no await from exec to here: a cancel cannot orphan the child
        return proc.pid

    async def _exec(self, spec: ProcessSpec) -> asyncio.subprocess.Process:
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        preexec = procfs.parent_death_signal(signal.SIGKILL) if self._kill_children_on_exit else None
        # 0600: logs carry request paths and headers; only the user running the mesh reads them
        with open(os.open(spec.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
            log.write(f"--- supervisor: starting {spec.name} at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            return await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(spec.env),
                cwd=spec.cwd,
                start_new_session=True,  # signals to the supervisor's group don't reach pods
                preexec_fn=preexec,
            )

    def _register(self, managed: _Managed, proc: asyncio.subprocess.Process) -> None:
        managed.proc, managed.pid = proc, proc.pid
        managed.start_ticks = procfs.start_time_ticks(proc.pid)
        managed.pidfd = procfs.open_pidfd(proc.pid)
        managed.started_at, managed.started_mono = time.time(), time.monotonic()
        managed.ready = False
        self._write_state()
        self._emit("started", managed, proc.pid)
        name = managed.spec.name
        managed.exit_task = asyncio.create_task(self._watch_exit(managed, proc), name=f"exit:{name}")
        managed.ready_task = asyncio.create_task(self._watch_ready(managed), name=f"ready:{name}")

    async def _watch_exit(self, managed: _Managed, proc: asyncio.subprocess.Process) -> None:
        returncode = await proc.wait()
        expected = managed.terminating or managed.stopped
        self._mark_down(managed, returncode)
        self._emit("exited", managed, proc.pid, returncode)
        if not expected:
            self._schedule_restart(managed, self._next_backoff(managed))

    def _mark_down(self, managed: _Managed, returncode: int) -> None:
        managed.proc, managed.ready, managed.terminating = None, False, False
        managed.last_exit_code = returncode
        procfs.close_fd(managed.pidfd)
        managed.pidfd = None
        if managed.ready_task is not None:
            managed.ready_task.cancel()
            managed.ready_task = None
        self._write_state()
        self._changed.set()

    def _next_backoff(self, managed: _Managed) -> float:
        """Kubelet-style: each quick exit multiplies the wait; a long enough run resets it."""
        policy = self._policy
        if time.monotonic() - managed.started_mono >= policy.reset_after_s:
            managed.next_backoff_s = policy.initial_backoff_s
        delay_s = managed.next_backoff_s
        managed.next_backoff_s = min(delay_s * policy.factor, policy.max_backoff_s)
        return delay_s

    def _schedule_restart(self, managed: _Managed, delay_s: float) -> None:
        if managed.paused:
            managed.held = True
            return
        # The backoff counts from now, not from when the task first runs: listeners of the events
        # (the controller's endpoint push) may run in between.
        restart_at = asyncio.get_running_loop().time() + delay_s
        managed.restart_task = asyncio.create_task(
            self._restart_after(managed, restart_at), name=f"restart:{managed.spec.name}"
        )
        self._emit("restarting", managed, managed.pid, managed.last_exit_code, delay_s)

    async def _restart_after(self, managed: _Managed, restart_at: float) -> None:
        await asyncio.sleep(max(0.0, restart_at - asyncio.get_running_loop().time()))
        managed.restart_task = None  # past the backoff: a cancel now could only kill a half-born child
        async with managed.lock:
            if managed.stopped or managed.proc is not None:
                return
            managed.restarts += 1
            try:
                await self._spawn(managed)
            except PlatformError as exc:
                logger.error("%s: restart failed, retrying with backoff: %s", managed.spec.name, exc)
                managed.started_mono = time.monotonic()  # a failed start is a run of zero seconds
                self._schedule_restart(managed, self._next_backoff(managed))

    def _cancel_backoff(self, managed: _Managed) -> bool:
        """Cancel a restart that is still sleeping its backoff; True if there was one."""
        task, managed.restart_task = managed.restart_task, None
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def _terminate(self, managed: _Managed, grace_s: float) -> None:
        """SIGTERM, SIGKILL after grace_s; returns once the exit has been handled."""
        exit_task, pid = managed.exit_task, managed.pid
        if exit_task is None:  # never started
            return
        managed.terminating = True
        self._signal(managed, signal.SIGTERM)
        if await _finished(exit_task, grace_s):
            return
        name = managed.spec.name
        logger.warning("%s (pid %s) outlived SIGTERM by %.1f s; sending SIGKILL", name, pid, grace_s)
        self._signal(managed, signal.SIGKILL)
        if not await _finished(exit_task, procfs.KILL_WAIT_S):
            raise PlatformError(f"{name} (pid {pid}) still runs {procfs.KILL_WAIT_S} s after SIGKILL")

    def _signal(self, managed: _Managed, sig: int) -> None:
        """Signal by pidfd when there is one, so a recycled pid can never be hit."""
        if managed.pidfd is not None:
            procfs.send_via_pidfd(managed.pidfd, sig)
        elif managed.proc is not None and managed.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(managed.proc.pid, sig)

    # -- readiness -----------------------------------------------------------------------------

    async def _watch_ready(self, managed: _Managed) -> None:
        url = managed.spec.ready_url
        if url is not None and not await self._probe_until_ready(managed.spec.name, url, managed.spec.ready_socket):
            return
        managed.ready = True
        self._changed.set()
        self._emit("ready", managed, managed.pid)

    async def _probe_until_ready(self, name: str, url: str, uds: Path | None = None) -> bool:
        """Poll fast for fast_window_s, then slowly, until 200 or give_up_after_s."""
        policy = self._readiness
        loop = asyncio.get_running_loop()
        started = loop.time()
        # verify=False: readiness needs only a status code from 127.0.0.1, and a verifying TLS
        # context costs ~50 ms to build, which would show in every measured recovery time.
        # trust_env=False: a proxy from the environment must never see a 127.0.0.1 probe.
        transport = httpx.AsyncHTTPTransport(uds=str(uds)) if uds is not None else None
        client = httpx.AsyncClient(timeout=policy.request_timeout_s, verify=False, trust_env=False,
                                   transport=transport)
        async with client:
            while (elapsed := loop.time() - started) < policy.give_up_after_s:
                if await _answers_200(client, url):
                    return True
                fast = elapsed < policy.fast_window_s
                await asyncio.sleep(policy.poll_interval_s if fast else policy.slow_interval_s)
        logger.warning("%s: %s gave no 200 in %.0f s; no longer probing", name, url, policy.give_up_after_s)
        return False

    # -- bookkeeping ---------------------------------------------------------------------------

    def _get(self, name: str) -> _Managed:
        try:
            return self._procs[name]
        except KeyError:
            known = ", ".join(sorted(self._procs)) or "none"
            raise PlatformError(f"no process named {name!r}; known: {known}") from None

    def _forget(self, name: str, previous: _Managed | None) -> None:
        if previous is None:
            self._procs.pop(name, None)
        else:
            self._procs[name] = previous

    def _emit(
        self,
        kind: EventKind,
        managed: _Managed,
        pid: int | None,
        returncode: int | None = None,
        delay_s: float | None = None,
    ) -> None:
        if self._on_change is None:
            return
        event = ProcessEvent(kind, managed.spec.name, pid, returncode, delay_s)
        try:
            self._on_change(event)
        except Exception:  # a faulty listener must not stop supervision
            logger.exception("on_change failed for %s", event)

    def _write_state(self) -> None:
        records = [
            PidRecord(name, m.pid, m.start_ticks, m.spec.argv)
            for name, m in self._procs.items()
            if m.proc is not None and m.pid is not None
        ]
        try:
            procfs.write_registry(self._state_file, records)
        except OSError as exc:  # losing the registry must not stop supervision; reaping gets harder
            logger.error("cannot write the PID registry %s: %s", self._state_file, exc)


def _state_of(m: _Managed) -> ProcessState:
    return ProcessState(
        name=m.spec.name,
        pid=m.pid,
        running=m.proc is not None,
        ready=m.ready,
        restarts=m.restarts,
        last_exit_code=m.last_exit_code,
        started_at=m.started_at,
        paused=m.paused,
    )


async def _finished(task: asyncio.Task[None], timeout_s: float) -> bool:
    """Wait up to timeout_s for task without cancelling it on timeout."""
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    return bool(done)


async def _answers_200(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


def _not_ready_message(pending: list[_Managed], timeout_s: float) -> str:
    lines = [f"not ready after {timeout_s:g} s: {', '.join(m.spec.name for m in pending)}"]
    for m in pending:
        state = f"running as pid {m.pid}" if m.proc else f"not running (last exit {m.last_exit_code})"
        probe = f", probing {m.spec.ready_url}" if m.spec.ready_url else ""
        lines.append(f"--- {m.spec.name}: {state}{probe}; last lines of {m.spec.log_path}:")
        lines.append(_log_tail(m.spec.log_path))
    return "\n".join(lines)


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            data = log.read()
    except OSError as exc:
        return f"    (log unreadable: {exc.strerror})"
    lines = data.decode("utf-8", "replace").splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(f"    {line}" for line in lines) or "    (log is empty)"
