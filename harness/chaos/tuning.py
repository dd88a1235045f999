"""Mesh settings an experiment runs on: shipped DestinationRules applied for the whole run, then restored.

An experiment that fails on the seed's settings at realistic load ships a variant naming the fix in
its harness control (`mesh: [variants/connection-pool-for-load.yaml]`): the session applies it
before the load starts, so baseline, chaos and recovery all run on the fixed mesh, and restores the
seed's rules once the load has stopped. Each rule replaces the mesh's DestinationRule of the same
namespace and name (or is added). The restore is recorded in the fault ledger before anything
changes, so a killed run's change is undone by the next run or `harness reset`, and the end-of-run
audit sees the mesh as declared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.chaos.ledger import ledger_for
from harness.errors import ConfigError
from harness.mesh.loader import resource_key
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents
from harness.platforms.base import Platform

__all__ = ["apply_mesh_change", "mesh_change_documents"]

KIND = "DestinationRule"


def mesh_change_documents(manifest: str) -> list[dict[str, Any]]:
    """The DestinationRules of a shipped manifest (a path under harness/mesh/manifests); ConfigError
    naming the field `manifest` for anything else."""
    path = (MANIFESTS_DIR / manifest).resolve()
    if MANIFESTS_DIR.resolve() not in path.parents or path.suffix not in (".yaml", ".yml") or not path.is_file():
        shipped = sorted(str(p.relative_to(MANIFESTS_DIR)) for p in (MANIFESTS_DIR / "variants").glob("*.yaml"))
        raise ConfigError(f"expected a YAML file under harness/mesh/manifests (e.g. {', '.join(shipped)}), "
                          f"got {manifest!r}", field="manifest")
    documents = [d for d in load_yaml_documents(Path(path)) if d]
    others = [f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}" for d in documents if d.get("kind") != KIND]
    if others or not documents:
        raise ConfigError(f"{manifest}: expected only {KIND} documents, got {', '.join(others) or 'none'}",
                          field="manifest")
    return documents


def apply_mesh_change(platform: Platform, manifest: str) -> Callable[[], None]:
    """Apply the manifest's DestinationRules now; returns the restore (call it once, after the load)."""
    documents = mesh_change_documents(manifest)
    present = {resource_key(d): d for d in platform.resources()}
    undo_apply = [present[resource_key(d)] for d in documents if resource_key(d) in present]
    undo_delete = [d for d in documents if resource_key(d) not in present]
    ledger = ledger_for(platform)
    entry = ledger.record("istio", f"restore the DestinationRules {manifest} replaced",
                          {"delete": undo_delete, "apply": undo_apply}) if ledger is not None else None
    platform.apply_documents(documents)

    def restore() -> None:
        if undo_delete:
            platform.apply_documents(undo_delete, delete=True)
        if undo_apply:
            platform.apply_documents(undo_apply)
        if ledger is not None and entry is not None:
            ledger.clear(entry.id)

    return restore
