"""`workers=N`: Locust's own master/worker mode on 127.0.0.1, samples per worker merged by samples()."""

from __future__ import annotations

from pathlib import Path

from harness.load import LoadRun
from tests.load.loadkit import ChatTarget, alive, chat_spec

WAIT_S = 60.0


def test_two_workers_run_under_one_master_and_their_samples_merge(target: ChatTarget, tmp_path: Path) -> None:
    spec = chat_spec(target, users=4, workers=2, duration_s=4)
    with LoadRun(spec) as run:
        run.start(tmp_path)
        assert run.wait(spec.duration_s + WAIT_S) == 0
    _master, *workers = run.pids
    assert len(workers) == 2 and not any(alive(pid) for pid in run.pids)
    files = sorted(p.name for p in tmp_path.glob("samples*.csv"))
    assert files == sorted(f"samples-{pid}.csv" for pid in workers)  # the master sends no requests
    per_file = [len(p.read_text().splitlines()) - 1 for p in tmp_path.glob("samples-*.csv")]
    assert all(rows > 0 for rows in per_file)
    frame = run.samples()
    assert len(frame) == sum(per_file) and frame["timestamp"].is_monotonic_increasing
    assert set(frame["tier"]) == {"standard", "premium", "canary"}
    answered = target.answered.total
    assert answered - spec.users <= len(frame) <= answered
    stats = run.stats()
    assert stats.samples.total.requests == len(frame)
    assert stats.locust is not None and 0 < stats.locust.total.requests <= len(frame)
    assert (tmp_path / "live.jsonl").read_text().strip()
