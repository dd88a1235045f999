"""Where the one mesh of this machine keeps its state, and the marker that makes the folder safe to remove.

The mesh's ports are machine-wide, so its state is too: `$HARNESS_STATE_DIR`, else
`$XDG_STATE_HOME/mesh-harness`, else `~/.local/state/mesh-harness` (the XDG Base Directory default),
whatever the current directory. `harness status` or plain `chaos run` from any folder finds it.

A folder only becomes a state directory when it is empty (or new) or already carries the marker
file; `harness up`/`down` then remove only the entries the harness writes (STATE_ENTRIES) and never
a folder without the marker, so a mistyped HARNESS_STATE_DIR naming a user's folder is refused
with an error instead of deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from harness.errors import ConfigError
from harness.files import atomic_write

__all__ = ["MARKER", "STATE_ENTRIES", "claim_state_dir", "default_state_dir", "is_state_dir", "mark_state_dir",
           "remove_state"]

APP_NAME = "mesh-harness"
MARKER = ".mesh-harness-state"
# Every top-level entry the harness writes in a state directory; `remove_state` removes these and
# nothing else. A new top-level file or folder must be added here, or `down` leaves it behind.
STATE_ENTRIES = (
    "settings.json", "daemon.json", "daemon-error.json", "control.sock", "pids.json",  # daemon, supervisor
    "logs", "pki", "proxies", "prometheus",  # process logs, certificates, xDS files, Prometheus data
    "ledger",  # the fault ledger of the local mesh (harness.chaos.ledger)
    "knobs-token", "sockets",  # the apps' knobs token and Unix sockets (platforms/local/private.py)
)
# The harness's too, but another platform's: the local mesh's `down` keeps them (a kind cluster's
# fault ledger outlives the local mesh) and does not report them as someone else's files.
OTHER_PLATFORMS_PREFIX = "kind-ledger-"


def default_state_dir() -> Path:
    """`$XDG_STATE_HOME/mesh-harness`, else `~/.local/state/mesh-harness` (HARNESS_STATE_DIR is the
    settings' override and is read by them)."""
    xdg = os.environ.get("XDG_STATE_HOME")
    # The XDG spec: a relative path in XDG_STATE_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / APP_NAME


def is_state_dir(path: Path) -> bool:
    """The folder carries the harness's marker."""
    return (path / MARKER).is_file()


def _check_claimable(path: Path, field: str) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file, not a folder; point {field} at a new or empty folder", field=field)
    if path.is_dir() and not is_state_dir(path) and any(path.iterdir()):
        raise ConfigError(f"{path} is not empty and is not a harness state folder (no {MARKER} file): the "
                          f"harness will not write into it or remove it; point {field} at a new or empty "
                          "folder", field=field)


def claim_state_dir(path: Path, *, field: str = "HARNESS_STATE_DIR") -> Path:
    """Create (or reuse) a state directory and mark it; a non-empty folder without the marker is refused."""
    _check_claimable(path, field)
    path.mkdir(parents=True, exist_ok=True)
    if not is_state_dir(path):
        mark_state_dir(path)
    return path


def mark_state_dir(path: Path) -> None:
    """Write the marker into a folder the harness made (e.g. the `.failed` copy of a start-up's logs)."""
    atomic_write(path / MARKER, json.dumps({"created_by": "mesh-harness", "created_at": time.time(),
                                            "removable_entries": list(STATE_ENTRIES)}) + "\n",
                 mode=0o600, durable=True)


def remove_state(path: Path, *, field: str = "HARNESS_STATE_DIR", entries: tuple[str, ...] = STATE_ENTRIES) -> list[str]:
    """Remove the harness's entries of a state directory; the folder itself once nothing else is left.

    Returns what was left in place (entries the harness did not write). A folder without the marker
    is only ever removed when it is empty; otherwise this refuses with an error naming it.
    """
    if not path.exists():
        return []
    if not is_state_dir(path):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
            return []
        raise ConfigError(f"{path} is not a harness state folder (no {MARKER} file); nothing in it was removed. "
                          f"Point {field} at the folder `harness up` created", field=field)
    for name in entries:
        entry = path / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()
    remaining = sorted(p.name for p in path.iterdir() if p.name != MARKER)
    if not remaining:
        (path / MARKER).unlink()
        path.rmdir()
    return [name for name in remaining if not name.startswith(OTHER_PLATFORMS_PREFIX)]
