"""The run directory's journal.json, written atomically as the run goes so an interrupted run leaves one."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from harness.files import atomic_write


class JournalWriter:
    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "journal.json"
        self._lock = threading.Lock()
        run_dir.mkdir(parents=True, exist_ok=True)

    def write(self, journal: dict[str, Any]) -> None:
        text = json.dumps(journal, indent=2, default=_default)
        with self._lock:
            # Not durable: rewritten at every step, and it only has to outlive the harness process
            # (Ctrl-C, SIGKILL), not the machine; an fsync per step would slow the run for nothing.
            atomic_write(self.path, text, durable=False)


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "__dict__"):
        return vars(value)
    return repr(value)
