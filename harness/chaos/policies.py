"""Chaos Toolkit action of the security experiments: apply a shipped Istio policy for the chaos phase.

The policy replaces the mesh's resource of the same kind, namespace and name (or is added); its undo,
registered first, puts back exactly what was there (or deletes what was added), so rollbacks, Ctrl-C
and `harness reset` leave the mesh as declared. Registering also writes the fault ledger's "istio"
entry (the same documents to delete and re-apply) before the policy is applied, so a SIGKILLed run's
policy is undone by the next `harness run`/`up`/`reset` and the end-of-run audit names one not undone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from harness.chaos.context import current, current_platform
from harness.chaos.ledger import ledger_for
from harness.errors import ConfigError
from harness.mesh.loader import resource_key
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents

__all__ = ["apply_policy"]

POLICY_KINDS = ("AuthorizationPolicy", "PeerAuthentication")


def _manifest(manifest: str) -> Path:
    path = (MANIFESTS_DIR / manifest).resolve()
    if MANIFESTS_DIR.resolve() not in path.parents or path.suffix not in (".yaml", ".yml") or not path.is_file():
        shipped = sorted(str(p.relative_to(MANIFESTS_DIR)) for p in (MANIFESTS_DIR / "variants").glob("*.yaml"))
        raise ConfigError(f"expected a YAML file under harness/mesh/manifests (e.g. {', '.join(shipped)}), "
                          f"got {manifest!r}", field="manifest")
    return path


def apply_policy(manifest: str) -> dict[str, Any]:
    """Apply the AuthorizationPolicy/PeerAuthentication documents of a shipped manifest
    (`variants/authz-seed-as-written.yaml`, `istio/authorization-policy.yaml`, ...) until undone."""
    path = _manifest(manifest)
    documents = [d for d in load_yaml_documents(path) if d]
    others = [f"{d.get('kind')}/{(d.get('metadata') or {}).get('name')}" for d in documents
              if d.get("kind") not in POLICY_KINDS]
    if others or not documents:
        raise ConfigError(f"{manifest}: expected only {' and '.join(POLICY_KINDS)} documents, got "
                          f"{', '.join(others) or 'none'}", field="manifest")
    platform = current_platform()
    present = {resource_key(d): d for d in platform.resources()}
    undo_apply = [present[resource_key(d)] for d in documents if resource_key(d) in present]
    undo_delete = [d for d in documents if resource_key(d) not in present]
    record = current().recorder.fault("policy", manifest, documents=[f"{k}/{n}" for k, _, n in map(resource_key, documents)])

    def undo() -> None:
        record.reverted_requested_at = time.time()
        if undo_delete:
            platform.apply_documents(undo_delete, delete=True)
        if undo_apply:
            platform.apply_documents(undo_apply)
        record.reverted_at = time.time()

    current().undo.register(f"restore the policies {manifest} replaced", undo, ledger=ledger_for(platform),
                            kind="istio", undo={"delete": undo_delete, "apply": undo_apply})
    result = platform.apply_documents(documents)
    record.applied_at = time.time()
    return {"manifest": manifest, "applied": [f"{k}/{n}" for k, _, n in map(resource_key, documents)],
            "acknowledged_ms": result.get("acknowledged_ms")}
