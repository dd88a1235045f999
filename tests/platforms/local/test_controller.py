"""The local control plane without processes: endpoint pushes are coalesced and run after the event."""

from __future__ import annotations

import asyncio
import copy
import json
import stat
from pathlib import Path

import pytest

from harness.mesh.loader import MeshModel, build_model, merge_documents
from harness.mesh.topology import GATEWAY_NAME
from harness.platforms.local.controller import LISTENER_DRAIN_S, STATS_SETTLE_S, MeshController
from tests.platforms.local.controllerkit import make_controller

V1_EDS = "outbound_8080_v1_ai-agent-service.parallel-ai.svc.cluster.local.json"


def _controller(tmp_path: Path) -> MeshController:
    return make_controller(tmp_path, ready=True)


def _v1_ports(controller: MeshController) -> list[int]:
    eds = controller.layout.proxy_dir(GATEWAY_NAME) / "xds" / "eds" / V1_EDS
    assignment = json.loads(eds.read_text())["resources"][0]
    return sorted(e["endpoint"]["address"]["socket_address"]["port_value"]
                  for group in assignment["endpoints"] for e in group["lb_endpoints"])


def test_endpoint_changes_in_one_loop_iteration_make_one_push_after_the_callback(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    east, west = "ai-agent-v1-us-east-0", "ai-agent-v1-us-west-0"
    before = _v1_ports(controller)
    pushes = len(controller.last_push.history)

    async def kill_both() -> None:
        controller.set_ready(east, False)
        controller.set_ready(west, False)
        assert len(controller.last_push.history) == pushes, "no push inside the event's callback"
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(kill_both())
    assert len(controller.last_push.history) == pushes + 1
    assert controller.last_push.reason == f"endpoint {east} not ready; endpoint {west} not ready"
    gone = {controller.layout.pods[east].inbound, controller.layout.pods[west].inbound}
    assert _v1_ports(controller) == sorted(set(before) - gone)


def test_an_apply_push_carries_a_pending_endpoint_change(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    east = "ai-agent-v1-us-east-0"

    async def change_then_push() -> None:
        controller.set_ready(east, False)
        controller.push("reset")
        await asyncio.sleep(0)

    pushes = len(controller.last_push.history)
    asyncio.run(change_then_push())
    assert len(controller.last_push.history) == pushes + 1
    assert controller.last_push.reason == f"reset; endpoint {east} not ready"
    assert controller.layout.pods[east].inbound not in _v1_ports(controller)


def test_private_keys_reach_envoy_only_through_the_0600_sds_file(tmp_path: Path) -> None:
    controller = _controller(tmp_path)
    xds = controller.layout.proxy_dir("ai-agent-v1-us-east-0") / "xds"
    for name in ("lds.json", "cds.json"):
        text = (xds / name).read_text()
        assert "tls_certificate_sds_secret_configs" in text and '"private_key"' not in text, name
    sds = xds / "sds" / "default.json"
    assert stat.S_IMODE(sds.stat().st_mode) == 0o600
    secret = json.loads(sds.read_text())["resources"][0]
    assert secret["tls_certificate"]["private_key"] == {"inline_string": "placeholder key.pem\n"}


def _with(controller: MeshController, *documents: dict) -> MeshModel:
    return build_model(merge_documents(controller.model.documents,
                                       [(doc, Path("change.yaml")) for doc in documents]))


def _telemetry(controller: MeshController) -> dict:
    return copy.deepcopy(next(doc for doc, _ in controller.model.documents if doc["kind"] == "Telemetry"))


def test_a_push_that_changes_a_counted_stat_is_recorded_with_when_its_old_stats_are_gone(tmp_path: Path) -> None:
    """Dropping the shipped CLIENT override of source_app: the sidecars and the gateway now leave
    source_app to its default, a different Envoy stat name for the same Prometheus series (see
    translate/telemetry.stats_definitions). The record says which proxies, and when the old stats are
    gone: Envoy's --drain-time-s after the push, plus the margin."""
    controller = _controller(tmp_path)
    telemetry = _telemetry(controller)
    overrides = telemetry["spec"]["metrics"][0]["overrides"]
    telemetry["spec"]["metrics"][0]["overrides"] = [o for o in overrides if o["match"].get("mode") != "CLIENT"]
    assert controller.stats_redefinitions == []
    controller.push("apply", _with(controller, telemetry))
    [record] = controller.stats_redefinitions
    assert GATEWAY_NAME in record["proxies"] and "ai-agent-v1-us-east-0" in record["proxies"]
    assert record["reason"] == "apply"
    assert record["settled_at"] - record["at"] == STATS_SETTLE_S > LISTENER_DRAIN_S
    controller.push("reset", controller.declared)  # back: the same stats change again
    assert [r["reason"] for r in controller.stats_redefinitions] == ["apply", "reset"]


def test_pushes_that_keep_every_counted_stat_are_not_recorded(tmp_path: Path) -> None:
    """Routing faults, authorization, a PERMISSIVE namespace (a plaintext chain appears: new stats,
    none redefined), tracing at 100 % and endpoint changes keep every stat a proxy counted."""
    controller = _controller(tmp_path)
    telemetry = _telemetry(controller)
    telemetry["spec"]["tracing"][0]["randomSamplingPercentage"] = 100.0
    fault = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
             "metadata": {"name": "user-fault", "namespace": "parallel-ai"},
             "spec": {"hosts": ["user-service"], "http": [{"fault": {"abort": {"httpStatus": 503,
                                                                              "percentage": {"value": 50.0}}},
                                                           "route": [{"destination": {"host": "user-service"}}]}]}}
    deny = {"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-admin", "namespace": "parallel-ai"},
            "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}}
    permissive = {"apiVersion": "security.istio.io/v1beta1", "kind": "PeerAuthentication",
                  "metadata": {"name": "default", "namespace": "parallel-ai"},
                  "spec": {"mtls": {"mode": "PERMISSIVE"}}}
    counted = len(controller._stats["ai-agent-v1-us-east-0"])
    for change in (telemetry, fault, deny, permissive):
        assert controller.push("apply", _with(controller, change)) > 0, change["kind"]
    assert len(controller._stats["ai-agent-v1-us-east-0"]) > counted  # the plaintext chain's own stats
    controller.set_ready("ai-agent-v1-us-east-0", False)
    controller.push("reset", controller.declared)
    assert controller.stats_redefinitions == []


def test_a_stat_dropped_then_defined_again_differently_while_its_chain_drains_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUEST_COUNT disabled, then enabled again without its response_flags: between the two pushes
    no definition changed in place, but the first push's old counters still count in the draining
    filter chain, so the second one's are a restart all the same; once they have drained, not."""
    import harness.platforms.local.controller as controller_module

    now = [1000.0]
    monkeypatch.setattr(controller_module.time, "time", lambda: now[0])
    for wait, recorded in ((1.0, True), (STATS_SETTLE_S + 1.0, False)):
        (tmp_path / str(wait)).mkdir()
        controller = _controller(tmp_path / str(wait))
        off = _telemetry(controller)
        off["spec"]["metrics"][0]["overrides"].append({"match": {"metric": "REQUEST_COUNT"}, "disabled": True})
        controller.push("apply", _with(controller, off))
        assert controller.stats_redefinitions == []  # a stat gone is no restart
        now[0] += wait
        changed = _telemetry(controller)
        changed["spec"]["metrics"][0]["overrides"][-1] = {  # on again, without its response_flags
            "match": {"metric": "REQUEST_COUNT"}, "tagOverrides": {"response_flags": {"operation": "REMOVE"}}}
        controller.push("apply", _with(controller, changed))
        assert bool(controller.stats_redefinitions) is recorded, wait


def test_the_old_stats_drain_from_the_proxies_acknowledgement_not_from_the_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.platforms.local.controller as controller_module

    controller = _controller(tmp_path)
    now = [1000.0]
    monkeypatch.setattr(controller_module.time, "time", lambda: now[0])
    telemetry = _telemetry(controller)
    metrics = telemetry["spec"]["metrics"][0]
    metrics["overrides"] = [o for o in metrics["overrides"] if o["match"].get("mode") != "CLIENT"]
    controller.push("apply", _with(controller, telemetry))
    now[0] += 4.0  # the proxies took 4 s to acknowledge (a starved machine)
    controller._settles_after_acknowledged(pushed_at=1000.0)
    [record] = controller.stats_redefinitions
    assert record["at"] == 1000.0 and record["settled_at"] == 1004.0 + STATS_SETTLE_S


def test_reset_names_the_resources_it_deletes(tmp_path: Path) -> None:
    """Back to the declared mesh: a resource the mesh does not declare goes, and the result says which,
    as the kind platform's reset does (and `harness reset` prints)."""
    controller = _controller(tmp_path)
    extra = {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
             "metadata": {"name": "mesh-default", "namespace": "istio-system"},
             "spec": {"tracing": [{"providers": [{"name": "jaeger"}], "randomSamplingPercentage": 5.0}]}}
    asyncio.run(controller.apply([(extra, Path("mine.yaml"))]))
    result = asyncio.run(controller.reset())
    assert result["deleted"] == ["Telemetry/mesh-default in istio-system"]
    assert asyncio.run(controller.reset())["deleted"] == []
