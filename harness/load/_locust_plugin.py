"""Locust-side recorder of harness.load: every request to a samples CSV, a live JSON-lines feed, a deadline.

Locust loads this file beside the user's locustfile (`-f user.py,<this file>`), in Locust's own
process. The harness never imports it: it imports locust, whose gevent monkey-patching must stay
out of the harness process. It does nothing unless HARNESS_LOAD_RUN_DIR is set, so a plain
`locust -f` that happens to load it is unaffected.

Writes, in the run directory:
- `samples.csv` (standalone) or `samples-<pid>.csv` (each worker): one row per request, in whole
  rows at least once a second, so a killed run leaves a readable file;
- `live.jsonl` (standalone or master): one JSON object a second for the progress display, one
  more as the test stops (users still counted) and a last one with the final totals at quit;
- `started` when the test starts, and the final `<csv prefix>_stats.csv` when Locust quits
  (Locust's periodic writer can miss the last second);
- `cpu.jsonl`: one line each time Locust's own monitor (every 10 s) reports this process above 90 %
  CPU (its `cpu_warning` event, the one behind "CPU usage above 90%!").

It also applies two settings of the harness to any locustfile: HARNESS_RATE_PER_USER makes every user
class wait with Locust's own `constant_throughput(rate)` (the open-model target rate spread over the
users), and the master (or standalone process) follows the user count the harness writes into
HARNESS_LOAD_TARGET_FILE mid-run (capacity steps) with `runner.start(users, spawn_rate)`, the call
Locust's web UI makes to change a running test.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import re
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import constant_throughput, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from harness.files import atomic_write

COLUMNS = ("timestamp", "name", "method", "status", "latency_ms", "tier", "ok", "response_length", "error")
TICK_S = 1.0  # flush and live-feed interval
MAX_BUFFERED_ROWS = 50_000  # flush early under heavy load, so memory stays small
LIVE_WINDOW_TICKS = {"local": 1, "master": 3}  # the master hears from workers every 3 s
MAX_ERROR_CHARS = 300
TARGET_POLL_S = 0.25  # how soon a new capacity step's user count reaches Locust
_TIER_IN_NAME = re.compile(r"\[([^\]]+)\]")
logger = logging.getLogger("harness.load.recorder")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _csv_field(text: str) -> str:
    """One CSV field, quoted as the csv module would when it needs to be."""
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


class SampleWriter:
    """Buffers one CSV line per request and writes whole lines with one write() per flush.

    Lines are formatted by hand, with the quoted name, method and tier cached: the csv module
    would cost several times as much per request.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._lines: list[str] = [",".join(COLUMNS) + "\n"]
        self._fields: dict[tuple[str, str], str] = {}  # (name, method) -> "name,method" as CSV
        self._tiers: dict[str, str] = {}  # name or context tier -> tier as CSV
        self.flush()

    def _name_method(self, name: str, method: str) -> str:
        fields = self._fields[(name, method)] = f"{_csv_field(name)},{_csv_field(method)}"
        return fields

    def _tier(self, name: str, tier: str | None) -> str:
        key = tier if tier is not None else "\0" + name
        cached = self._tiers.get(key)
        if cached is None:
            match = _TIER_IN_NAME.search(name) if tier is None else None
            cached = self._tiers[key] = _csv_field(tier if tier is not None else match.group(1) if match else "")
        return cached

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int,
                   response: Any = None, context: Any = None, exception: BaseException | None = None,
                   start_time: float | None = None, **_: Any) -> None:
        if start_time is None:  # custom clients may not pass it
            start_time = time.time() - (response_time or 0) / 1000
        name_method = self._fields.get((name, request_type)) or self._name_method(name, request_type)
        tier = self._tier(name, context.get("tier") if context else None)
        status = getattr(response, "status_code", 0) or 0
        if exception is None:
            self._lines.append(f"{start_time:.6f},{name_method},{status},{response_time or 0:.3f},{tier},True,"
                               f"{response_length or 0},\n")
        else:
            error = _csv_field(f"{type(exception).__name__}: {exception}".replace("\n", " ")[:MAX_ERROR_CHARS])
            self._lines.append(f"{start_time:.6f},{name_method},{status},{response_time or 0:.3f},{tier},False,"
                               f"{response_length or 0},{error}\n")
        if len(self._lines) >= MAX_BUFFERED_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            data, self._lines = "".join(self._lines), []
            _write_all(self._fd, data.encode())


def _percentile(histogram: dict[int, int], count: int, q: float) -> float:
    """Locust-style percentile of a {rounded ms: count} histogram."""
    rank, seen = q * count, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return float(value)
    return 0.0


class LiveFeed:
    """One line a second: rps, error rate and latency over the last window, from Locust's own stats."""

    def __init__(self, path: Path, environment: Environment, window_ticks: int) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._environment = environment
        self._history: deque[tuple[float, int, int, dict[int, int]]] = deque(maxlen=window_ticks + 1)
        self._history.append((time.time(), 0, 0, {}))  # so the first line covers the time since start-up

    def tick(self) -> None:
        runner, total = self._environment.runner, self._environment.stats.total
        now = time.time()
        self._history.append((now, total.num_requests, total.num_failures, dict(total.response_times)))
        then, requests0, failures0, hist0 = self._history[0]
        requests, failures = total.num_requests - requests0, total.num_failures - failures0
        window = {k: v - hist0.get(k, 0) for k, v in total.response_times.items() if v > hist0.get(k, 0)}
        entry = {"ts": round(now, 3), "rps": round(requests / (now - then), 2) if now > then else 0.0,
                 "error_rate": round(failures / requests, 4) if requests else 0.0,
                 "p50": _percentile(window, requests, 0.5), "p99": _percentile(window, requests, 0.99),
                 "users": runner.user_count if runner else 0, "window_requests": requests,
                 "requests": total.num_requests, "failures": total.num_failures}
        _write_all(self._fd, (json.dumps(entry) + "\n").encode())


class Recorder:
    """What this Locust process records, and the watchdogs that keep it bounded."""

    def __init__(self, environment: Environment, run_dir: Path) -> None:
        runner = environment.runner
        self.environment, self.run_dir = environment, run_dir
        self.role = ("worker" if isinstance(runner, WorkerRunner)
                     else "master" if isinstance(runner, MasterRunner) else "local")
        name = f"samples-{os.getpid()}.csv" if self.role == "worker" else "samples.csv"
        self.samples = None if self.role == "master" else SampleWriter(run_dir / name)  # masters send nothing
        self.live = (None if self.role == "worker"
                     else LiveFeed(run_dir / "live.jsonl", environment, LIVE_WINDOW_TICKS[self.role]))
        self.parent_pid = int(os.environ.get("HARNESS_LOAD_PARENT_PID", "0"))
        deadline_s = float(os.environ.get("HARNESS_LOAD_DEADLINE_S", "0"))
        self.deadline = time.monotonic() + deadline_s if deadline_s > 0 and self.role != "worker" else None
        self.max_ticks = int(deadline_s / TICK_S) + 120 if deadline_s > 0 else 100_000_000
        self._terminating = False

    def run(self) -> None:
        """Every tick: flush samples, write the live line, stop the run if the harness died or time is up."""
        for _ in range(self.max_ticks):
            gevent.sleep(TICK_S)
            self.flush()
            self.tick_live()
            if self.parent_pid and os.getppid() != self.parent_pid:
                self._terminate("the harness process that started this run is gone")
            elif self.deadline is not None and time.monotonic() > self.deadline:
                self._terminate("the run is past its deadline (HARNESS_LOAD_DEADLINE_S)")

    def _terminate(self, why: str) -> None:
        if not self._terminating:  # Locust's own SIGTERM handler stops users, writes stats and exits
            self._terminating = True
            logger.warning("stopping: %s", why)
            os.kill(os.getpid(), signal.SIGTERM)

    def started(self) -> None:
        if self.role != "worker":
            (self.run_dir / "started").write_text(f"{time.time():.6f}\n")

    def flush(self) -> None:
        if self.samples is not None:
            self.samples.flush()

    def tick_live(self) -> None:
        if self.live is not None:
            self.live.tick()

    def finish(self) -> None:
        """At quit: the last samples, a last live line (the final totals), Locust's final stats CSV."""
        self.flush()
        self.tick_live()
        prefix = getattr(self.environment.parsed_options, "csv_prefix", None)
        if self.role != "worker" and prefix:
            path = Path(f"{prefix}_stats.csv")
            text = io.StringIO(newline="")
            StatsCSV(self.environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(text))
            atomic_write(path, text.getvalue())


def apply_rate(environment: Environment, per_user: float) -> None:
    """Every user class waits with constant_throughput(per_user): the rate replaces the think time.

    Each user also starts at its own random moment within one period (1 / per_user s). Locust spawns
    the users of one spawn_rate second together, and constant_throughput keeps each user on the phase
    it started on, so without this every user of a run fired in the same few milliseconds each period:
    30 users at 30 requests/s were 30 chats at once every second (measured: all in one 100 ms slice),
    not the steady 30 requests/s the rate states, and the mesh met 30 times the concurrency."""
    period = 1.0 / per_user
    for user_class in environment.user_classes:
        user_class.wait_time = constant_throughput(per_user)
        user_class.on_start = _after_a_random_phase(user_class.on_start, period)


def _after_a_random_phase(on_start: Any, period: float) -> Any:
    def started(user: Any) -> None:
        gevent.sleep(random.uniform(0.0, period))
        # constant_pacing (behind constant_throughput) paces from `_cp_last_run`, which Locust 2.47 sets when
        # the user is made (locust/user/users.py, "used by constant_pacing wait_time"): left there, the next
        # wait takes the offset back and the user returns to the common phase.
        user._cp_last_run = time.perf_counter()
        on_start(user)

    return started


def follow_target(environment: Environment, path: Path) -> None:
    """Master or standalone: when the harness writes {"users": N, "spawn_rate": R}, run N users."""
    seen: tuple[int, float] | None = None
    while True:
        gevent.sleep(TARGET_POLL_S)
        try:
            target = json.loads(path.read_text())
            wanted = (int(target["users"]), float(target["spawn_rate"]))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as exc:  # written atomically: a bad file is a bug
            logger.error("ignoring %s: %s", path, exc)
            continue
        runner = environment.runner
        if wanted != seen and runner is not None and runner.state in ("spawning", "running"):
            seen = wanted
            logger.info("target from the harness: %d users at %g/s", *wanted)
            runner.start(*wanted)


def _record_cpu_warning(path: Path, environment: Environment, cpu_usage: float, **_: Any) -> None:
    line = json.dumps({"ts": round(time.time(), 3), "pid": os.getpid(), "cpu_percent": cpu_usage})
    with open(path, "a") as handle:  # rare (at most every 10 s per process): plain appends suffice
        handle.write(line + "\n")


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    run_dir = os.environ.get("HARNESS_LOAD_RUN_DIR")
    if not run_dir:
        return
    per_user = os.environ.get("HARNESS_RATE_PER_USER")
    if per_user:
        apply_rate(environment, float(per_user))
    cpu_log = Path(run_dir) / "cpu.jsonl"
    environment.events.cpu_warning.add_listener(lambda **kw: _record_cpu_warning(cpu_log, **kw))
    target = os.environ.get("HARNESS_LOAD_TARGET_FILE")
    if target and not isinstance(environment.runner, WorkerRunner) and environment.shape_class is None:
        gevent.spawn(follow_target, environment, Path(target))
    recorder = Recorder(environment, Path(run_dir))
    if recorder.samples is not None:
        environment.events.request.add_listener(recorder.samples.on_request)
    environment.events.test_start.add_listener(lambda **_: recorder.started())
    environment.events.test_stopping.add_listener(lambda **_: recorder.tick_live())  # users still counted
    environment.events.test_stop.add_listener(lambda **_: recorder.flush())
    environment.events.quit.add_listener(lambda **_: recorder.finish())
    gevent.spawn(recorder.run)
