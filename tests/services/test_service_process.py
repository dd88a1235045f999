"""A service process's life: graceful SIGTERM (exit 0, hung requests let go) and its idle memory footprint."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.services.servicekit import Launcher

RSS_SANITY_BOUND_MIB = 80


def test_sigterm_stops_a_service_gracefully_with_exit_code_0(launcher: Launcher) -> None:
    user = launcher.start("user", "user-v1-us-east-0")
    started = time.monotonic()
    os.kill(user.pid, signal.SIGTERM)
    assert user.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 3.0
    assert "Application shutdown complete" in user.log()


def test_sigterm_answers_hung_requests_with_503_instead_of_waiting_for_them(launcher: Launcher) -> None:
    user = launcher.start("user", "user-v1-us-east-0")
    assert user.put_knobs(hang=True).status_code == 200
    with ThreadPoolExecutor(max_workers=1) as pool, user.client(timeout=10.0) as client:
        held = pool.submit(client.get, "/api/v1/users/alice")
        time.sleep(0.3)
        assert not held.done()
        started = time.monotonic()
        os.kill(user.pid, signal.SIGTERM)
        response = held.result(timeout=10.0)
    assert response.status_code == 503
    assert response.json()["error"] == "hang knob: shutting down"
    assert response.headers["x-served-by"] == "user-v1-us-east-0"
    assert user.process.wait(timeout=10) == 0
    assert time.monotonic() - started < 3.0


def test_an_idle_process_stays_small(launcher: Launcher, capsys: pytest.CaptureFixture[str]) -> None:
    """ai-agent is the heaviest (it alone loads httpx and its TLS setup); user stands for the other three."""
    agent = launcher.spawn("ai-agent", "ai-agent-v1-us-east-0", MESH_OUTBOUND="http://127.0.0.1:15001")
    user = launcher.spawn("user", "user-v1-us-east-0")
    agent.wait_healthy()
    user.wait_healthy()
    time.sleep(0.2)
    agent_mib, user_mib = agent.rss_kib() / 1024, user.rss_kib() / 1024
    with capsys.disabled():
        print(f"\nidle RSS: ai-agent {agent_mib:.1f} MiB, user {user_mib:.1f} MiB")
    assert agent_mib < RSS_SANITY_BOUND_MIB
    assert user_mib < RSS_SANITY_BOUND_MIB
