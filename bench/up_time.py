"""Time from `harness up` to ready: up() returning, first 200 through the ingress, Prometheus scraping all.

Three runs with `down` between. Watcher threads start with up() (t0 = just before the call) and poll
the daemon's status socket (every 50 ms), the ingress with POST /api/v1/chat (every 20 ms) and
Prometheus' /api/v1/targets (every 100 ms); /proc start times, daemon.json and Prometheus' log give
where the time goes. Run: .venv/bin/python bench/up_time.py
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (CHAT_BODY, INGRESS_HOST, STATE_ROOT, ForeignLoad, Verdict, bench_settings, boot_time_wall,
                     cpu_seconds, kind_of, mesh_processes, print_table, print_verdicts, process_start_wall, summarize,
                     wait_for_quiet, write_results)
from harness.errors import HarnessError
from harness.mesh.loader import declared_model
from harness.platforms.local.control import request
from harness.platforms.local.daemon import DAEMON_FILE
from harness.platforms.local.launch import MeshProcesses
from harness.platforms.local.platform import LocalPlatform

REPEATS = 3
TARGET_S = 5.0
WATCH_S = 60.0  # every watcher gives up after this long
_PROM_TS = re.compile(r'^ts=(\S+) .*msg="([^"]+)"', re.M)


def parse_time(text: str) -> float:
    """RFC 3339 with up to nanoseconds (Prometheus, Go) -> epoch seconds."""
    match = re.match(r"(.*?T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        raise ValueError(text)
    base, frac, zone = match.groups()
    stamp = datetime.fromisoformat(base + ("+00:00" if zone == "Z" else zone)).timestamp()
    return stamp + (float(frac) if frac else 0.0)


class Watcher(threading.Thread):
    interval_s = 0.05

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.done_at: float | None = None
        self.attempts = 0

    def run(self) -> None:
        deadline = time.monotonic() + WATCH_S
        while not self.stop.is_set() and self.done_at is None and time.monotonic() < deadline:
            self.attempts += 1
            self.poll()
            time.sleep(self.interval_s)

    def poll(self) -> None:
        raise NotImplementedError


class StatusWatcher(Watcher):
    """Readiness as the daemon reports it, and every push it records as last_push."""

    def __init__(self, socket: Path) -> None:
        super().__init__()
        self.socket = socket
        self.first: dict[str, float] = {}
        self.pushes: dict[float, str] = {}

    def poll(self) -> None:
        try:
            status = request(self.socket, {"op": "status"}, timeout_s=1)
        except (HarnessError, OSError, ValueError):
            return
        now = time.time()
        self.first.setdefault("control socket answers", now)
        flags = {f"pod {p['name']} ready": p["ready"] for p in status["pods"]}
        flags |= {"gateway ready": status["gateway"]["ready"], "prometheus ready": status["prometheus"]["ready"],
                  "status up": status["up"]}
        for name, value in flags.items():
            if value:
                self.first.setdefault(name, now)
        if status["last_push"]["at"]:
            self.pushes[status["last_push"]["at"]] = status["last_push"]["reason"]
        if status["up"]:
            self.done_at = now


class IngressWatcher(Watcher):
    interval_s = 0.02

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.statuses: dict[str, int] = {}

    def poll(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("POST", "/api/v1/chat", body=CHAT_BODY,
                         headers={"host": INGRESS_HOST, "content-type": "application/json"})
            code = str(conn.getresponse().status)
        except OSError as exc:
            code = type(exc).__name__
        finally:
            conn.close()
        self.statuses[code] = self.statuses.get(code, 0) + 1
        if code == "200":
            self.done_at = time.time()


class PrometheusWatcher(Watcher):
    """Done when every expected target is health "up" with a lastScrape after t0."""

    interval_s = 0.1

    def __init__(self, port: int, expected: int, t0: float) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{port}/api/v1/targets?state=active"
        self.expected, self.t0 = expected, t0
        self.first_scrape: dict[str, float] = {}
        self.first_seen: float | None = None  # discovery handed the targets to the scrape manager

    def poll(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=1) as response:
                targets = json.load(response)["data"]["activeTargets"]
        except (OSError, ValueError, KeyError):
            return
        now = time.time()
        if targets and self.first_seen is None:
            self.first_seen = now
        for t in targets:
            scraped = parse_time(t["lastScrape"]) if t["lastScrape"][:4] > "2000" else 0.0
            if t["health"] == "up" and scraped > self.t0:
                self.first_scrape.setdefault(t["scrapeUrl"], scraped)
        if len(targets) >= self.expected and len(self.first_scrape) >= self.expected:
            self.done_at = now


def prometheus_log_times(log: Path) -> dict[str, float]:
    wanted = {"Server is ready to receive web requests.": "prometheus log: ready",
              "Completed loading of configuration file": "prometheus log: config loaded"}
    out: dict[str, float] = {}
    for stamp, message in _PROM_TS.findall(log.read_text(errors="replace") if log.exists() else ""):
        if message in wanted:
            out.setdefault(wanted[message], parse_time(stamp))
    return out


def one_run() -> dict[str, Any]:
    """One up() with watchers started at t0, then down(); the timeline of events in seconds from t0."""
    settings = bench_settings("up_time")
    platform = LocalPlatform(settings)
    t0 = time.time()
    status_w = StatusWatcher(platform.socket)
    ingress_w = IngressWatcher(settings.ingress_port)
    prom_w = PrometheusWatcher(settings.prometheus_port, 10**6, t0)  # count fixed once status is known
    for w in (status_w, ingress_w, prom_w):
        w.start()
    try:
        status = platform.up()
        t_up = time.time()
        cpu = startup_cpu(platform, status, t_up - t0)
        prom_w.expected = 2 * len(status["pods"]) + 1  # each pod's sidecar and app, plus the ingress
        for w in (ingress_w, prom_w):
            w.join(WATCH_S)
        status_w.stop.set()
        status_w.join(5)
        timeline = collect_timeline(platform, status, t0, t_up, status_w, ingress_w, prom_w)
        timeline["cpu_until_up"] = cpu
    finally:
        for w in (status_w, ingress_w, prom_w):
            w.stop.set()
        platform.down()
    return timeline


def startup_cpu(platform: LocalPlatform, status: dict[str, Any], elapsed_s: float) -> dict[str, Any]:
    """CPU seconds each kind of process had used when up() returned: is start-up CPU-bound on 2 cores?"""
    by_kind: dict[str, float] = {}
    for name, pid in mesh_processes(platform, status).items():
        by_kind[kind_of(name)] = round(by_kind.get(kind_of(name), 0.0) + (cpu_seconds(pid) or 0.0), 2)
    total = round(sum(by_kind.values()), 2)
    return {"by_kind_s": by_kind, "total_s": total, "wall_s": round(elapsed_s, 2),
            "share_of_2_cores": round(total / (2 * elapsed_s), 2)}


def collect_timeline(platform: LocalPlatform, status: dict[str, Any], t0: float, t_up: float,
                     status_w: StatusWatcher, ingress_w: IngressWatcher, prom_w: PrometheusWatcher) -> dict[str, Any]:
    boot = boot_time_wall()
    events: dict[str, float] = {}
    daemon_pid = int(status["daemon_pid"])
    forked = process_start_wall(daemon_pid, boot)
    if forked:
        events["daemon process forked (/proc, 10 ms)"] = forked
    daemon_info = json.loads((platform.state_dir / DAEMON_FILE).read_text())
    events["daemon main() entered (daemon.json)"] = daemon_info["started_at"]
    starts = {name: process_start_wall(pid, boot) for name, pid in mesh_processes(platform, status).items()
              if name != "daemon"}
    known = {k: v for k, v in starts.items() if v is not None}
    events["first child started (prometheus)"] = known.get("prometheus", min(known.values()))
    events["last child started"] = max(known.values())
    events.update(prometheus_log_times(platform.state_dir / "logs" / "prometheus.log"))
    events.update(status_w.first)
    pod_ready = [v for k, v in status_w.first.items() if k.startswith("pod ")]
    if pod_ready:
        events["first pod ready"], events["last pod ready"] = min(pod_ready), max(pod_ready)
    events = {k: v for k, v in events.items() if not k.startswith("pod ")}
    events["(a) up() returned"] = t_up
    if ingress_w.done_at:
        events["(b) first 200 through the ingress"] = ingress_w.done_at
    if prom_w.first_seen:
        events["prometheus: targets first listed in /api/v1/targets"] = prom_w.first_seen
    if prom_w.first_scrape:
        events["prometheus: first target scraped (lastScrape)"] = min(prom_w.first_scrape.values())
        events["prometheus: last target's first scrape (lastScrape)"] = max(prom_w.first_scrape.values())
    if prom_w.done_at:
        events["(c) every target up, seen by the watcher"] = prom_w.done_at
    relative = {k: round(v - t0, 3) for k, v in sorted(events.items(), key=lambda kv: kv[1])}
    prom_start = known.get("prometheus")
    return {
        "timeline_s": relative,
        "a_up_returned_s": relative["(a) up() returned"],
        "b_first_200_s": relative.get("(b) first 200 through the ingress"),
        "c_prometheus_all_up_s": relative.get("(c) every target up, seen by the watcher"),
        "prometheus_first_scrape_after_its_start_s": (
            round(min(prom_w.first_scrape.values()) - prom_start, 3) if prom_w.first_scrape and prom_start else None),
        "pushes_seen": [{"at_s": round(at - t0, 3), "reason": r} for at, r in sorted(status_w.pushes.items())],
        "ingress_poll_statuses": ingress_w.statuses,
        "targets_expected": prom_w.expected, "targets_scraped": len(prom_w.first_scrape),
    }


def startup_breakdown(repeats: int = 3) -> dict[str, Any]:
    """The daemon's serial start-up steps timed on their own, mesh down (same calls as up() and the daemon)."""
    steps: dict[str, list[float]] = {}

    def timed(name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = action()
        steps.setdefault(name, []).append(time.perf_counter() - started)
        return result

    base = bench_settings("up_time")
    scratch = STATE_ROOT / "up_time-replay"
    settings = type(base)(**{**base.__dict__, "state_dir": scratch})
    cold_cli = "from harness.mesh.loader import declared_model; declared_model()"
    for _ in range(repeats):
        shutil.rmtree(scratch, ignore_errors=True)
        timed("CLI in a fresh interpreter: import + declared_model() strict, cold (up() in this process: warm)",
              lambda: subprocess.run([sys.executable, "-c", cold_cli], check=True))
        timed("declared_model() strict, warm (what up() pays here from the 2nd run on)", declared_model)
        timed("daemon: fresh interpreter + import harness.platforms.local.daemon", lambda: subprocess.run(
            [sys.executable, "-c", "import harness.platforms.local.daemon"], check=True))
        model = timed("daemon: declared_model(validate=False)", lambda: declared_model(validate=False))
        mesh = timed("daemon: MeshProcesses(): CA, workload certs, controller", lambda: MeshProcesses(settings, model))
        timed("daemon: controller.push('initial'): translate + write every proxy",
              lambda: mesh.controller.push("initial"))
    shutil.rmtree(scratch, ignore_errors=True)
    return {k: summarize([v * 1000 for v in values], 1) for k, values in steps.items()}


def spread(values: list[float | None]) -> dict[str, float | None]:
    real = [v for v in values if v is not None]
    if len(real) < len(values) or not real:
        return {"median": None, "min": min(real) if real else None, "max": None, "missing": len(values) - len(real)}
    return {"median": round(statistics.median(real), 3), "min": min(real), "max": max(real)}


def main() -> None:
    quiet = wait_for_quiet()
    foreign = ForeignLoad()
    runs = []
    for index in range(REPEATS):
        runs.append(one_run())
        print(f"\n== run {index + 1}: timeline (s from the up() call)")
        print_table(["event", "t (s)"], list(runs[-1]["timeline_s"].items()))
        print(f"CPU used by the mesh until up() returned: {runs[-1]['cpu_until_up']}")
        time.sleep(2.0)  # ports and CPU settle after down
    figures = {key: spread([r[key] for r in runs]) for key in
               ("a_up_returned_s", "b_first_200_s", "c_prometheus_all_up_s",
                "prometheus_first_scrape_after_its_start_s")}
    print("\n== over runs (s)")
    print_table(["figure", "median", "min", "max"], [[k, v["median"], v["min"], v["max"]] for k, v in figures.items()])
    verdicts = [Verdict(label, f"{figures[key]['median']} s median", f"<= {TARGET_S} s",
                        figures[key]["median"] is not None and figures[key]["median"] <= TARGET_S)
                for key, label in (("a_up_returned_s", "(a) up() returns"),
                                   ("b_first_200_s", "(b) first 200 through the ingress"),
                                   ("c_prometheus_all_up_s", "(c) Prometheus scraped every target"))]
    breakdown = startup_breakdown()
    print("\n== the daemon's serial start-up steps on their own, mesh down (ms)")
    print_table(["step", "min", "p50", "max"], [[k, v["min"], v["p50"], v["max"]] for k, v in breakdown.items()])
    print_verdicts(verdicts)
    path = write_results("up_time", {"repeats": REPEATS, "target_s": TARGET_S, "figures": figures, "runs": runs,
                                     "startup_steps_ms": breakdown,
                                     "machine_before": quiet, "other_load": foreign.result(),
                                     "verdicts": [v.__dict__ for v in verdicts]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
