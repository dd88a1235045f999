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


def test_users_at_a_rate_start_at_their_own_phase_so_requests_are_spread_not_in_lockstep(
        target: ChatTarget, tmp_path: Path) -> None:
    """Locust spawns one spawn_rate second's users together and constant_throughput keeps each on the phase
    it started on: without a random first offset all 30 users fire in the same few ms every second, 30
    chats at once instead of the 30 requests/s the rate states (measured: one 100 ms slice held them all).
    With it the starts are uniform over the period: no 100 ms slice holds half of a second's requests
    (30 uniform starts over 10 slices put 15 in one with a chance below 1e-7)."""
    spec = chat_spec(target, think_time_s=None, users=30, rate=30.0, spawn_rate=1000.0, duration_s=4)
    with LoadRun(spec) as load:
        load.start(tmp_path / "run")
        load.wait(spec.duration_s + 30)
    stamps = sorted(load.samples()["timestamp"].astype(float))
    assert len(stamps) >= 60
    first = stamps[0] + 1.0  # past the first period, when every user has started
    slices: dict[int, int] = {}
    for stamp in stamps:
        if first <= stamp < first + 2.0:
            slices[int((stamp - first) * 10)] = slices.get(int((stamp - first) * 10), 0) + 1
    per_second = sum(slices.values()) / 2.0
    assert per_second >= 20 and max(slices.values()) < per_second / 2, slices
