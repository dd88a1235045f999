"""The external AI API only through its ServiceEntry; Istio-shaped metrics in Prometheus."""

from __future__ import annotations

import time
from pathlib import Path

from meshkit import Mesh

SERVICE_ENTRY = Path(__file__).parents[2] / "harness/mesh/manifests/istio/service-entry.yaml"


def test_the_external_ai_api_is_reached_only_through_the_service_entry(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    assert mesh.chat().status_code == 200
    mesh.platform.apply([SERVICE_ENTRY], delete=True)
    response = mesh.chat()
    assert response.status_code == 502
    assert "api.openai.com" in response.text
    mesh.platform.reset()
    assert mesh.chat().status_code == 200


def query(mesh: Mesh, promql: str) -> list[dict]:
    response = mesh.client.get(f"{mesh.status['prometheus_url']}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_prometheus_has_istio_requests_total_per_destination_service(mesh: Mesh) -> None:
    for _ in range(20):
        assert mesh.chat().status_code == 200
    promql = 'sum by (destination_service_name) (istio_requests_total{reporter="source"})'
    wanted = {"ai-agent-service", "user-service", "analytics-service", "api.openai.com"}
    deadline = time.monotonic() + 30
    seen: set[str] = set()
    while time.monotonic() < deadline and not wanted <= seen:
        seen = {r["metric"].get("destination_service_name") for r in query(mesh, promql) if float(r["value"][1]) > 0}
        time.sleep(0.5)
    assert wanted <= seen, seen
    by_version = query(mesh, 'sum by (destination_version) (istio_requests_total{reporter="source",'
                             'destination_service_name="ai-agent-service"})')
    assert {r["metric"]["destination_version"] for r in by_version} >= {"v1"}
    latency = query(mesh, 'sum(istio_request_duration_milliseconds_count{destination_service_name="user-service"})')
    assert latency and float(latency[0]["value"][1]) > 0
