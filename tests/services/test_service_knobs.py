"""Fault knobs set at run time over /admin/knobs: latency, error rate and status, hang, health, AI timing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.services.servicekit import Launcher, ServiceProcess

USER_PATH = "/api/v1/users/alice"
COMPLETION = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def pods(module_launcher: Launcher) -> dict[str, ServiceProcess]:
    user = module_launcher.spawn("user", "user-v1-eu-west-0")
    ai = module_launcher.spawn("external-ai-api", "external-ai-api-0", AI_LATENCY_MS="40", AI_JITTER_MS="10")
    user.wait_healthy()
    ai.wait_healthy()
    return {"user": user, "ai": ai}


@pytest.fixture
def user(pods: dict[str, ServiceProcess]) -> Iterator[ServiceProcess]:
    """The user pod with default knobs, put back to defaults after the test whatever it did."""
    yield pods["user"]
    pods["user"].reset_knobs()


@pytest.fixture
def ai(pods: dict[str, ServiceProcess]) -> Iterator[ServiceProcess]:
    yield pods["ai"]
    pods["ai"].reset_knobs()
    assert pods["ai"].put_knobs(ai_latency_ms=40, ai_jitter_ms=10).status_code == 200


def test_a_put_changes_only_the_knobs_it_names_and_answers_all_of_them(user: ServiceProcess) -> None:
    response = user.put_knobs(latency_ms=5)
    assert response.status_code == 200
    assert response.json() == {
        "latency_ms": 5.0,
        "error_rate": 0.0,
        "error_status": 500,
        "hang": False,
        "unhealthy": False,
    }
    assert response.headers["x-served-by"] == "user-v1-eu-west-0"
    with user.client() as client:
        assert client.get("/admin/knobs").json()["latency_ms"] == 5.0


def test_latency_is_added_to_api_responses_but_not_to_health(user: ServiceProcess) -> None:
    assert user.put_knobs(latency_ms=250).status_code == 200
    with user.client() as client:
        started = time.monotonic()
        api = client.get(USER_PATH)
        api_s = time.monotonic() - started
        started = time.monotonic()
        health = client.get("/health")
        health_s = time.monotonic() - started
    assert api.status_code == 200 and health.status_code == 200
    assert api_s >= 0.25
    assert health_s < 0.25


def test_error_rate_one_with_503_fails_every_api_request_with_503(user: ServiceProcess) -> None:
    assert user.put_knobs(error_rate=1.0, error_status=503).status_code == 200
    with user.client() as client:
        responses = [client.get(USER_PATH) for _ in range(10)]
        health = client.get("/health")
    assert {r.status_code for r in responses} == {503}
    assert all(r.json()["error"] == "injected fault" for r in responses)
    assert all(r.headers["x-served-by"] == "user-v1-eu-west-0" for r in responses)
    assert health.status_code == 200, "injected errors are for the API, not the health check"


def test_error_rate_half_fails_some_requests_and_serves_the_others(user: ServiceProcess) -> None:
    assert user.put_knobs(error_rate=0.5).status_code == 200
    with user.client() as client:
        codes = [client.get(USER_PATH).status_code for _ in range(100)]
    assert set(codes) == {200, 500}
    assert 20 <= codes.count(500) <= 80


def test_hang_holds_api_requests_and_fails_health_until_cleared(user: ServiceProcess) -> None:
    assert user.put_knobs(hang=True).status_code == 200
    with user.client() as client:
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "hung"
        assert health.headers["x-served-by"] == "user-v1-eu-west-0"
        with pytest.raises(httpx.ReadTimeout):
            client.get(USER_PATH, timeout=0.3)
    with ThreadPoolExecutor(max_workers=1) as pool, user.client(timeout=10.0) as waiting_client:
        held = pool.submit(waiting_client.get, USER_PATH)
        time.sleep(0.2)
        assert not held.done(), "a hung request does not answer"
        assert user.put_knobs(hang=False).status_code == 200
        released = held.result(timeout=10.0)
    assert released.status_code == 200, "clearing the knob lets held requests through"
    with user.client() as client:
        assert client.get("/health").status_code == 200
        assert client.get(USER_PATH).status_code == 200


def test_a_client_that_gives_up_on_a_hung_request_is_counted_as_499(user: ServiceProcess) -> None:
    assert user.put_knobs(hang=True).status_code == 200
    with user.client() as client, pytest.raises(httpx.ReadTimeout):
        client.get("/api/v1/users/gave-up", timeout=0.2)
    deadline = time.monotonic() + 5.0
    line = 'route="/api/v1/users/{id}",code="499"'
    with user.client() as client:
        while line not in client.get("/metrics").text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert line in client.get("/metrics").text


def test_unhealthy_fails_health_while_the_api_keeps_serving(user: ServiceProcess) -> None:
    assert user.put_knobs(unhealthy=True).status_code == 200
    with user.client() as client:
        health = client.get("/health")
        api = client.get(USER_PATH)
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert api.status_code == 200


@pytest.mark.parametrize(
    ("knobs", "field", "message"),
    [
        ({"error_rate": 1.5}, "error_rate", "expected a fraction from 0 to 1"),
        ({"error_rate": True}, "error_rate", "expected a fraction from 0 to 1"),
        ({"latency_ms": -1}, "latency_ms", "expected 0 to 600000 milliseconds"),
        ({"latency_ms": "100"}, "latency_ms", "expected a number of milliseconds"),
        ({"error_status": 200}, "error_status", "expected an HTTP error status 400-599"),
        ({"hang": "yes"}, "hang", "expected true or false"),
        ({"latency": 10}, "latency", "unknown knob"),
        ({"ai_latency_ms": 10}, "ai_latency_ms", "unknown knob"),
    ],
)
def test_an_invalid_knob_is_400_naming_the_field(
    user: ServiceProcess, knobs: dict[str, object], field: str, message: str
) -> None:
    response = user.put_knobs(**knobs)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(f"{field}: {message}")
    assert response.headers["x-served-by"] == "user-v1-eu-west-0"


def test_a_put_with_one_bad_knob_changes_nothing(user: ServiceProcess) -> None:
    assert user.put_knobs(latency_ms=100, error_rate=2).status_code == 400
    with user.client() as client:
        assert client.get("/admin/knobs").json()["latency_ms"] == 0.0


def test_a_knobs_body_that_is_not_an_object_is_400(user: ServiceProcess) -> None:
    with user.client() as client:
        response = client.put("/admin/knobs", json=[1, 2])
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_ai_latency_knobs_start_from_the_environment_and_change_inference_time(ai: ServiceProcess) -> None:
    with ai.client() as client:
        knobs = client.get("/admin/knobs").json()
        assert (knobs["ai_latency_ms"], knobs["ai_jitter_ms"]) == (40.0, 10.0)
        assert ai.put_knobs(ai_latency_ms=300, ai_jitter_ms=0).status_code == 200
        started = time.monotonic()
        slow = client.post("/v1/chat/completions", json=COMPLETION)
        slow_s = time.monotonic() - started
        assert ai.put_knobs(ai_latency_ms=0).status_code == 200
        started = time.monotonic()
        fast = client.post("/v1/chat/completions", json=COMPLETION)
        fast_s = time.monotonic() - started
    assert slow.status_code == fast.status_code == 200
    assert slow_s >= 0.3
    assert fast_s < 0.2


def test_ai_jitter_spreads_inference_time_around_the_latency(ai: ServiceProcess) -> None:
    assert ai.put_knobs(ai_latency_ms=40, ai_jitter_ms=30).status_code == 200
    durations = []
    with ai.client() as client:
        for _ in range(12):
            started = time.monotonic()
            assert client.post("/v1/chat/completions", json=COMPLETION).status_code == 200
            durations.append(time.monotonic() - started)
    assert min(durations) >= 0.01
    assert max(durations) - min(durations) > 0.01, "uniform jitter of +/-30 ms spreads the times"


def test_error_knobs_act_on_the_external_api_too(ai: ServiceProcess) -> None:
    assert ai.put_knobs(error_rate=1.0, error_status=429).status_code == 200
    with ai.client() as client:
        response = client.post("/v1/chat/completions", json=COMPLETION)
    assert response.status_code == 429
    assert response.headers["x-served-by"] == "external-ai-api-0"
