"""locustfiles/ai_agent.py as a plain Locust file: `locust -f` runs it, headers and tiers as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loadkit import AI_AGENT, ROOT, ChatTarget

LOCUST = Path(sys.executable).with_name("locust")
RUN_S = 30  # generous bound for a 3-second run


@pytest.fixture
def healthy_target() -> Iterator[ChatTarget]:
    """A target that answers every chat with 200 (so Locust's exit code is 0)."""
    server = ChatTarget(fail_header=None).start()
    try:
        yield server
    finally:
        server.stop()


def plain_env(**extra: str) -> dict[str, str]:
    """This environment without LOCUST_* and HARNESS_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "HARNESS_"))}
    return {**env, **extra}


def locust(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LOCUST), "-f", str(AI_AGENT), *args], cwd=ROOT, env=env or plain_env(),
                          capture_output=True, text=True, timeout=RUN_S, check=False)


def test_plain_locust_runs_the_ai_agent_mix_headless(healthy_target: ChatTarget) -> None:
    done = locust("--headless", "-u", "2", "-r", "2", "-t", "3s", "--host", healthy_target.url, "--only-summary")
    assert done.returncode == 0, done.stderr[-2000:]
    answered = healthy_target.answered
    assert answered.statuses[200] > 0 and set(answered.statuses) == {200}
    assert answered.malformed == 0  # x-user-id matches the body's user_id, a prompt, a W3C traceparent
    assert len(answered.trace_ids) == answered.total  # a fresh trace per request
    assert set(answered.hosts) == {"ai-agent-service.parallel-ai.svc.cluster.local"}
    assert "chat [standard]" in done.stdout + done.stderr


def test_tiers_send_their_headers_and_the_host_header_follows_the_environment(healthy_target: ChatTarget) -> None:
    env = plain_env(HARNESS_TIER_WEIGHTS="standard=1,premium=1,canary=1", HARNESS_THINK_TIME="0",
                    HARNESS_INGRESS_HOST="other.example.local")
    done = locust("--headless", "-u", "3", "-r", "3", "-t", "2s", "--host", healthy_target.url, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(healthy_target.answered.tiers) == {"standard", "premium", "canary"}
    assert set(healthy_target.answered.hosts) == {"other.example.local"}


def test_plain_locust_refuses_a_target_outside_127_0_0_0_8() -> None:
    done = locust("--headless", "-u", "1", "-r", "1", "-t", "2s", "--host", "http://10.1.2.3:80")
    assert done.returncode != 0
    assert "refusing to send load to 'http://10.1.2.3:80'" in done.stderr


def test_a_tier_weight_of_zero_drops_that_tier() -> None:
    done = locust("--list", env=plain_env(HARNESS_TIER_WEIGHTS="canary=0"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "StandardUser" in done.stdout and "PremiumUser" in done.stdout and "CanaryUser" not in done.stdout


@pytest.mark.parametrize(("name", "value"), [("HARNESS_TIER_WEIGHTS", "gold=3"), ("HARNESS_THINK_TIME", "2,1"),
                                             ("HARNESS_LOAD_SHAPE", "sawtooth")])
def test_a_bad_setting_stops_locust_naming_the_variable(name: str, value: str) -> None:
    done = locust("--list", env=plain_env(**{name: value}))
    assert done.returncode != 0 and name in done.stderr
