"""CPU of the load generator: each Locust process's share of one core, read from /proc/<pid>/stat.

A Locust process runs gevent on one thread, so it can use at most one core; near 100 % it, not the
mesh, limits the load and its latency figures (Locust itself warns above 90 %). The sampler writes
one JSON line per process per second into `generator_cpu.jsonl`, plus the machine's busy share
(/proc/stat), so a run's windows can be judged afterwards and a benchmark can say how much of the
machine Locust took.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.procfs import cpu_seconds, machine_jiffies

CPU_FILE = "generator_cpu.jsonl"
INTERVAL_S = 1.0


@dataclass(frozen=True)
class CpuPoint:
    ts: float  # epoch seconds at the end of the interval
    pid: int
    role: str  # "master", "worker-<n>" or "standalone"
    percent: float  # of one core over the interval
    machine_percent: float  # of the whole machine (all cores) over the interval


class CpuSampler(threading.Thread):
    """Samples the processes `roles()` names ({pid: role}) every INTERVAL_S until stop()."""

    def __init__(self, roles: Callable[[], dict[int, str]], path: Path, interval_s: float = INTERVAL_S) -> None:
        super().__init__(name="harness-generator-cpu", daemon=True)
        self._roles, self._path, self._interval = roles, path, interval_s
        self._stopping = threading.Event()

    def run(self) -> None:
        last: dict[int, tuple[float, float]] = {}
        busy0, total0 = machine_jiffies()
        with open(self._path, "a") as out:
            while not self._stopping.wait(self._interval):
                now, wall = time.time(), time.monotonic()
                busy, total = machine_jiffies()
                machine = 100.0 * (busy - busy0) / (total - total0) if total > total0 else 0.0
                busy0, total0 = busy, total
                for pid, role in self._roles().items():
                    cpu = cpu_seconds(pid)
                    if cpu is None:
                        continue
                    if pid in last:
                        cpu0, wall0 = last[pid]
                        percent = 100.0 * (cpu - cpu0) / (wall - wall0) if wall > wall0 else 0.0
                        out.write(json.dumps({"ts": round(now, 3), "pid": pid, "role": role,
                                              "percent": round(percent, 1),
                                              "machine_percent": round(machine, 1)}) + "\n")
                    last[pid] = (cpu, wall)
                out.flush()

    def stop(self) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)


def read_cpu(run_dir: Path) -> Iterator[CpuPoint]:
    """The sampler's points, in order; nothing when it wrote none."""
    path = Path(run_dir) / CPU_FILE
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            yield CpuPoint(ts=d["ts"], pid=d["pid"], role=d["role"], percent=d["percent"],
                           machine_percent=d["machine_percent"])


def read_cpu_warnings(run_dir: Path) -> list[dict[str, float]]:
    """Locust's own cpu_warning events (the plugin's cpu.jsonl): ts, pid, cpu_percent."""
    path = Path(run_dir) / "cpu.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
