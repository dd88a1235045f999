"""The undo registry: every fault registers its undo before it takes effect, and every undo runs.

With a fault ledger (ledger.py) the registration is also written to disk before the fault, and the
entry is removed once the undo has run, so a process killed in between leaves a record that the
next `harness run`, `up` or `reset` undoes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from harness.chaos.ledger import FaultLedger, LedgerEntry

logger = logging.getLogger("harness.chaos")


@dataclass
class Undo:
    token: int
    description: str
    action: Callable[[], None]
    registered_at: float = field(default_factory=time.time)
    done_at: float | None = None
    error: str | None = None
    ledger: "FaultLedger | None" = None
    entry: "LedgerEntry | None" = None  # its record in the ledger, cleared once this undo has run


class UndoRegistry:
    """LIFO undos; thread-safe, since the abort watcher and signal paths may run them too."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pending: list[Undo] = []
        self._done: list[Undo] = []
        self._next = 1
        self._touched: set[tuple[str, str, str]] = set()  # Istio resources this run's changes named

    def note_resources(self, undo: dict[str, Any]) -> None:
        """Remember the Istio resources an Istio change's undo names ({"delete": [...], "apply": [...]}), so
        the end-of-run audit can tell what this run changed from what others changed meanwhile."""
        from harness.mesh.loader import resource_key

        with self._lock:
            self._touched.update(resource_key(doc) for key in ("delete", "apply") for doc in undo.get(key) or [])

    def begin_run(self) -> None:
        """A new run's audit starts from what it changes itself (a suite runs several in one process)."""
        with self._lock:
            self._touched.clear()

    def touched_resources(self) -> frozenset[tuple[str, str, str]]:
        with self._lock:
            return frozenset(self._touched)

    def register(self, description: str, action: Callable[[], None], *, ledger: "FaultLedger | None" = None,
                 kind: str = "", undo: dict[str, Any] | None = None) -> int:
        """Register an undo; with a ledger, its entry (`kind`, `undo`) is on disk when this returns."""
        entry = ledger.record(kind, description, undo or {}) if ledger is not None else None
        if kind == "istio" and undo:
            self.note_resources(undo)
        with self._lock:
            undo_ = Undo(self._next, description, action, ledger=ledger, entry=entry)
            self._next += 1
            self._pending.append(undo_)
            return undo_.token

    def update_entry(self, token: int, undo: dict[str, Any]) -> None:
        """Grow a pending undo's ledger entry before the fault grows (e.g. the next kill round)."""
        with self._lock:
            pending = next((u for u in self._pending if u.token == token), None)
        if pending is not None and pending.ledger is not None and pending.entry is not None:
            pending.entry = pending.ledger.update(pending.entry, undo)

    def run(self, token: int) -> Undo | None:
        """Run one undo now (e.g. remove_faults); returns it, or None if it already ran."""
        with self._lock:
            undo = next((u for u in self._pending if u.token == token), None)
            if undo is None:
                return None
            self._pending.remove(undo)
        self._execute(undo)
        return undo

    def run_matching(self, description: str) -> list[Undo]:
        """Run the pending undos with this description (e.g. restore_region after fail_region)."""
        with self._lock:
            tokens = [u.token for u in self._pending if u.description == description]
        return [undo for token in tokens if (undo := self.run(token)) is not None]

    def run_all(self) -> list[Undo]:
        """Run every pending undo, newest first; one failing undo does not stop the others."""
        ran = []
        while True:
            with self._lock:
                if not self._pending:
                    return ran
                undo = self._pending.pop()
            self._execute(undo)
            ran.append(undo)

    def pending(self) -> list[str]:
        with self._lock:
            return [u.description for u in self._pending]

    def history(self) -> list[Undo]:
        with self._lock:
            return list(self._done)

    def _execute(self, undo: Undo) -> None:
        try:
            undo.action()
        except Exception as exc:  # recorded in the journal and logged; the next undo still runs
            undo.error = f"{type(exc).__name__}: {exc}"
            logger.error("undo failed: %s: %s", undo.description, undo.error)
        else:
            if undo.ledger is not None and undo.entry is not None:
                try:
                    undo.ledger.clear(undo.entry.id)
                except OSError as exc:  # the entry stays: the next command undoes it again (idempotent)
                    undo.error = f"undone, but its ledger entry could not be removed: {exc}"
                    logger.error("%s: %s", undo.description, undo.error)
        undo.done_at = time.time()
        with self._lock:
            self._done.append(undo)
