"""locustfiles/ai_agent.py as a plain Locust file: `locust -f` runs it, headers and tiers as documented."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.load.loadkit import AI_AGENT, ROOT, ChatTarget

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
    done = locust("--headless", "-u", "3", "-r", "100", "-t", "4s", "--host", healthy_target.url, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(healthy_target.answered.tiers) == {"standard", "premium", "canary"}, done.stderr[-2000:]
    assert set(healthy_target.answered.hosts) == {"other.example.local"}


def test_plain_locust_refuses_a_target_outside_127_0_0_0_8() -> None:
    done = locust("--headless", "-u", "1", "-r", "1", "-t", "2s", "--host", "http://10.1.2.3:80")
    assert done.returncode != 0
    assert "refusing to send load to 'http://10.1.2.3:80'" in done.stderr


def test_a_bad_setting_stops_locust_naming_the_variable() -> None:
    done = locust("--headless", "-t", "1s", env=plain_env(HARNESS_TIER_WEIGHTS="gold=3"))
    assert done.returncode != 0 and "HARNESS_TIER_WEIGHTS='gold=3'" in done.stderr


@pytest.fixture
def load_ai_agent(monkeypatch: pytest.MonkeyPatch) -> Callable[..., ModuleType]:
    """Import a fresh ai_agent.py in this process with some environment (no gevent monkey-patching)."""
    monkeypatch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
    monkeypatch.syspath_prepend(str(AI_AGENT.parent))  # as Locust does, for `import shapes`
    for name in [n for n in os.environ if n.startswith("HARNESS_")]:
        monkeypatch.delenv(name)

    def load(**env: str) -> ModuleType:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        spec = importlib.util.spec_from_file_location("harness_test_ai_agent", AI_AGENT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def user_classes(module: ModuleType) -> dict[str, int]:
    """What Locust would run: the concrete user classes by name, with their weights."""
    from locust import User

    return {name: value.weight for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, User) and not value.abstract}


def test_the_default_mix_is_80_15_5_and_a_weight_of_zero_drops_that_tier(
        load_ai_agent: Callable[..., ModuleType]) -> None:
    assert user_classes(load_ai_agent()) == {"StandardUser": 80, "PremiumUser": 15, "CanaryUser": 5}
    assert user_classes(load_ai_agent(HARNESS_TIER_WEIGHTS="canary=0,premium=50")) == {"StandardUser": 80,
                                                                                        "PremiumUser": 50}


@pytest.mark.parametrize(("name", "value"), [("HARNESS_TIER_WEIGHTS", "gold=3"), ("HARNESS_TIER_WEIGHTS", "standard=x"),
                                             ("HARNESS_TIER_WEIGHTS", "standard=0,premium=0,canary=0"),
                                             ("HARNESS_THINK_TIME", "2,1"), ("HARNESS_THINK_TIME", "soon"),
                                             ("HARNESS_LOAD_SHAPE", "sawtooth")])
def test_each_bad_setting_is_an_error_naming_its_variable(load_ai_agent: Callable[..., ModuleType], name: str,
                                                           value: str) -> None:
    with pytest.raises(ValueError, match=name):
        load_ai_agent(**{name: value})


def test_think_time_is_a_range_or_one_constant(load_ai_agent: Callable[..., ModuleType]) -> None:
    ranged = load_ai_agent(HARNESS_THINK_TIME="0.5,2").StandardUser
    assert all(0.5 <= ranged.wait_time(None) <= 2 for _ in range(100))
    assert load_ai_agent(HARNESS_THINK_TIME="0").StandardUser.wait_time(None) == 0


def test_only_the_shape_harness_load_shape_names_is_runnable(load_ai_agent: Callable[..., ModuleType]) -> None:
    from locust import LoadTestShape

    def runnable(module: ModuleType) -> list[type]:
        return [v for v in vars(module).values()
                if isinstance(v, type) and issubclass(v, LoadTestShape) and not v.abstract]

    assert runnable(load_ai_agent()) == []
    (shape,) = runnable(load_ai_agent(HARNESS_LOAD_SHAPE="spike"))
    assert shape.__mro__[1].__name__ == "SpikeShape"
