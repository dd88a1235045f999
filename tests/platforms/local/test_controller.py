"""The local control plane without processes: endpoint pushes are coalesced and run after the event."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from harness.mesh.loader import declared_model
from harness.mesh.translate import CertPaths, ExternalEndpoint
from harness.platforms.local.controller import MeshController
from harness.mesh.topology import GATEWAY_NAME
from harness.platforms.local.layout import Layout
from harness.platforms.local.settings import LocalSettings

V1_EDS = "outbound_8080_v1_ai-agent-service.parallel-ai.svc.cluster.local.json"


def _controller(tmp_path: Path) -> MeshController:
    settings = LocalSettings(state_dir=tmp_path / "state", base_port=41000)
    declared = declared_model(validate=False)
    layout = Layout.plan(settings, declared.topology)
    pki = tmp_path / "pki"
    pki.mkdir()
    for name in ("chain.pem", "key.pem"):  # read into the SDS secret; the content is not checked here
        (pki / name).write_text(f"placeholder {name}\n")
    certs = {sa: CertPaths(pki / "chain.pem", pki / "key.pem", pki / "root.pem")
             for sa in {p.service_account for p in declared.topology.pods} | {"api-gateway"}}
    external = {"api.openai.com": ExternalEndpoint("api.openai.com", "127.0.0.1", layout.external_port,
                                                   pki / "external-root.pem")}
    controller = MeshController(declared, layout, certs, external)
    controller.ready = {p.name for p in declared.topology.pods}
    controller.push("initial")
    return controller


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
