"""The fault ledger: every fault on disk before it takes effect, so a killed run's faults can be undone.

The in-process undo registry (undo.py) dies with its process; a SIGKILLed `harness run` used to
leave its delay, abort, held region or scaled-down service in place, and the next run measured on
it. Each fault is therefore first written here, durably (fsynced file and folder), as one file per
entry in the platform's ledger folder, and removed once its undo has run. An entry names its owner
(pid plus /proc start time, so a recycled pid is never taken for a live owner) and holds everything
needed to undo it from another process: the Istio documents to restore or delete, the pods whose
knobs to clear, the pods to release (and their Deployments with the declared replicas), the pods
that must be ready again.

API (owned by the run; `harness reset`/`run`/`up` use the orphan side):
  FaultLedger(directory).record(kind, description, undo) -> LedgerEntry   before the fault
  FaultLedger.update(entry, undo) / clear(entry_id)                        as it grows / once undone
  FaultLedger.entries() / orphans()                                        what is outstanding
  FaultLedger.undo_entry(entry, platform) / undo_orphans(platform, mesh_up=)
  ledger_for(platform) -> FaultLedger | None                               the platform's ledger
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError, PlatformError
from harness.files import atomic_write, fsync_dir
from harness.platforms.base import Platform
from harness.procfs import is_running, start_time_ticks

__all__ = ["KINDS", "FaultLedger", "LedgerEntry", "Owner", "ledger_for", "wait_ready"]

logger = logging.getLogger("harness.chaos")
READY_TIMEOUT_S = 60.0  # how long an undo waits for released or killed pods to be ready again
KINDS = ("istio", "knobs", "hold", "kill", "load", "probe")


@dataclass(frozen=True)
class Owner:
    """The process that made a fault: pid plus its start time in clock ticks since boot."""

    pid: int
    start_ticks: int | None
    command: str

    @classmethod
    def current(cls) -> "Owner":
        pid = os.getpid()
        return cls(pid, start_time_ticks(pid), " ".join(os.path.basename(a) if i == 0 else a
                                                         for i, a in enumerate(sys.argv))[:200])

    def alive(self) -> bool:
        return self.start_ticks is not None and is_running(self.pid, self.start_ticks)


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    kind: str  # one of KINDS
    description: str
    owner: Owner
    created_at: float  # seconds since the epoch
    undo: dict[str, Any]

    def line(self) -> str:
        """One line for stderr or the journal."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created_at))
        return (f"{self.description} (left by pid {self.owner.pid}, `{self.owner.command}`, "
                f"since {when})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FaultLedger:
    """One folder of entries, one JSON file each (0600, written with fsync before the fault)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._seq = 0

    # -- writing ----------------------------------------------------------------------------------

    def record(self, kind: str, description: str, undo: dict[str, Any]) -> LedgerEntry:
        """Durably note a fault about to be made by this process; returns once it is on disk."""
        if kind not in KINDS:
            raise ValueError(f"ledger kind {kind!r}; expected one of {KINDS}")
        with self._lock:
            self._seq += 1
            entry_id = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:04d}"
        entry = LedgerEntry(entry_id, kind, description, Owner.current(), time.time(), undo)
        self._write(entry)
        return entry

    def update(self, entry: LedgerEntry, undo: dict[str, Any]) -> LedgerEntry:
        """The same entry with a grown undo (e.g. each kill round's victims, before they are killed)."""
        updated = replace(entry, undo=undo)
        self._write(updated)
        return updated

    def clear(self, entry_id: str) -> None:
        """Remove an entry whose undo has run (fsyncs the folder so the removal survives a crash)."""
        path = self._path(entry_id)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.directory, missing_ok=True)

    def _write(self, entry: LedgerEntry) -> None:
        atomic_write(self._path(entry.id), json.dumps(entry.as_dict(), sort_keys=True) + "\n", mode=0o600,
                     durable=True)

    def _path(self, entry_id: str) -> Path:
        return self.directory / f"{entry_id}.json"

    # -- reading ----------------------------------------------------------------------------------

    def entries(self) -> list[LedgerEntry]:
        """Every outstanding entry, oldest first; unreadable files are left to `unreadable()`."""
        return self._read()[0]

    def unreadable(self) -> list[tuple[Path, str]]:
        """Entry files that cannot be read (a disk fault, a hand edit): each may stand for a fault still in
        the mesh that no process can undo from its record, so `run` and `up` refuse to start on them."""
        return self._read()[1]

    def _read(self) -> tuple[list[LedgerEntry], list[tuple[Path, str]]]:
        if not self.directory.is_dir():
            return [], []
        found, broken = [], []
        for path in sorted(self.directory.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                found.append(LedgerEntry(data["id"], data["kind"], data["description"], Owner(**data["owner"]),
                                         float(data["created_at"]), data["undo"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                broken.append((path, f"{type(exc).__name__}: {exc}"))
        return found, broken

    def discard_unreadable(self) -> list[str]:
        """Remove the unreadable entry files (after `harness reset` restored the declared mesh)."""
        removed = []
        for path, _ in self.unreadable():
            path.unlink(missing_ok=True)
            removed.append(str(path))
        return removed

    def orphans(self) -> list[LedgerEntry]:
        """Entries whose owner is gone: nobody else will undo them."""
        return [entry for entry in self.entries() if not entry.owner.alive()]

    def live_foreign(self) -> list[LedgerEntry]:
        """Entries of another process that still runs (a concurrent run's faults)."""
        me = os.getpid()
        return [entry for entry in self.entries() if entry.owner.pid != me and entry.owner.alive()]

    # -- undoing ----------------------------------------------------------------------------------

    def undo_entry(self, entry: LedgerEntry, platform: Platform) -> None:
        """Undo one entry from any process, then clear it; raises (entry kept) if the undo fails."""
        UNDOERS[entry.kind](platform, entry.undo)
        self.clear(entry.id)

    def undo_orphans(self, platform: Platform, *, mesh_up: bool) -> list[dict[str, Any]]:
        """Undo every orphaned entry, newest first; with the mesh down there is nothing left to undo.

        Returns one record per entry (for the journal): what it was, and `undone`, `discarded` or
        the error that kept it.
        """
        cleaned = []
        for entry in reversed(self.orphans()):
            record = {"description": entry.description, "kind": entry.kind, "owner_pid": entry.owner.pid,
                      "owner_command": entry.owner.command, "created_at": entry.created_at}
            if not mesh_up:
                self.clear(entry.id)
                record["outcome"] = "discarded: the mesh is not running"
            else:
                try:
                    self.undo_entry(entry, platform)
                    record["outcome"] = "undone"
                except Exception as exc:  # kept in the ledger; the caller reports it and stops
                    record["outcome"] = f"failed: {type(exc).__name__}: {exc}"
            cleaned.append(record)
        return cleaned


def ledger_for(platform: Platform) -> FaultLedger | None:
    """The ledger of a platform (its `ledger_dir`), or None for a platform that keeps no state."""
    directory = platform.ledger_dir
    return FaultLedger(directory) if directory is not None else None


# -- undo from any process ---------------------------------------------------------------------------

def wait_ready(platform: Platform, pods: list[str], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until every pod named is ready again (bounded)."""
    deadline = time.monotonic() + timeout_s
    ready: set[str] = set()
    while time.monotonic() < deadline:
        ready = {p["name"] for p in platform.pods() if p["ready"]}
        if set(pods) <= ready:
            return
        time.sleep(0.05)
    raise TimeoutError(f"pods not ready again after {timeout_s} s: {sorted(set(pods) - ready)}")


def restore_documents(platform: Platform, undo: dict[str, Any], *, source: str = "the fault ledger") -> None:
    """Undo an Istio change ({"delete": [...], "apply": [...]}, FaultPlan.undo): delete what it added, then
    put back what it replaced. The same from the run that made the change and from a later command."""
    if undo.get("delete"):
        # What is still there, wherever it is; a missing one skipped (kubectl delete --ignore-not-found:
        # a reset in between may have removed it, or one of kind's clusters lacks it while the others
        # still have it). Not filtered on resources(): kind lists only the mesh's own kinds there, and
        # only the primary cluster, and a skipped undo leaves a fault.
        platform.apply_documents(undo["delete"], delete=True, source=source, missing_ok=True)
    if undo.get("apply"):
        platform.apply_documents(undo["apply"], source=source)


def _undo_knobs(platform: Platform, undo: dict[str, Any]) -> None:
    for pod in undo["pods"]:
        try:
            platform.set_knobs(pod, **undo["values"])
        except HarnessError:
            # A pod whose app is not running (held, or being replaced) starts again with cleared
            # knobs; one that is running and refuses is a real failure.
            if any(p["name"] == pod and p["ready"] for p in platform.pods()):
                raise


def _undo_hold(platform: Platform, undo: dict[str, Any]) -> None:
    for pod in undo["pods"]:
        platform.hold(pod, down=False)
    wait_ready(platform, undo["pods"])


def _undo_kill(platform: Platform, undo: dict[str, Any]) -> None:
    wait_ready(platform, undo["pods"])


def _undo_load(platform: Platform, undo: dict[str, Any]) -> None:
    """Load that runs outside the harness process (kind --in-cluster: Locust Jobs) is stopped and removed."""
    platform.stop_in_cluster_load()


def _undo_probe(platform: Platform, undo: dict[str, Any]) -> None:
    """A security probe's client objects in the cluster (kind: its Pod and identities Secret) are deleted."""
    platform.remove_probe_objects(undo["objects"])


UNDOERS: dict[str, Callable[[Any, dict[str, Any]], None]] = {
    "istio": restore_documents, "knobs": _undo_knobs, "hold": _undo_hold, "kill": _undo_kill, "load": _undo_load,
    "probe": _undo_probe}


def describe_orphans(ledger: FaultLedger | None) -> list[str]:
    """One line per orphaned entry, for stderr."""
    if ledger is None:
        return []
    return ([f"harness: a fault of a process that is gone is still recorded: {e.line()}" for e in ledger.orphans()]
            + [f"harness: a fault ledger entry cannot be read ({why}): {path}; `harness reset` restores the "
               f"declared mesh and removes it" for path, why in ledger.unreadable()])


def check_no_foreign(ledger: FaultLedger | None) -> None:
    """A run refuses to start while another live process has faults in the mesh."""
    if ledger is None:
        return
    foreign = ledger.live_foreign()
    if foreign:
        raise PlatformError("another harness process has faults in the mesh; wait for it to finish or stop it "
                            "(its faults are then undone by the next run or `harness reset`): "
                            + "; ".join(e.line() for e in foreign))
