"""VirtualService routing through the real ingress gateway: header matches, weights, live faults."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from harness.errors import PlatformError
from tests.local_mesh.meshkit import Mesh

SPLIT_REQUESTS = 1000


def versions(mesh: Mesh, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(count):
        response = mesh.chat(headers)
        assert response.status_code == 200, response.text
        seen[response.json()["version"]] += 1
    return seen


def test_premium_users_are_routed_to_v2_only(mesh: Mesh) -> None:
    assert versions(mesh, 40, {"x-user-tier": "premium"}) == Counter({"v2": 40})


def test_canary_header_is_routed_to_v2(mesh: Mesh) -> None:
    assert versions(mesh, 40, {"x-canary": "true"}) == Counter({"v2": 40})


def test_default_traffic_splits_90_10_within_4_points(mesh: Mesh) -> None:
    def one(_: int) -> str:
        response = mesh.chat()
        assert response.status_code == 200, response.text
        return response.json()["version"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = Counter(pool.map(one, range(SPLIT_REQUESTS)))
    share_v1 = seen["v1"] / SPLIT_REQUESTS
    assert abs(share_v1 - 0.90) <= 0.04, seen
    assert seen["v1"] + seen["v2"] == SPLIT_REQUESTS


def _routing_with_fault(tmp_path: Path, fault: dict) -> Path:
    """The shipped ai-agent-routing with a fault on its default route."""
    shipped = Path(__file__).parents[2] / "harness/mesh/manifests/istio/virtual-services.yaml"
    doc = next(d for d in yaml.safe_load_all(shipped.read_text()) if d and d["kind"] == "VirtualService")
    doc["spec"]["http"][-1]["fault"] = fault
    path = tmp_path / "fault.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_an_abort_applied_live_takes_effect_and_goes_away_on_reset(clean_mesh: Mesh, tmp_path: Path) -> None:
    mesh = clean_mesh
    before = mesh.platform.status()["pods"]
    path = _routing_with_fault(tmp_path, {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}})
    mesh.platform.apply([path])
    codes = Counter(mesh.chat().status_code for _ in range(20))
    assert codes == Counter({503: 20})
    assert Counter(mesh.chat({"x-user-tier": "premium"}).status_code for _ in range(5)) == Counter({200: 5})
    mesh.platform.reset()
    assert Counter(mesh.chat().status_code for _ in range(20)) == Counter({200: 20})
    after = mesh.platform.status()["pods"]
    assert [p["sidecar_pid"] for p in after] == [p["sidecar_pid"] for p in before], "no proxy restarted"


def test_a_delay_applied_live_takes_effect_and_goes_away_on_reset(clean_mesh: Mesh, tmp_path: Path) -> None:
    mesh = clean_mesh
    path = _routing_with_fault(tmp_path, {"delay": {"fixedDelay": "300ms", "percentage": {"value": 100.0}}})
    mesh.platform.apply([path])
    started = time.monotonic()
    for _ in range(3):
        assert mesh.chat().status_code == 200
    delayed = (time.monotonic() - started) / 3
    assert delayed >= 0.3
    mesh.platform.reset()
    started = time.monotonic()
    for _ in range(3):
        assert mesh.chat().status_code == 200
    assert (time.monotonic() - started) / 3 < 0.3


def test_a_push_that_envoy_rejects_is_rolled_back_and_reported(clean_mesh: Mesh, tmp_path: Path) -> None:
    """The translator passes a header regex that RE2 refuses (a backreference); Envoy rejects the RDS."""
    mesh = clean_mesh
    shipped = Path(__file__).parents[2] / "harness/mesh/manifests/istio/virtual-services.yaml"
    doc = next(d for d in yaml.safe_load_all(shipped.read_text()) if d and d["kind"] == "VirtualService")
    doc["spec"]["http"][0]["match"] = [{"headers": {"x-user-tier": {"regex": r"(a)\1"}}}]
    path = tmp_path / "backreference.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlatformError, match=r"rejected the pushed configuration \(http\.\S+\.rds\.outbound\|http"):
        mesh.platform.apply([path])
    assert mesh.platform.status()["last_push"]["reason"] == "rollback of apply"
    shipped_spec = next(d for d in yaml.safe_load_all(shipped.read_text()) if d and d["kind"] == "VirtualService")
    live = next(r for r in mesh.platform.resources() if r["kind"] == "VirtualService")
    assert live["spec"] == shipped_spec["spec"], "the mesh keeps the resources it had"
    assert versions(mesh, 10, {"x-user-tier": "premium"}) == Counter({"v2": 10})
