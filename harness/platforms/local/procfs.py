"""Linux process facts for the supervisor: /proc start times, pidfd signalling, parent-death signal."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_GONE_STATES = frozenset("ZX")  # zombie or dead: exited, whatever the parent does about it


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat; comm (field 2) may hold spaces and parens, so split after it."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: start time in clock ticks since boot; None if no such process.

    A pid plus its start time names one process for good: a recycled pid gets a new start time.
    """
    fields = _stat_fields(pid)
    return int(fields[22 - 3]) if fields else None


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
