"""`apply --delete` of a resource the running mesh does not have is refused, as kubectl refuses it.

kubectl delete -f on a missing object answers `Error from server (NotFound)` and exits 1 (kubectl's
delete only ignores it with --ignore-not-found); the harness says which file and resource, exits 2,
and deletes nothing of the batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from harness.chaos.ledger import restore_documents
from harness.errors import HarnessError, ResourceNotFoundError
from harness.mesh.loader import resource_key
from harness.platforms.fake import FakePlatform
from harness.platforms.local.controller import MeshController
from tests.platforms.local.controllerkit import make_controller

PRESENT = {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
           "metadata": {"name": "connection-pool-settings", "namespace": "parallel-ai"}}
MISSING = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
           "metadata": {"name": "no-such-routing", "namespace": "parallel-ai"}}


def _controller(tmp_path: Path) -> MeshController:
    return make_controller(tmp_path, ready=False)


def test_a_delete_batch_with_a_missing_resource_names_it_and_deletes_nothing(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    before, pushes = controller.model, len(controller.last_push.history)
    with pytest.raises(ResourceNotFoundError) as raised:
        asyncio.run(controller.apply([(PRESENT, "present.yaml"), (MISSING, "gone.yaml")], delete=True))
    error = raised.value
    assert error.file == "gone.yaml" and error.field == "metadata.name"
    assert "VirtualService parallel-ai/no-such-routing not found" in str(error)
    assert "nothing was deleted" in str(error)
    assert controller.model is before, "the present resource of the batch is still there"
    assert len(controller.last_push.history) == pushes, "no push at all"


def test_the_refusal_crosses_the_daemon_socket_as_the_same_error() -> None:
    wire = ResourceNotFoundError("VirtualService parallel-ai/x not found", file="gone.yaml",
                                 field="metadata.name").to_wire()
    again = HarnessError.from_wire(wire)
    assert isinstance(again, ResourceNotFoundError) and again.exit_code == 2
    assert (again.file, again.field) == ("gone.yaml", "metadata.name")


def test_a_fault_undo_after_a_reset_deletes_only_what_is_left() -> None:
    """The ledger's undo is kubectl delete --ignore-not-found: a reset already removed the fault."""
    platform = FakePlatform()
    fault = {**MISSING, "spec": {"hosts": ["user-service"]}}
    platform.apply_documents([fault])
    platform.reset()
    restore_documents(platform, {"delete": [fault, PRESENT]})
    assert resource_key(PRESENT) not in {resource_key(d) for d in platform.resources()}
    assert platform.calls[-1] == ("delete", ["VirtualService/no-such-routing",  # one call, missing_ok
                                             "DestinationRule/connection-pool-settings"])


def test_a_delete_with_missing_ok_deletes_what_exists_and_skips_the_rest(tmp_path: Path) -> None:
    """Platform.apply_documents(missing_ok=True) is kubectl delete --ignore-not-found (kubernetes/kubectl
    pkg/cmd/delete/delete.go `DeleteResult`: `r.IgnoreErrors(errors.IsNotFound)`), what the ledger's undo
    uses: the present resource goes, the missing one is no error."""
    controller = _controller(tmp_path)
    asyncio.run(controller.apply([(PRESENT, "present.yaml"), (MISSING, "gone.yaml")], delete=True, missing_ok=True))
    assert resource_key(PRESENT) not in {resource_key(d) for d, _ in controller.model.documents}
