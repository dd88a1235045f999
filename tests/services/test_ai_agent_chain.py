"""ai-agent end to end: real user, analytics and external-ai-api behind a stand-in outbound listener."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx
import pytest

from harness.net import free_port

from harness.services.outbound import PROPAGATED_HEADERS
from tests.services.servicekit import Launcher, OutboundRouter, ServiceProcess, TlsPair

CHAT = {"user_id": "alice", "prompt": "what is a sidecar?"}
TRACE_HEADERS = {
    "x-request-id": "req-0001",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=value",
    "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736",
    "x-b3-spanid": "00f067aa0ba902b7",
    "x-b3-parentspanid": "a2fb4a1d1a96d312",
    "x-b3-sampled": "1",
    "x-b3-flags": "0",
    "b3": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
    "x-user-id": "alice",
    "x-user-tier": "pro",
    "x-canary": "true",
}
UPSTREAM_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Mesh:
    router: OutboundRouter
    agent: ServiceProcess
    user: ServiceProcess
    analytics: ServiceProcess
    ai: ServiceProcess

    def chat(
        self, body: Mapping[str, object] = CHAT, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        with self.agent.client() as client:
            return client.post("/api/v1/chat", json=body, headers=headers)


@pytest.fixture(scope="module")
def mesh(module_launcher: Launcher, tls_pair: TlsPair) -> Iterator[Mesh]:
    """The four apps; api.openai.com serves TLS with its own certificate. ai-agent trusts it
    (EXTERNAL_AI_CA_FILE) and makes its TLS to the router with SNI api.openai.com, as to the local sidecar
    (which passes it through); the router terminates it with the same certificate to see the requests."""
    router = OutboundRouter(verify=tls_pair.client_context(), tls=tls_pair)
    router.start()
    try:
        user = module_launcher.spawn("user", "user-v1-us-east-0")
        analytics = module_launcher.spawn("analytics", "analytics-v1-us-west-0", REGION="us-west")
        ai = module_launcher.spawn(
            "external-ai-api",
            "external-ai-api-0",
            scheme="https",
            verify=tls_pair.client_context(),
            AI_LATENCY_MS="20",
            AI_JITTER_MS="5",
            TLS_CERT_FILE=str(tls_pair.cert_file),
            TLS_KEY_FILE=str(tls_pair.key_file),
        )
        agent = module_launcher.spawn(
            "ai-agent",
            "ai-agent-v1-us-east-0",
            MESH_OUTBOUND=router.url,
            EXTERNAL_AI_CA_FILE=str(tls_pair.cert_file),
            UPSTREAM_TIMEOUT_S=str(UPSTREAM_TIMEOUT_S),
        )
        for proc in (user, analytics, ai, agent):
            proc.wait_healthy()
        router.routes.update(
            {
                "user-service": user.url,
                "analytics-service": analytics.url,
                "api.openai.com": ai.url,
            }
        )
        yield Mesh(router, agent, user, analytics, ai)
    finally:
        router.stop()


@pytest.fixture(autouse=True)
def clean_mesh(mesh: Mesh) -> Iterator[None]:
    """Each test starts with default knobs and routes, and leaves them so whatever it did."""
    routes = dict(mesh.router.routes)
    yield
    mesh.router.routes.clear()
    mesh.router.routes.update(routes)
    for proc in (mesh.user, mesh.analytics, mesh.ai):
        proc.reset_knobs()
    assert mesh.ai.put_knobs(ai_latency_ms=20, ai_jitter_ms=5).status_code == 200


def test_chat_answers_with_the_reply_the_user_and_every_upstream_pod(mesh: Mesh) -> None:
    response = mesh.chat()
    assert response.status_code == 200, response.text
    assert response.headers["x-served-by"] == "ai-agent-v1-us-east-0"
    body = response.json()
    assert {k: body[k] for k in ("service", "version", "region", "pod")} == {
        "service": "ai-agent",
        "version": "v1",
        "region": "us-east",
        "pod": "ai-agent-v1-us-east-0",
    }
    assert "what is a sidecar?" in body["reply"]
    assert body["reply"].startswith("[external-ai-api-0]")
    assert body["user"]["id"] == "alice"
    assert body["user"]["pod"] == "user-v1-us-east-0"
    assert body["analytics"] == "ok"
    assert body["upstream_pods"] == {
        "user-service": "user-v1-us-east-0",
        "api.openai.com": "external-ai-api-0",
        "analytics-service": "analytics-v1-us-west-0",
    }


def test_every_outbound_call_goes_to_mesh_outbound_with_the_destination_as_host(mesh: Mesh) -> None:
    request_id = "req-hosts"
    assert mesh.chat(headers={"x-request-id": request_id}).status_code == 200
    calls = {
        (seen.host, seen.method, seen.path)
        for seen in mesh.router.seen
        if seen.headers.get("x-request-id") == request_id
    }
    assert calls == {
        ("user-service", "GET", "/api/v1/users/alice"),
        ("api.openai.com", "POST", "/v1/chat/completions"),
        ("analytics-service", "POST", "/api/v1/events"),
    }
    # The AI API call was the app's own TLS to the listener, named api.openai.com by SNI (what the sidecar
    # routes on); mesh services stay plaintext to it.
    assert set(mesh.router.server_names) == {"api.openai.com"}


def test_tracing_and_routing_headers_are_propagated_to_every_upstream(mesh: Mesh) -> None:
    headers = {**TRACE_HEADERS, "x-request-id": "req-propagation", "x-not-propagated": "secret"}
    assert mesh.chat(headers=headers).status_code == 200
    seen = [s for s in mesh.router.seen if s.headers.get("x-request-id") == "req-propagation"]
    assert {s.host for s in seen} == {"user-service", "api.openai.com", "analytics-service"}
    for call in seen:
        assert {name: call.headers.get(name) for name in PROPAGATED_HEADERS} == {
            name: headers[name] for name in PROPAGATED_HEADERS
        }, call.host
        assert "x-not-propagated" not in call.headers


def test_analytics_is_called_only_after_user_and_the_ai_api_answered(mesh: Mesh) -> None:
    assert mesh.chat(headers={"x-request-id": "req-order"}).status_code == 200
    order = [s.host for s in mesh.router.seen if s.headers.get("x-request-id") == "req-order"]
    assert order[-1] == "analytics-service"
    assert sorted(order[:2]) == ["api.openai.com", "user-service"]


def test_user_and_ai_api_calls_run_concurrently(mesh: Mesh) -> None:
    assert mesh.user.put_knobs(latency_ms=500).status_code == 200
    assert mesh.ai.put_knobs(ai_latency_ms=500, ai_jitter_ms=0).status_code == 200
    started = time.monotonic()
    response = mesh.chat()
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert 0.5 <= elapsed < 0.9, f"two 500 ms calls took {elapsed:.3f} s together (one after the other: 1 s)"


def test_chat_stays_200_with_analytics_failed_when_analytics_fails(mesh: Mesh) -> None:
    assert mesh.analytics.put_knobs(error_rate=1.0, error_status=503).status_code == 200
    response = mesh.chat()
    assert response.status_code == 200
    assert response.json()["analytics"] == "failed"
    assert "analytics-service" not in response.json()["upstream_pods"]
    with mesh.agent.client() as client:
        metrics = client.get("/metrics").text
    assert 'app_upstream_requests_total{destination="analytics-service",code="503"} ' in metrics


def test_user_failing_gives_502_naming_user_service_and_its_status(mesh: Mesh) -> None:
    assert mesh.user.put_knobs(error_rate=1.0, error_status=503).status_code == 200
    response = mesh.chat()
    assert response.status_code == 502
    assert response.headers["x-served-by"] == "ai-agent-v1-us-east-0"
    body = response.json()
    assert body["upstream"] == "user-service"
    assert body["status"] == 503
    assert body["error"] == "upstream user-service failed: 503"


def test_ai_api_failing_gives_502_naming_it(mesh: Mesh) -> None:
    assert mesh.ai.put_knobs(error_rate=1.0, error_status=429).status_code == 200
    response = mesh.chat()
    assert response.status_code == 502
    assert response.json()["upstream"] == "api.openai.com"
    assert response.json()["status"] == 429


def test_an_unreachable_user_service_is_a_502_carrying_the_listeners_503(mesh: Mesh) -> None:
    mesh.router.routes["user-service"] = f"http://127.0.0.1:{free_port()}"
    response = mesh.chat()
    assert response.status_code == 502
    assert (response.json()["upstream"], response.json()["status"]) == ("user-service", 503)


def test_a_hung_user_service_is_a_502_after_the_upstream_timeout(mesh: Mesh) -> None:
    assert mesh.user.put_knobs(hang=True).status_code == 200
    started = time.monotonic()
    response = mesh.chat()
    elapsed = time.monotonic() - started
    assert response.status_code == 502
    body = response.json()
    assert (body["upstream"], body["status"]) == ("user-service", None)
    assert "Timeout" in body["reason"]
    assert UPSTREAM_TIMEOUT_S <= elapsed < UPSTREAM_TIMEOUT_S + 2.0


def test_without_mesh_outbound_services_are_called_directly_and_the_ai_api_certificate_is_verified(
    mesh: Mesh, launcher: Launcher
) -> None:
    """Direct mode (Kubernetes): http://<host> for mesh services, https://<host> for the AI API, whose
    self-signed certificate no public CA vouches for, so the call fails verification and chat answers 502."""
    ai_host = f"127.0.0.1:{mesh.ai.port}"
    agent = launcher.start(
        "ai-agent",
        "ai-agent-v2-eu-west-0",
        USER_SERVICE_HOST=f"127.0.0.1:{mesh.user.port}",
        ANALYTICS_SERVICE_HOST=f"127.0.0.1:{mesh.analytics.port}",
        EXTERNAL_AI_HOST=ai_host,
    )
    with agent.client() as client:
        response = client.post("/api/v1/chat", json=CHAT, headers={"x-request-id": "req-direct"})
        metrics = client.get("/metrics").text
    assert response.status_code == 502
    assert (response.json()["upstream"], response.json()["status"]) == (ai_host, None)
    assert "CERTIFICATE_VERIFY_FAILED" in response.json()["reason"]
    assert f'app_upstream_requests_total{{destination="127.0.0.1:{mesh.user.port}",code="200"}} 1' in metrics
    assert not [s for s in mesh.router.seen if s.headers.get("x-request-id") == "req-direct"]


def test_chat_counts_its_upstream_calls_by_destination_and_code(mesh: Mesh) -> None:
    with mesh.agent.client() as client:
        before = client.get("/metrics").text
        assert client.post("/api/v1/chat", json=CHAT).status_code == 200
        after = client.get("/metrics").text

    def count(text: str, destination: str) -> int:
        prefix = f'app_upstream_requests_total{{destination="{destination}",code="'
        return sum(
            int(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(prefix) and ('code="200"' in line or 'code="202"' in line)
        )

    for destination in ("user-service", "api.openai.com", "analytics-service"):
        assert count(after, destination) == count(before, destination) + 1, destination
