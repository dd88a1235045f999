"""A Chaos Toolkit action that changes the mesh behind the harness's back (no undo, no ledger entry).

Only for the residual-fault audit's test: what it leaves must be found at the end of the run.
"""

from __future__ import annotations

from typing import Any

from harness.chaos.context import current_platform


def set_knobs_without_undo(pod: str, **values: Any) -> dict[str, Any]:
    return current_platform().set_knobs(pod, **values)


def apply_without_undo(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """What `harness apply` from another shell does during a run: an Istio change the run did not make."""
    return current_platform().apply_documents(documents, source="another shell")
