"""Every service's endpoints and their JSON, answered by real processes; every response names its pod."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from harness.net import free_port
from tests.services.servicekit import Launcher, ServiceProcess

PODS = {
    "ai-agent": "ai-agent-v1-us-east-0",
    "analytics": "analytics-v1-us-west-0",
    "user": "user-v1-us-east-0",
    "external-ai-api": "external-ai-api-0",
}
IDENTITY_KEYS = {"service", "version", "region", "pod"}


@pytest.fixture(scope="module")
def services(module_launcher: Launcher) -> dict[str, ServiceProcess]:
    """One process per service; ai-agent's upstreams point at a closed port, its 400s need none."""
    procs = {
        "ai-agent": module_launcher.spawn(
            "ai-agent",
            PODS["ai-agent"],
            MESH_OUTBOUND=f"http://127.0.0.1:{free_port()}",
            UPSTREAM_TIMEOUT_S="2",
        ),
        "analytics": module_launcher.spawn("analytics", PODS["analytics"]),
        "user": module_launcher.spawn("user", PODS["user"]),
        "external-ai-api": module_launcher.spawn(
            "external-ai-api", PODS["external-ai-api"], AI_LATENCY_MS="30", AI_JITTER_MS="0"
        ),
    }
    for proc in procs.values():
        proc.wait_healthy()
    return procs


@pytest.mark.parametrize("service", list(PODS))
def test_health_answers_ok_with_the_pod_identity(services: dict[str, ServiceProcess], service: str) -> None:
    with services[service].client() as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "service": service,
        "version": "v1",
        "region": "us-east",
        "pod": PODS[service],
    }


@pytest.mark.parametrize("service", list(PODS))
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health", 200),
        ("GET", "/metrics", 200),
        ("GET", "/admin/knobs", 200),
        ("PUT", "/admin/knobs", 400),
        ("GET", "/no/such/route", 404),
        ("DELETE", "/health", 405),
    ],
)
def test_every_response_carries_x_served_by_even_errors_and_404(
    services: dict[str, ServiceProcess], service: str, method: str, path: str, status: int
) -> None:
    with services[service].client() as client:
        response = client.request(method, path, content=b"not json" if method == "PUT" else None)
    assert response.status_code == status
    assert response.headers["x-served-by"] == PODS[service]


def test_even_uvicorns_own_answer_to_a_malformed_request_carries_x_served_by(
    services: dict[str, ServiceProcess],
) -> None:
    with socket.create_connection(("127.0.0.1", services["user"].port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"x-served-by: user-v1-us-east-0\r\n" in answer


def test_a_404_says_which_route_was_missing(services: dict[str, ServiceProcess]) -> None:
    with services["user"].client() as client:
        response = client.get("/api/v2/users/alice")
    assert response.status_code == 404
    assert response.json() == {"error": "no route for GET /api/v2/users/alice"}


def test_a_wrong_method_is_405_with_allow(services: dict[str, ServiceProcess]) -> None:
    with services["analytics"].client() as client:
        response = client.get("/api/v1/events")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_user_returns_a_profile_with_id_name_tier_and_the_pod_identity(
    services: dict[str, ServiceProcess],
) -> None:
    with services["user"].client() as client:
        first = client.get("/api/v1/users/alice")
        again = client.get("/api/v1/users/alice")
    assert first.status_code == 200
    body = first.json()
    assert body["id"] == "alice"
    assert body["name"] == "User alice"
    assert body["tier"] in {"free", "pro", "enterprise"}
    assert {key: body[key] for key in IDENTITY_KEYS} == {
        "service": "user",
        "version": "v1",
        "region": "us-east",
        "pod": PODS["user"],
    }
    assert again.json() == body, "the same id gives the same profile"


def test_analytics_accepts_events_with_202_and_counts_them(services: dict[str, ServiceProcess]) -> None:
    with services["analytics"].client() as client:
        before = client.get("/api/v1/events/count").json()["count"]
        accepted = [client.post("/api/v1/events", json={"type": "chat", "user_id": "u1"}) for _ in range(3)]
        after = client.get("/api/v1/events/count").json()
    assert [r.status_code for r in accepted] == [202, 202, 202]
    assert all(r.json()["accepted"] is True for r in accepted)
    assert accepted[-1].json()["count"] == before + 3
    assert after["count"] == before + 3
    assert after["by_type"]["chat"] >= 3
    assert after["pod"] == PODS["analytics"]


def test_analytics_rejects_an_event_that_is_not_a_json_object(services: dict[str, ServiceProcess]) -> None:
    with services["analytics"].client() as client:
        response = client.post("/api/v1/events", json=["chat"])
    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["error"]
    assert response.headers["x-served-by"] == PODS["analytics"]


def test_external_ai_api_answers_openai_shaped_json_after_the_inference_time(
    services: dict[str, ServiceProcess],
) -> None:
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
    with services["external-ai-api"].client() as client:
        started = time.monotonic()
        response = client.post("/v1/chat/completions", json=request)
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o-mini"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert "hello there" in body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert (
        body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    assert elapsed >= 0.03, "AI_LATENCY_MS=30 with no jitter"


def test_external_ai_api_rejects_missing_messages_in_openai_error_shape(
    services: dict[str, ServiceProcess],
) -> None:
    with services["external-ai-api"].client() as client:
        response = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "hi"}, "user_id"),
        ({"user_id": "alice"}, "prompt"),
        ({"user_id": 7, "prompt": "hi"}, "user_id"),
        ({"user_id": "alice", "prompt": ""}, "prompt"),
    ],
)
def test_chat_with_a_missing_or_wrong_field_is_400_naming_it(
    services: dict[str, ServiceProcess], body: dict[str, object], field: str
) -> None:
    with services["ai-agent"].client() as client:
        response = client.post("/api/v1/chat", json=body)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert f"'{field}'" in response.json()["error"]
    assert response.headers["x-served-by"] == PODS["ai-agent"]


def test_chat_with_a_body_that_is_not_json_is_400(services: dict[str, ServiceProcess]) -> None:
    with services["ai-agent"].client() as client:
        response = client.post("/api/v1/chat", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_metrics_count_requests_by_route_and_code_with_the_pod_labels(
    services: dict[str, ServiceProcess],
) -> None:
    with services["user"].client() as client:
        for user_id in ("m1", "m2"):
            client.get(f"/api/v1/users/{user_id}")
        client.get("/missing")
        response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    labels = f'service="user",version="v1",pod="{PODS["user"]}"'
    assert f'app_requests_total{{{labels},method="GET",route="/api/v1/users/{{id}}",code="200"}}' in text
    assert f'app_requests_total{{{labels},method="GET",route="unmatched",code="404"}} ' in text
    assert "# TYPE app_request_duration_seconds histogram" in text
    assert "# TYPE app_upstream_requests_total counter" in text
    assert 'le="+Inf"' in text


def test_metrics_histogram_buckets_are_cumulative_and_end_at_the_count(
    services: dict[str, ServiceProcess],
) -> None:
    with services["user"].client() as client:
        client.get("/api/v1/users/h1")
        text = client.get("/metrics").text
    prefix = (
        'app_request_duration_seconds_bucket{service="user",version="v1",pod="user-v1-us-east-0",'
        'method="GET",route="/api/v1/users/{id}",code="200",'
    )
    buckets = [int(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]
    count_line = next(
        line
        for line in text.splitlines()
        if line.startswith("app_request_duration_seconds_count{")
        and 'route="/api/v1/users/{id}"' in line
        and 'code="200"' in line
    )
    assert buckets == sorted(buckets)
    assert buckets[-1] == int(count_line.rsplit(" ", 1)[1]) > 0


def test_metrics_pass_promtool_check(services: dict[str, ServiceProcess]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    with services["ai-agent"].client() as client:
        client.post("/api/v1/chat", json={"user_id": "a", "prompt": "p"})  # upstream unreachable: a 502
        text = client.get("/metrics").text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'app_upstream_requests_total{destination="user-service",code="0"} ' in text, "refused: no response"


def test_knobs_are_listed_per_service_with_ai_knobs_only_on_the_external_api(
    services: dict[str, ServiceProcess],
) -> None:
    with services["user"].client() as client:
        user_knobs = client.get("/admin/knobs").json()
    with services["external-ai-api"].client() as client:
        ai_knobs = client.get("/admin/knobs").json()
    assert user_knobs == {
        "latency_ms": 0.0,
        "error_rate": 0.0,
        "error_status": 500,
        "hang": False,
        "unhealthy": False,
    }
    assert ai_knobs == {**user_knobs, "ai_latency_ms": 30.0, "ai_jitter_ms": 0.0}
