"""Was the load generator the bottleneck? Locust's CPU in each judged window, and Locust's own warning.

A Locust process is one gevent thread: at ~100 % of a core it sends less than asked and its latency
figures include its own queueing, so a verdict over that window measures Locust, not the mesh.
Above SATURATED_PERCENT (Locust's own CPU_WARNING_THRESHOLD, locust/runners.py, which prints
"CPU usage above 90%!") on average over a judged window, or when Locust fired its cpu_warning event
in it, the run is inconclusive (exit 3) and the advice is to add workers.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.load._cpu import read_cpu, read_cpu_warnings
from harness.load._spec import max_workers

if TYPE_CHECKING:
    import pandas as pd

SATURATED_PERCENT = 90.0


def _throughput(samples: pd.DataFrame | None, start: float, end: float) -> float | None:
    if samples is None or end <= start:
        return None
    stamps = samples["timestamp"]
    return round(float(((stamps > start) & (stamps <= end)).sum()) / (end - start), 2)


def judge(run_dir: Path, windows: dict[str, tuple[float, float]], workers: int,
          samples: pd.DataFrame | None = None) -> dict[str, Any]:
    """Per window (name -> (start, end) epoch s): the busiest Locust process's mean CPU, the machine's,
    Locust's warnings and (from `samples`) the requests/s Locust sent; `saturated` lists the windows
    above the threshold, `advice` what to do."""
    points = list(read_cpu(run_dir))
    warnings = read_cpu_warnings(run_dir)
    by_pid: dict[int, list[float]] = defaultdict(list)
    roles: dict[int, str] = {}
    for point in points:
        by_pid[point.pid].append(point.percent)
        roles[point.pid] = point.role
    judged: dict[str, Any] = {}
    for name, (start, end) in windows.items():
        inside = [p for p in points if start < p.ts <= end]
        per_pid: dict[int, list[float]] = defaultdict(list)
        for point in inside:
            per_pid[point.pid].append(point.percent)
        means = {pid: sum(v) / len(v) for pid, v in per_pid.items()}
        busiest = max(means, key=lambda pid: means[pid]) if means else None
        fired = [w for w in warnings if start < w["ts"] <= end]
        machine = [p.machine_percent for p in inside]
        judged[name] = {
            "busiest_role": roles.get(busiest) if busiest is not None else None,
            "busiest_percent": round(means[busiest], 1) if busiest is not None else None,
            "machine_percent": round(sum(machine) / len(machine), 1) if machine else None,
            "locust_warnings": len(fired),
            "throughput_rps": _throughput(samples, start, end),
            "saturated": bool(fired) or (busiest is not None and means[busiest] > SATURATED_PERCENT),
        }
    saturated = [name for name, w in judged.items() if w["saturated"]]
    return {
        "threshold_percent": SATURATED_PERCENT, "workers": workers,
        "processes": [{"pid": pid, "role": roles[pid], "mean_percent": round(sum(v) / len(v), 1),
                       "max_percent": round(max(v), 1)} for pid, v in sorted(by_pid.items())],
        "windows": judged, "locust_warnings": warnings, "saturated": saturated,
        "advice": advice(workers) if saturated else None,
    }


def advice(workers: int) -> str:
    """What to do about a saturated generator on this machine."""
    cores = max_workers()
    if workers < cores:
        return f"add workers (`--workers {max(2, workers + 1) if cores >= 2 else 1}`)"
    return (f"add workers (`--workers N`) is not possible here: Locust already runs {workers} workers on "
            f"{cores} CPUs; lower the load (--users/--rate) or give Locust its own machine")


def inconclusive(generator: dict[str, Any] | None) -> str | None:
    """The verdict's reason when the generator was the bottleneck in a judged window, else None."""
    if not generator or not generator["saturated"]:
        return None
    parts = []
    for name in generator["saturated"]:
        w = generator["windows"][name]
        seen = f"{w['busiest_role']} at {w['busiest_percent']:g}% CPU" if w["busiest_percent"] is not None else ""
        warned = f"Locust warned 'CPU usage above 90%' {w['locust_warnings']}x" if w["locust_warnings"] else ""
        parts.append(f"{name}: " + "; ".join(p for p in (seen, warned) if p))
    return (f"the load generator was the bottleneck (above {generator['threshold_percent']:g}% CPU) in "
            f"{', '.join(parts)}: {generator['advice']}")
