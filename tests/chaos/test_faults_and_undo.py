"""Fault plans on Istio resources, the undo registry and pod selection, without a mesh."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from harness.chaos.faults import istio_fault, plan_fault
from harness.chaos.selectors import resolve_service, select_pods
from harness.chaos.undo import UndoRegistry
from harness.errors import ConfigError
from harness.mesh.schema import validate_document

MANIFESTS = Path(__file__).parents[2] / "harness/mesh/manifests/istio"


def shipped() -> list[dict]:
    return [d for path in sorted(MANIFESTS.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]


def pods() -> list[dict]:
    def pod(name: str, service: str, app: str, version: str, region: str) -> dict:
        return {"name": name, "service": service, "app": app, "version": version, "region": region, "ready": True}

    return [pod("ai-agent-v1-us-east-0", "ai-agent-service", "ai-agent", "v1", "us-east"),
            pod("ai-agent-v1-us-west-0", "ai-agent-service", "ai-agent", "v1", "us-west"),
            pod("ai-agent-v2-eu-west-0", "ai-agent-service", "ai-agent", "v2", "eu-west"),
            pod("user-v1-us-east-0", "user-service", "user", "v1", "us-east")]


def test_a_fault_on_a_host_with_a_virtual_service_patches_every_route_and_undo_restores_it() -> None:
    plan = plan_fault(shipped(), "ai-agent-service", istio_fault(abort_status=503, percentage=25))
    (patched,) = plan.apply
    assert patched["metadata"]["name"] == "ai-agent-routing"
    assert all(r["fault"]["abort"] == {"httpStatus": 503, "percentage": {"value": 25.0}} for r in patched["spec"]["http"])
    (original,) = plan.undo_apply
    assert "abort" not in str(original) and plan.undo_delete == []
    validate_document(patched, file=Path("generated"), index=0)


def test_a_header_scoped_fault_adds_restricted_copies_in_front() -> None:
    plan = plan_fault(shipped(), "ai-agent-service", istio_fault(delay_ms=1000, percentage=50), {"x-canary": "true"})
    routes = plan.apply[0]["spec"]["http"]
    assert len(routes) == 6
    for route in routes[:3]:
        assert all(m["headers"]["x-canary"] == {"exact": "true"} for m in route["match"])
        assert route["fault"]["delay"] == {"fixedDelay": "1s", "percentage": {"value": 50.0}}
    assert "fault" not in routes[5]
    validate_document(plan.apply[0], file=Path("generated"), index=0)


def test_a_fault_on_a_host_without_a_virtual_service_creates_one_and_undo_deletes_it() -> None:
    plan = plan_fault(shipped(), "user-service", istio_fault(delay_ms=50))
    (created,) = plan.apply
    assert created["metadata"]["name"] == "harness-fault-user-service"
    assert created["spec"]["hosts"] == ["user-service"] and created["spec"]["gateways"] == ["mesh"]
    assert plan.undo_delete == [created] and plan.undo_apply == []
    validate_document(created, file=Path("generated"), index=0)


def test_undos_run_newest_first_and_a_failing_undo_does_not_stop_the_others() -> None:
    registry, ran = UndoRegistry(), []
    registry.register("first", lambda: ran.append("first"))
    registry.register("broken", lambda: 1 / 0)
    registry.register("last", lambda: ran.append("last"))
    done = registry.run_all()
    assert ran == ["last", "first"]
    assert [u.description for u in done] == ["last", "broken", "first"]
    assert "ZeroDivisionError" in (done[1].error or "")
    assert registry.pending() == [] and registry.run_all() == []


def test_a_service_is_named_by_app_label_service_name_or_fqdn() -> None:
    for name in ("user", "user-service", "user-service.parallel-ai.svc.cluster.local"):
        assert resolve_service(pods(), name).service == "user-service"
    with pytest.raises(ConfigError, match="unknown service 'nope'.*ai-agent-service"):
        resolve_service(pods(), "nope")


def test_pod_selection_honours_version_region_count_and_the_blast_radius() -> None:
    assert select_pods(pods(), "ai-agent", version="v1", region="us-west") == ["ai-agent-v1-us-west-0"]
    assert len(select_pods(pods(), "ai-agent", version="v1", count=1, rng=random.Random(1))) == 1
    assert select_pods(pods(), "ai-agent", percent=100) == ["ai-agent-v1-us-east-0", "ai-agent-v1-us-west-0",
                                                           "ai-agent-v2-eu-west-0"]
    with pytest.raises(ConfigError, match="blast-radius"):
        select_pods(pods(), "ai-agent", percent=100, max_percent=50)


def test_the_registry_remembers_which_istio_resources_the_runs_changes_named() -> None:
    """What the end-of-run audit attributes to the run (harness/chaos/audit.py): the resources an Istio
    change's undo deletes or puts back; a knob change names none."""
    registry = UndoRegistry()
    added = {"kind": "VirtualService", "metadata": {"name": "harness-fault-user", "namespace": "parallel-ai"}}
    replaced = {"kind": "DestinationRule", "metadata": {"name": "user", "namespace": "parallel-ai"}}
    registry.register("remove abort fault on user", lambda: None, kind="istio",
                      undo={"delete": [added], "apply": [replaced]})
    registry.register("clear knobs", lambda: None, kind="knobs", undo={"pods": ["user-v1-us-east-0"]})
    assert registry.touched_resources() == {("VirtualService", "parallel-ai", "harness-fault-user"),
                                            ("DestinationRule", "parallel-ai", "user")}


def test_each_run_starts_its_own_record_of_touched_resources() -> None:
    """A suite runs its experiments in one process: what an earlier one changed (and restored) is not
    the next one's, so another party's change to it during the next run is not called that run's fault."""
    registry = UndoRegistry()
    doc = {"kind": "VirtualService", "metadata": {"name": "fault-user", "namespace": "parallel-ai"}}
    registry.register("remove fault", lambda: None, kind="istio", undo={"delete": [doc]})
    registry.begin_run()
    assert registry.touched_resources() == frozenset()
