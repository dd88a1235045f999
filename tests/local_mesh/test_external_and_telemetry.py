"""The external AI API only through its ServiceEntry; Istio-shaped metrics in Prometheus."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import yaml

from tests.local_mesh.meshkit import Mesh


SERVICE_ENTRY = Path(__file__).parents[2] / "harness/mesh/manifests/istio/service-entry.yaml"
ROUTING = Path(__file__).parents[2] / "harness/mesh/manifests/istio/virtual-services.yaml"


def _chat_until(mesh: Mesh, status: int, in_a_row: int = 1) -> httpx.Response:
    """Chats until `in_a_row` consecutive ones answer `status` (bounded: 80 chats over about 20 s); the
    last response."""
    response, run = mesh.chat(), 0
    for _ in range(80):
        run = run + 1 if response.status_code == status else 0
        if run >= in_a_row:
            break
        time.sleep(0.25)
        response = mesh.chat()
    return response


def test_the_external_ai_api_is_reached_only_through_the_service_entry(clean_mesh: Mesh) -> None:
    """api.openai.com's port is HTTPS: the app's TLS passes through its sidecar by SNI, and without the
    ServiceEntry a TLS connection naming it goes to BlackHoleCluster (REGISTRY_ONLY), so the chat fails.

    Each ai-agent pod's TLS connection opened before the ServiceEntry went away lives until Envoy drains
    the removed filter chain (a listener update drains its connections, Envoy's "Listener update" docs;
    --drain-time-s 2 here), as with Istio: hence a bounded wait until chats fail several in a row (the
    gateway spreads them over the three ai-agent pods, each with its own connection).
    """
    mesh = clean_mesh
    assert mesh.chat().status_code == 200
    mesh.platform.apply([SERVICE_ENTRY], delete=True)
    response = _chat_until(mesh, 502, in_a_row=6)
    assert response.status_code == 502
    assert "api.openai.com" in response.text
    mesh.platform.reset()
    assert _chat_until(mesh, 200).status_code == 200


def query(mesh: Mesh, promql: str) -> list[dict]:
    response = mesh.client.get(f"{mesh.status['prometheus_url']}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_prometheus_has_istio_requests_total_per_destination_service(mesh: Mesh) -> None:
    for _ in range(20):
        assert mesh.chat().status_code == 200
    promql = 'sum by (destination_service_name) (istio_requests_total{reporter="source"})'
    # api.openai.com is not among them: its port is HTTPS, passed through as TCP (istio_tcp_*, test_tcp_metrics.py)
    wanted = {"ai-agent-service", "user-service", "analytics-service"}
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


def _total(mesh: Mesh, selector: str) -> float:
    result = query(mesh, f"sum(istio_requests_total{{{selector}}})")
    return float(result[0]["value"][1]) if result else 0.0


def _wait_total(mesh: Mesh, selector: str, expected: float) -> None:
    """Until Prometheus has scraped and recorded `expected` (bounded: 40 polls over about 20 s)."""
    seen = _total(mesh, selector)
    for _ in range(40):
        if seen == expected:
            return
        time.sleep(0.5)
        seen = _total(mesh, selector)
    assert seen == expected, f"istio_requests_total{{{selector}}}: {seen}, expected {expected}"


def _settled(selectors: dict[str, str], mesh: Mesh) -> dict[str, float]:
    """The totals once Prometheus has caught up with earlier tests' requests: the same over one scrape
    plus one rule evaluation (bounded: 8 rounds)."""
    totals = {name: _total(mesh, s) for name, s in selectors.items()}
    for _ in range(8):
        time.sleep(2.5)
        again = {name: _total(mesh, s) for name, s in selectors.items()}
        if again == totals:
            return totals
        totals = again
    raise AssertionError(f"istio_requests_total kept changing with no traffic: {totals}")


def test_local_replies_are_requests_in_istio_requests_total(clean_mesh: Mesh) -> None:
    """An injected abort, a blackholed host and no healthy upstream: Envoy answers, no upstream is called."""
    mesh = clean_mesh
    aborted = ('reporter="source",source_app="istio-ingressgateway",destination_service_name="ai-agent-service",'
               'response_code="503",response_flags="FI"')
    blackholed = 'reporter="source",source_app="ai-agent",destination_service_name="BlackHoleCluster",response_code="502"'
    no_upstream = ('reporter="source",source_app="ai-agent",destination_service_name="user-service",'
                   'response_code="503",response_flags="UH"')
    before = _settled({"aborted": aborted, "blackholed": blackholed, "no_upstream": no_upstream}, mesh)

    fault = next(d for d in yaml.safe_load_all(ROUTING.read_text()) if d and d["kind"] == "VirtualService")
    fault["spec"]["http"][-1]["fault"] = {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}
    mesh.platform.apply_documents([fault])
    assert [mesh.chat().status_code for _ in range(6)] == [503] * 6
    mesh.platform.reset()
    _wait_total(mesh, aborted, before["aborted"] + 6)

    # Plain HTTP naming a host outside the registry, sent to ai-agent's sidecar as its app would: the
    # block_all route answers 502 (the chat's own external call is TLS passed through by SNI, whose
    # BlackHoleCluster connections are TCP metrics: test_tcp_metrics.py).
    outbound = mesh.pod("ai-agent-v1-us-east-0")["outbound_port"]
    codes = [mesh.client.get(f"http://127.0.0.1:{outbound}/v1/models", headers={"host": "unknown.example.com"}).status_code
             for _ in range(4)]
    assert codes == [502] * 4
    _wait_total(mesh, blackholed, before["blackholed"] + 4)

    users = [p["name"] for p in mesh.platform.status()["pods"] if p["service"] == "user-service"]
    try:
        for pod in users:
            mesh.platform.hold(pod, down=True)
        mesh.wait_for(lambda: not any(mesh.pod(p)["ready"] for p in users), 10, "user pods down")
        codes = [mesh.chat().status_code for _ in range(5)]
    finally:
        for pod in users:
            mesh.platform.hold(pod, down=False)
    assert all(code >= 500 for code in codes), codes
    _wait_total(mesh, no_upstream, before["no_upstream"] + 5)
