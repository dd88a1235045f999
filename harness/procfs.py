"""Linux processes from /proc: identity (start times), CPU time, pidfds, parent-death signal, the PID registry."""

# Shared below the layers that need it: the local platform's supervisor, the fault ledger (is a
# fault's owner still alive?) and the load runner (Locust dies with the harness).

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import PlatformError
from harness.files import atomic_write

logger = logging.getLogger(__name__)

KILL_WAIT_S = 5.0  # after SIGKILL only a process stuck in the kernel (D state) takes longer
_REAP_POLL_S = 0.02  # reap_leftovers' interval between checks of /proc
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_GONE_STATES = frozenset("ZX")  # zombie or dead: exited, whatever the parent does about it


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat; comm (field 2) may hold spaces and parens, so split after it."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:  # gone (ENOENT, ESRCH) or not ours to read
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: start time in clock ticks since boot; None if no such process.

    A pid plus its start time names one process for good: a recycled pid gets a new start time.
    """
    fields = _stat_fields(pid)
    return int(fields[22 - 3]) if fields else None


def is_gone(pid: int) -> bool:
    """True when `pid` has exited: no such process, or a zombie waiting for its parent."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] in _GONE_STATES


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far (proc(5): stat fields 14 and 15); None when it is gone."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[14 - 3]) + int(fields[15 - 3])) / TICKS_PER_S


def machine_jiffies() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat's first line; busy excludes idle and iowait."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return float(total - idle), float(total)


def is_running(pid: int, start_ticks: int) -> bool:
    """True if `pid` is the very process that started at `start_ticks` and has not exited."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in _GONE_STATES:
        return False
    return int(fields[22 - 3]) == start_ticks


def open_pidfd(pid: int) -> int | None:
    """A pidfd pins one process: signals sent through it can never reach a recycled pid.

    None if the process is already gone or the kernel lacks pidfds (before Linux 5.3).
    """
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def send_via_pidfd(pidfd: int, sig: int) -> bool:
    """Send `sig` through a pidfd; False if the process has already been reaped."""
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        return False
    return True


def close_fd(fd: int | None) -> None:
    """Close a pidfd if there is one."""
    if fd is not None:
        os.close(fd)


def parent_death_signal(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A preexec_fn that makes the kernel send `sig` to the child when its parent dies.

    Safety net for a supervisor that dies abruptly (SIGKILL, OOM) and so cannot stop its children.
    Linux ties this to the parent *thread* that forked the child: run the supervisor's event loop
    in a thread that lives as long as the supervisor (normally the main thread). A setuid exec
    clears it, and a program may override it (Envoy with hot restart enabled does).
    """
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the child only calls into it
    parent_pid = os.getpid()

    def preexec() -> None:
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(126)

    return preexec


# -- PID registry: what the supervisor started, so `harness down` can stop it after a crash ------


@dataclass(frozen=True)
class PidRecord:
    """One registry entry: a pid plus its /proc start time names exactly one process."""

    name: str
    pid: int
    start_time_ticks: int | None  # /proc/<pid>/stat field 22, clock ticks since boot
    argv: tuple[str, ...]


def write_registry(path: Path, records: list[PidRecord]) -> None:
    """Rewrite the registry atomically (rename), so a crash or a reader never sees half a file.

    No fsync: the file only has to survive the supervisor's death, not the machine's, whose
    processes would be gone anyway.
    """
    payload = {
        "supervisor_pid": os.getpid(),
        "processes": {
            r.name: {"pid": r.pid, "start_time_ticks": r.start_time_ticks, "argv": list(r.argv)}
            for r in records
        },
    }
    atomic_write(path, json.dumps(payload, indent=2) + "\n", mode=0o644, durable=False)


def read_registry(path: Path) -> list[PidRecord]:
    """The records in a registry file; none if it does not exist."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PlatformError(f"{path}: cannot read the supervisor's PID registry: {exc}") from exc
    try:
        return [_record_from(name, entry) for name, entry in data["processes"].items()]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PlatformError(f"{path}: not a supervisor PID registry ({exc!r})") from exc


def _record_from(name: str, entry: dict[str, object]) -> PidRecord:
    ticks = entry.get("start_time_ticks")
    return PidRecord(
        name=name,
        pid=int(entry["pid"]),  # type: ignore[call-overload]
        start_time_ticks=None if ticks is None else int(ticks),  # type: ignore[call-overload]
        argv=tuple(str(arg) for arg in entry.get("argv", ())),  # type: ignore[attr-defined]
    )


def pids_alive(state_file: Path) -> list[int]:
    """Recorded pids that are still the very processes the supervisor started."""
    return [
        r.pid
        for r in read_registry(Path(state_file))
        if r.start_time_ticks is not None and is_running(r.pid, r.start_time_ticks)
    ]


def reap_leftovers(state_file: Path, grace_s: float = 3.0) -> list[int]:
    """Stop what a crashed supervisor left running (for `harness down`), then delete state_file.

    Only a recorded pid that is alive with its recorded start time is signalled, and through a
    pidfd taken before that check, so a recycled pid is never hit. SIGTERM, then SIGKILL after
    grace_s. Returns the pids it stopped.
    """
    state_file = Path(state_file)
    targets = [pin for pin in map(_pin, read_registry(state_file)) if pin is not None]
    try:
        _signal_all(targets, signal.SIGTERM)
        survivors = _wait_gone(targets, grace_s)
        _signal_all(survivors, signal.SIGKILL)
        for pin in _wait_gone(survivors, KILL_WAIT_S):
            logger.warning("pid %d (%s) still runs after SIGKILL", pin.pid, pin.name)
    finally:
        for pin in targets:
            close_fd(pin.pidfd)
    state_file.unlink(missing_ok=True)
    return [pin.pid for pin in targets]


@dataclass(frozen=True)
class _Pinned:
    """A record checked to be alive, with a pidfd holding it (None without pidfd support)."""

    name: str
    pid: int
    start_time_ticks: int
    pidfd: int | None


def _pin(record: PidRecord) -> _Pinned | None:
    """Take a pidfd, then check the start time: the fd then surely holds the recorded process."""
    if record.start_time_ticks is None:
        return None
    pidfd = open_pidfd(record.pid)
    if is_running(record.pid, record.start_time_ticks):
        return _Pinned(record.name, record.pid, record.start_time_ticks, pidfd)
    close_fd(pidfd)
    logger.info("skipping pid %d (%s): exited, or the pid names another process now", record.pid, record.name)
    return None


def _signal_all(pins: list[_Pinned], sig: int) -> None:
    for pin in pins:
        try:
            if pin.pidfd is not None:
                send_via_pidfd(pin.pidfd, sig)
            else:
                os.kill(pin.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise PlatformError(f"not allowed to signal pid {pin.pid} ({pin.name}): {exc}") from exc


def _wait_gone(pins: list[_Pinned], timeout_s: float) -> list[_Pinned]:
    """Poll /proc until every pinned process has exited or timeout_s passes; returns the rest."""
    deadline = time.monotonic() + timeout_s
    alive = list(pins)
    while alive:  # bounded by the deadline
        alive = [p for p in alive if is_running(p.pid, p.start_time_ticks)]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(_REAP_POLL_S)
    return alive
