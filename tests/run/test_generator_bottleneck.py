"""The load generator knows when it is the bottleneck.

Locust 2.47 (locust/runners.py monitor_cpu_and_memory) samples its own process every 10 s, fires the
`cpu_warning` event above CPU_WARNING_THRESHOLD = 90 and logs "CPU usage above 90%!". The harness
records those events (the recorder plugin's cpu.jsonl) and samples each Locust process itself from
/proc/<pid>/stat every second (proc(5): utime and stime, fields 14 and 15). Above 90 % in a judged
window the verdict is inconclusive (exit 3) with the advice to add workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.load._cpu import CPU_FILE, CpuSampler, read_cpu
from harness.platforms.fake import FakePlatform
from harness.run import generator
from tests.load.loadkit import ChatTarget
from tests.run.test_no_chaos_without_load import MARKER_MODULE


def test_the_sampler_reads_each_process_cpu_from_proc_as_psutil_does(tmp_path: Path) -> None:
    """Each point against psutil's own reading of the same process over the same interval (psutil is
    Locust's dependency and parses /proc independently); the share itself depends on the machine's load."""
    import psutil

    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<4: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(4)"])
    reference: list[tuple[float, float]] = []  # (monotonic, busy CPU s by psutil) at each sampling tick

    def roles() -> dict[int, str]:
        times = psutil.Process(busy.pid).cpu_times()
        reference.append((time.monotonic(), times.user + times.system))
        return {busy.pid: "standalone", idle.pid: "worker-0"}

    try:
        sampler = CpuSampler(roles, tmp_path / CPU_FILE, 0.5)
        sampler.start()
        time.sleep(2.2)
        sampler.stop()
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()
    points = list(read_cpu(tmp_path))
    busy_points = [p.percent for p in points if p.pid == busy.pid]
    idle_points = [p.percent for p in points if p.pid == idle.pid]
    expected = [100 * (c1 - c0) / (t1 - t0) for (t0, c0), (t1, c1) in zip(reference, reference[1:])]
    assert len(busy_points) == len(expected) >= 2
    for got, want in zip(busy_points, expected):
        assert abs(got - want) < 10, (busy_points, expected)
    assert max(idle_points) < 5 and min(busy_points) > max(idle_points)
    assert all(0 <= p.machine_percent <= 100 for p in points)


def write_points(run_dir: Path, points: list[tuple[float, int, str, float]]) -> None:
    (run_dir / CPU_FILE).write_text("".join(json.dumps({"ts": t, "pid": pid, "role": role, "percent": pct,
                                                         "machine_percent": 50.0}) + "\n"
                                            for t, pid, role, pct in points))


def test_a_window_whose_locust_averaged_above_90_percent_is_saturated_and_the_advice_is_to_add_workers(
        tmp_path: Path) -> None:
    write_points(tmp_path, [(t, 11, "standalone", 97.0 if 10 < t <= 20 else 40.0) for t in range(1, 31)])
    judged = generator.judge(tmp_path, {"baseline": (0, 10), "chaos": (10, 20), "recovery": (20, 30)}, workers=0)
    assert judged["saturated"] == ["chaos"]
    assert judged["windows"]["baseline"]["busiest_percent"] == 40.0
    reason = generator.inconclusive(judged)
    assert "chaos: standalone at 97% CPU" in reason and "add workers (`--workers 2`)" in reason


def test_locusts_own_warning_in_a_window_counts_even_when_the_seconds_average_lower(tmp_path: Path) -> None:
    write_points(tmp_path, [(t, 11, "master", 30.0) for t in range(1, 21)])
    (tmp_path / "cpu.jsonl").write_text(json.dumps({"ts": 15.0, "pid": 12, "cpu_percent": 95.0}) + "\n")
    judged = generator.judge(tmp_path, {"baseline": (0, 10), "chaos": (10, 20)}, workers=1)
    assert judged["saturated"] == ["chaos"] and judged["windows"]["chaos"]["locust_warnings"] == 1


def test_below_the_threshold_nothing_is_said(tmp_path: Path) -> None:
    write_points(tmp_path, [(t, 11, "standalone", 89.0) for t in range(1, 11)])
    judged = generator.judge(tmp_path, {"baseline": (0, 10)}, workers=0)
    assert judged["saturated"] == [] and generator.inconclusive(judged) is None


WARNS = """
import gevent
from locust import HttpUser, constant_throughput, events, task


class Chat(HttpUser):
    wait_time = constant_throughput(5)

    @task
    def chat(self):
        self.client.post("/api/v1/chat", json={"user_id": "u", "prompt": "p"}, name="chat",
                         headers={"x-user-id": "u", "traceparent": "00-%s-%s-01" % ("ab" * 16, "cd" * 8)})


@events.test_start.add_listener
def _warn_like_a_saturated_locust(environment, **_):
    def warn():
        while True:  # what Locust's own monitor fires above 90 % CPU (every 10 s there)
            environment.events.cpu_warning.fire(environment=environment, cpu_usage=99.0)
            gevent.sleep(0.5)
    gevent.spawn(warn)
"""


def test_a_run_whose_locust_warned_of_its_cpu_is_inconclusive_and_the_report_shows_the_generator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chat = ChatTarget(fail_header=None).start()
    try:
        (tmp_path / "h14_marker_action.py").write_text(MARKER_MODULE)
        (tmp_path / "warns.py").write_text(textwrap.dedent(WARNS))
        (tmp_path / "slos.yaml").write_text(
            "slos:\n  - {name: ok, source: client, template: availability, objective: 0.5, comparator: '>='}\n")
        document = {"title": "generator", "description": "t", "method": [{
            "type": "action", "name": "mark", "pauses": {"after": 1}, "provider": {
                "type": "python", "module": "h14_marker_action", "func": "inject",
                "arguments": {"marker": str(tmp_path / "m")}}}]}
        path = tmp_path / "plain.json"
        path.write_text(json.dumps(document))
        platform = FakePlatform(pods=[], declared=[], ingress_url=chat.url, ingress_host="h")
        monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: platform)
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in ("HARNESS_BASELINE_S", "HARNESS_RECOVERY_S", "HARNESS_WARMUP_S"):
            monkeypatch.setenv(name, "1")
        run_dir = tmp_path / "run"
        code = main(["run", str(path), "--report-dir", str(run_dir), "--no-progress", "--locustfile",
                     str(tmp_path / "warns.py"), "--users", "2", "--slo-file", str(tmp_path / "slos.yaml")])
    finally:
        chat.stop()
    journal = json.loads((run_dir / "journal.json").read_text())
    assert code == 3, journal["harness"].get("error")
    assert "add workers (`--workers 2`)" in journal["harness"]["inconclusive"]
    assert journal["harness"]["generator"]["windows"]["baseline"]["throughput_rps"] > 0
    assert "Load generator" in (run_dir / "report.html").read_text()
    assert "Load generator:" in (run_dir / "summary.md").read_text()
