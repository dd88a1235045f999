"""Preflight for inotify instances: every Envoy file subscription holds one, and the limit is per user."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import PlatformError

LIMIT_FILE = Path("/proc/sys/fs/inotify/max_user_instances")
SPARE = 8  # Prometheus' file_sd and rule watchers, and a little room for the rest of the desktop


def instances_in_use(uid: int | None = None) -> int:
    """Inotify instances open by processes of `uid` (default: this user), counted from /proc."""
    uid = os.getuid() if uid is None else uid
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid != uid:
                continue
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == "anon_inode:inotify":
                    count += 1
        except OSError:
            continue  # a process that exited or hides its fds does not count
    return count


def check_inotify_budget(needed: int) -> None:
    """Raise before anything starts if the proxies' file subscriptions would exceed the limit."""
    try:
        limit = int(LIMIT_FILE.read_text())
    except (OSError, ValueError):
        return  # not Linux /proc: nothing to check against
    free = limit - instances_in_use()
    if needed + SPARE > free:
        raise PlatformError(
            f"the local mesh needs about {needed + SPARE} inotify instances (one per Envoy file "
            f"subscription) but only {free} of fs.inotify.max_user_instances={limit} are free for this "
            f"user; raise the limit, e.g. `sudo sysctl fs.inotify.max_user_instances=1024` (kind's docs "
            "ask for the same), or stop another local mesh"
        )
