"""An open-model target rate through Locust's own constant_throughput, and user counts the harness sets mid-run.

Locust 2.47 `locust/user/wait_time.py`: constant_throughput(r) = constant_pacing(1 / r), a wait that
makes each user start at most r tasks a second; `runners.py` LocalRunner.start(user_count, spawn_rate)
on a running test re-balances the users (what the web UI's edit does).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.files import atomic_write
from harness.load import LoadRun
from harness.load._command import ENV_RATE_PER_USER, ENV_TARGET_FILE, TARGET_FILE, child_env
from harness.load._spec import NUMBER_RULES
from tests.load.loadkit import ChatTarget, chat_spec


def test_rate_is_a_row_of_the_one_table_of_load_limits_and_bad_rates_name_the_field(target: ChatTarget) -> None:
    assert "rate" in NUMBER_RULES
    for bad in (0, -5, math.nan, math.inf, True, "10"):
        with pytest.raises(ConfigError) as caught:
            chat_spec(target, think_time_s=None, rate=bad)
        assert caught.value.field == "rate" and "requests per second" in caught.value.message


def test_a_rate_and_a_think_time_together_are_refused(target: ChatTarget) -> None:
    with pytest.raises(ConfigError) as caught:
        chat_spec(target, rate=10.0)  # chat_spec sets a think time of (0, 0)
    assert caught.value.field == "rate" and "not both" in caught.value.message


def test_each_user_gets_its_share_of_the_rate_and_the_target_file_in_its_environment(
        target: ChatTarget, tmp_path: Path) -> None:
    env = child_env(chat_spec(target, think_time_s=None, users=4, rate=20.0), tmp_path,
                    base={ENV_RATE_PER_USER: "999"})
    assert float(env[ENV_RATE_PER_USER]) == 5.0
    assert env[ENV_TARGET_FILE] == str(tmp_path / TARGET_FILE)
    assert ENV_RATE_PER_USER not in child_env(chat_spec(target), tmp_path, base={ENV_RATE_PER_USER: "999"})


def test_a_load_at_a_fixed_rate_sends_no_more_than_the_rate(target: ChatTarget, tmp_path: Path) -> None:
    """Without the rate these 4 users send thousands of requests in 4 s (no think time at all)."""
    spec = chat_spec(target, think_time_s=None, users=4, rate=20.0, duration_s=4)
    with LoadRun(spec) as load:
        load.start(tmp_path / "run")
        load.wait(spec.duration_s + 30)
    sent = len(load.samples())
    # constant_throughput lets each user start at most one request per 1/5 s from its first one
    assert 20 <= sent <= 20 * 4 + 4


def test_the_user_count_follows_what_the_harness_writes_mid_run(target: ChatTarget, tmp_path: Path) -> None:
    spec = chat_spec(target, think_time_s=None, users=2, rate=10.0, duration_s=8)
    with LoadRun(spec) as load:
        load.start(tmp_path / "run")
        load.wait_started()
        atomic_write(load.run_dir / TARGET_FILE, json.dumps({"users": 6, "spawn_rate": 50}))
        users_seen: set[int] = set()
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline and 6 not in users_seen:
            point = load.live()
            if point is not None:
                users_seen.add(point.users)
            time.sleep(0.2)
        load.stop()
    assert 6 in users_seen
