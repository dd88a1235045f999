"""The mesh as declared, checked and restored: the residual-fault audit, `harness reset`, orphan clean-up.

A run ends with an audit of the live mesh: Istio resources as they were when the run started (the
declared ones, or what the user applied on purpose before it), no app fault knob set, nothing held
down or scaled below its declared replicas, and no ledger entry of this process left. Whatever is
left is named, and the run is an error (exit 2): the next run would otherwise measure on it.

`harness reset` returns to the declared mesh whatever is recorded, and clears orphaned ledger
entries (their faults are part of what it restores). `harness run`/`up` undo orphaned entries first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from typing import Any

from harness.chaos.ledger import UNDOERS, FaultLedger, describe_orphans, ledger_for
from harness.errors import ConfigError, HarnessError, PlatformError
from harness.mesh.loader import resource_key
from harness.platforms.base import Platform
from harness.platforms.model import CLEARED_KNOBS

__all__ = ["audit_run", "changed_by_others", "clean_orphans", "report_orphans", "reset_mesh", "residual_faults",
           "snapshot_resources"]

logger = logging.getLogger("harness.chaos")
# The knobs that are a fault when set: the cleared values minus error_status, which only says what an
# error_rate answers (it is not a fault on its own).
FAULT_KNOBS = {knob: value for knob, value in CLEARED_KNOBS.items() if knob != "error_status"}


def snapshot_resources(platform: Platform) -> dict[tuple[str, str, str], Any]:
    """The Istio resources of the mesh now (kind, namespace, name -> spec), to audit against later."""
    return {resource_key(doc): doc.get("spec") for doc in platform.resources()}


Key = tuple[str, str, str]  # kind, namespace, name


def _resource_leftovers(live: dict[Key, Any], expected: dict[Key, Any], against: str) -> list[tuple[Key, str]]:
    found = []
    for key in sorted(live.keys() - expected.keys()):
        found.append((key, f"{key[0]} {key[1]}/{key[2]} exists but is not in the {against} mesh"))
    for key in sorted(expected.keys() - live.keys()):
        found.append((key, f"{key[0]} {key[1]}/{key[2]} of the {against} mesh is missing"))
    for key in sorted(live.keys() & expected.keys()):
        if live[key] != expected[key]:
            what = " (it carries a fault)" if "'fault'" in repr(live[key]) else ""
            found.append((key, f"{key[0]} {key[1]}/{key[2]} differs from the {against} one{what}"))
    return found


def residual_faults(platform: Platform, expected: dict[Key, Any] | None = None,
                    ledger: FaultLedger | None = None, *, touched: Collection[Key] | None = None,
                    others: list[str] | None = None) -> list[str]:
    """What the live mesh has that it should not: one line per leftover, none when clean.

    `expected` is the Istio state to compare with (default: the declared resources). With `touched`
    (the Istio resources this run's changes named) and `others`, a resource that differs but that the
    run never touched goes to `others`: somebody else changed it meanwhile (e.g. `harness apply` from
    another shell), which is no fault the run left.
    """
    against = "declared"
    if expected is None:
        expected = {resource_key(doc): doc.get("spec") for doc in platform.declared_resources()}
    else:
        against = "run's starting"
    leftovers = []
    for key, line in _resource_leftovers(snapshot_resources(platform), expected, against):
        (others if others is not None and touched is not None and key not in touched else leftovers).append(line)
    leftovers += platform.holds()
    for pod in platform.pods():
        if not pod["ready"]:
            continue
        try:
            knobs = platform.get_knobs(pod["name"])
        except HarnessError as exc:
            leftovers.append(f"pod {pod['name']}: knobs could not be read ({exc})")
            continue
        set_ = {k: knobs[k] for k, cleared in FAULT_KNOBS.items() if k in knobs and knobs[k] != cleared}
        if set_:
            leftovers.append(f"pod {pod['name']} has fault knobs set: "
                             + ", ".join(f"{k}={v}" for k, v in sorted(set_.items())))
    if ledger is not None:
        me = os.getpid()
        leftovers += [f"fault not undone: {e.description}" for e in ledger.entries() if e.owner.pid == me]
    return leftovers


def audit_run(platform: Platform, expected: dict[Key, Any] | None,
              touched: Collection[Key]) -> tuple[list[str], list[str]]:
    """The end-of-run audit: (what the run left: residual_faults against the run's starting resources
    and this process's ledger entries, a mesh that cannot be read being itself a leftover, since the run
    cannot vouch for it; what others changed while it ran: resources that differ but that none of the
    run's changes named, `touched`)."""
    others: list[str] = []
    try:
        return residual_faults(platform, expected, ledger_for(platform), touched=touched, others=others), others
    except HarnessError as exc:
        return [f"the mesh could not be audited: {exc}"], []


def changed_by_others(others: list[str]) -> str:
    """The inconclusive reason for Istio resources others changed while the run measured."""
    return ("the mesh changed while the run measured, not by the run (another `harness apply` or kubectl?): "
            + "; ".join(others) + ". The phases were judged on a mesh that changed under them; run again on a "
            "mesh nobody changes meanwhile (`harness reset` restores the declared one)")


def report_orphans(platform: Platform) -> list[str]:
    """One stderr line per orphaned ledger entry (any command says so); never fails the command."""
    try:
        return describe_orphans(ledger_for(platform))
    except OSError as exc:
        return [f"harness: the fault ledger could not be read: {exc}"]


def clean_orphans(platform: Platform) -> list[dict[str, Any]]:
    """Undo the faults of processes that are gone (before `run` or `up` does anything else).

    With the mesh down there is nothing to undo: the entries are dropped and reported. An undo that
    fails stops the command (exit 2) naming it: the run would measure on that fault.
    """
    ledger = ledger_for(platform)
    if ledger is None:
        return []
    unreadable = ledger.unreadable()
    if unreadable:  # it may record a fault still in the mesh: measuring now could judge the mesh with it
        path, why = unreadable[0]
        raise ConfigError(f"cannot be read ({why}); it may stand for a fault a killed run left in the mesh, "
                          f"which nothing can undo from it: run `harness reset` (restores the declared mesh and "
                          f"removes {len(unreadable)} unreadable entr{'y' if len(unreadable) == 1 else 'ies'})",
                          file=path, field="fault ledger entry")
    if not ledger.orphans():
        return []
    if platform.dry_run:  # the undos' calls are only recorded as steps, so the entries stay
        planned = []
        for entry in reversed(ledger.orphans()):
            UNDOERS[entry.kind](platform, entry.undo)
            planned.append({"description": entry.description, "kind": entry.kind, "owner_pid": entry.owner.pid,
                            "outcome": "dry run: not undone"})
        return planned
    cleaned = ledger.undo_orphans(platform, mesh_up=platform.is_up())
    failed = [c for c in cleaned if c["outcome"].startswith("failed")]
    if failed:
        raise PlatformError("a fault left by a process that is gone could not be undone; run `harness reset`: "
                            + "; ".join(f"{c['description']}: {c['outcome']}" for c in failed))
    return cleaned


def reset_mesh(platform: Platform) -> dict[str, Any]:
    """`harness reset`: the declared mesh (Istio resources, knobs, holds, replicas) and no orphan left.

    Entries of a process that still runs are kept (that run undoes them itself, after this reset
    nothing of them is left to undo) and reported.
    """
    ledger = ledger_for(platform)
    orphans = ledger.orphans() if ledger is not None else []
    result = platform.reset()
    if ledger is not None and not platform.dry_run:  # a dry run changes nothing, the ledger included
        for entry in orphans:
            ledger.clear(entry.id)
        result["orphans_cleared"] = [entry.line() for entry in orphans]
        result["unreadable_removed"] = ledger.discard_unreadable()  # the declared mesh is back: nothing to undo
        result["live_entries"] = [entry.line() for entry in ledger.live_foreign()]
    return result
