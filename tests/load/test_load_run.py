"""LoadRun against a real chat target: samples, stats, live feed, stop by PID, a killed run, a shape."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import LoadError
from harness.load import SAMPLE_COLUMNS, LoadRun, LoadSpec
from tests.load.loadkit import ChatTarget, alive, chat_spec

WAIT_S = 60.0  # generous upper bounds: these only keep a broken run from hanging the suite
POLL_S = 0.05


@dataclass
class Finished:
    run: LoadRun
    spec: LoadSpec
    exit_code: int
    target: ChatTarget


@pytest.fixture(scope="module")
def finished(module_target: ChatTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Finished]:
    """One standalone run of the AI-agent mix (3 users, one per tier, no think time) that ended by itself."""
    spec = chat_spec(module_target)
    with LoadRun(spec) as run:
        run.start(tmp_path_factory.mktemp("load"))
        run.wait_started(WAIT_S)
        code = run.wait(spec.duration_s + WAIT_S)
    yield Finished(run, spec, code, module_target)


def test_a_run_ends_by_itself_with_exit_code_0_even_with_failed_requests(finished: Finished) -> None:
    assert finished.exit_code == 0
    assert not finished.run.running


def test_samples_csv_has_the_documented_columns_and_one_row_per_request(finished: Finished) -> None:
    path = finished.run.run_dir / "samples.csv"
    assert path.read_text().splitlines()[0].split(",") == list(SAMPLE_COLUMNS)
    frame = finished.run.samples()
    assert list(frame.columns) == list(SAMPLE_COLUMNS)
    answered = finished.target.answered.total
    # Each request the target answered is a row, but for those cut off in flight when load stopped.
    assert answered - finished.spec.users <= len(frame) <= answered
    assert frame["timestamp"].is_monotonic_increasing


def test_samples_carry_status_tier_verdict_and_error_of_each_request(finished: Finished) -> None:
    frame = finished.run.samples()
    assert set(frame["tier"]) == {"standard", "premium", "canary"}
    assert set(frame["name"]) == {"chat [standard]", "chat [premium]", "chat [canary]"}
    canary, others = frame[frame["tier"] == "canary"], frame[frame["tier"] != "canary"]
    assert set(canary["status"]) == {503} and not canary["ok"].any() and canary["error"].str.contains("503").all()
    assert set(others["status"]) == {200} and others["ok"].all() and (others["error"] == "").all()
    assert (frame["method"] == "POST").all() and (frame["latency_ms"] >= 0).all()
    assert (frame.loc[frame["ok"], "response_length"] > 0).all()


def test_samples_agree_with_what_the_target_saw_per_tier(finished: Finished) -> None:
    seen = finished.target.answered.tiers
    recorded = finished.run.samples()["tier"].value_counts()
    for tier in ("standard", "premium", "canary"):
        assert seen[tier] - 1 <= recorded[tier] <= seen[tier]


def test_every_request_carries_the_ingress_host_header(finished: Finished) -> None:
    assert set(finished.target.answered.hosts) == {"ai-agent-service.parallel-ai.svc.cluster.local"}


def test_stats_from_locust_match_the_samples_counts(finished: Finished) -> None:
    stats = finished.run.stats()
    assert stats.locust is not None
    frame = finished.run.samples()
    assert stats.locust.total.requests == stats.samples.total.requests == len(frame)
    assert stats.locust.total.failures == stats.samples.total.failures == int((~frame["ok"]).sum())
    for name, by_samples in stats.samples.by_name.items():
        assert stats.locust.by_name[name].requests == by_samples.requests
    total = stats.samples.total
    assert total.rps > 0 and total.p50_ms is not None and total.p50_ms <= total.p95_ms <= total.p99_ms  # type: ignore[operator]


def test_the_live_feed_has_a_line_a_second_with_rate_errors_latency_and_users(finished: Finished) -> None:
    lines = [json.loads(line) for line in (finished.run.run_dir / "live.jsonl").read_text().splitlines()]
    assert lines and {"ts", "rps", "error_rate", "p50", "p99", "users"} <= set(lines[0])
    assert max(line["users"] for line in lines) == finished.spec.users, lines
    busy = [line for line in lines if line["window_requests"]]
    assert busy, lines
    for line in busy:
        assert 0 <= line["error_rate"] <= 1 and line["rps"] > 0 and line["p99"] >= line["p50"], line
    assert any(0 < line["error_rate"] < 1 for line in busy), lines  # canaries fail, the others do not
    stats = finished.run.stats().locust
    assert stats is not None and lines[-1]["requests"] == stats.total.requests, lines[-1]  # the last line: totals
    point = finished.run.live()
    assert point is not None and point.requests == lines[-1]["requests"]


def test_stop_leaves_no_locust_process(finished: Finished) -> None:
    finished.run.stop()
    assert finished.run.pids and not any(alive(pid) for pid in finished.run.pids)


def _wait_for_rows(path: Path, rows: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while not (path.exists() and path.read_text().count("\n") > rows):
        assert time.monotonic() < deadline, f"no {rows} samples in {path}"
        time.sleep(POLL_S)


def test_a_run_killed_midway_leaves_readable_samples(target: ChatTarget, tmp_path: Path) -> None:
    with LoadRun(chat_spec(target, duration_s=60)) as run:
        run.start(tmp_path)
        _wait_for_rows(tmp_path / "samples.csv", 100)
        os.kill(run.pids[0], signal.SIGKILL)
        assert run.wait(WAIT_S) == -signal.SIGKILL
    frame = run.samples()
    assert len(frame) >= 100 and list(frame.columns) == list(SAMPLE_COLUMNS)
    assert not frame.isna().any().any()
    assert not alive(run.pids[0])


def test_stopping_a_running_load_ends_every_process_and_keeps_its_samples(target: ChatTarget, tmp_path: Path) -> None:
    run = LoadRun(chat_spec(target, duration_s=60))
    run.start(tmp_path)
    try:
        run.wait_started(WAIT_S)
        _wait_for_rows(tmp_path / "samples.csv", 10)
    finally:
        run.stop(grace_s=10)
    assert not run.running and not any(alive(pid) for pid in run.pids)
    assert run.stats().samples.total.requests == len(run.samples()) >= 10


def test_the_context_manager_stops_load_when_the_body_raises(target: ChatTarget, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), LoadRun(chat_spec(target, duration_s=60)) as run:
        run.start(tmp_path)
        raise RuntimeError("boom")
    assert not any(alive(pid) for pid in run.pids)


def test_a_shaped_run_follows_the_shape_and_ends_by_itself(target: ChatTarget, tmp_path: Path) -> None:
    spec = chat_spec(target, shape="ramp", users=3, spawn_rate=10, duration_s=3)
    with LoadRun(spec) as run:
        run.start(tmp_path)
        assert run.wait(spec.duration_s + WAIT_S) == 0
    users = [json.loads(line)["users"] for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    assert 0 < max(users) <= 3 and len(run.samples()) > 0
    assert "ignored" not in (tmp_path / "locust.log").read_text()


def test_a_locustfile_that_fails_to_import_is_reported_in_locusts_words(target: ChatTarget, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('this locustfile is broken on purpose')\n")
    with LoadRun(chat_spec(target, locustfile=broken)) as run:
        run.start(tmp_path / "run")
        with pytest.raises(LoadError, match="broken on purpose"):
            run.wait_started(WAIT_S)


def test_a_run_cannot_be_started_twice(target: ChatTarget, tmp_path: Path) -> None:
    with LoadRun(chat_spec(target)) as run:
        run.start(tmp_path)
        with pytest.raises(LoadError, match="already started"):
            run.start(tmp_path)


def test_a_directory_holding_an_earlier_run_is_refused(target: ChatTarget, tmp_path: Path) -> None:
    (tmp_path / "samples.csv").write_text("old\n")
    with LoadRun(chat_spec(target)) as run, pytest.raises(LoadError, match="already holds a load run"):
        run.start(tmp_path)
    assert run.pids == ()


HARNESS_THAT_DIES = """
import os, sys, threading
from pathlib import Path
sys.path.insert(0, {tests!r})
from harness.load import LoadRun, LoadSpec
spec = LoadSpec(locustfile=Path({locustfile!r}), users=2, spawn_rate=10, duration_s=60, host={host!r})
run = LoadRun(spec)
def start():
    run.start(Path({run_dir!r}))
    run.wait_started(60)
if {from_thread!r}:
    starter = threading.Thread(target=start)
    starter.start()
    starter.join()
else:
    start()
print(*run.pids, flush=True)
os._exit(0)  # dies without stopping its load, as a SIGKILLed harness would
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # exited; reaping is up to its new parent


@pytest.mark.parametrize("from_thread", [False, True], ids=["started-by-main-thread", "started-by-another-thread"])
def test_load_does_not_outlive_the_harness_process_that_started_it(target: ChatTarget, tmp_path: Path,
                                                                    from_thread: bool) -> None:
    """Started from the main thread, Locust gets PR_SET_PDEATHSIG (SIGKILL): the kernel ends it with the
    harness. Linux ties that signal to the forking thread, so a load started from another thread goes
    without it; there the recorder plugin sees its parent change and stops Locust itself, saying why."""
    code = HARNESS_THAT_DIES.format(tests=str(Path(__file__).parent), locustfile=str(chat_spec(target).locustfile),
                                    host=target.url, run_dir=str(tmp_path), from_thread=from_thread)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S, check=True)
    pids = [int(pid) for pid in done.stdout.split()]
    deadline = time.monotonic() + WAIT_S
    while not all(_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"Locust {pids} still running without its harness"
        time.sleep(POLL_S)
    said_why = "the harness process that started this run is gone" in (tmp_path / "locust.log").read_text()
    assert said_why is from_thread  # the kernel's SIGKILL leaves Locust no time to say anything
