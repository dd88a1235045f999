"""Specification: the local platform's live status has the seam's shared fields and round-trips through MeshStatus."""

from __future__ import annotations

from harness.platforms.model import POD_FIELDS, STATUS_FIELDS, MeshStatus
from tests.local_mesh.meshkit import Mesh


def test_the_live_status_carries_every_shared_field_and_round_trips(mesh: Mesh) -> None:
    status = mesh.platform.status()

    assert set(STATUS_FIELDS) <= set(status)
    assert all(set(POD_FIELDS) <= set(pod) for pod in status["pods"])
    assert MeshStatus.from_json(status).to_json() == status
