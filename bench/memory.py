"""RSS and PSS of every process the local mesh started, idle and after 10 s of moderate load.

Processes come from `platform.status()` (apps, sidecars, ingress, Prometheus, `daemon_pid`) and the
supervisor's PID registry (the external AI API, which status does not list); any other descendant of
the daemon is reported as "other". Figures from /proc/<pid>/smaps_rollup; PSS depends on how many
Envoys run on the whole machine (others' meshes share the binary), so that count is recorded too.
Load: open-loop POST /api/v1/chat through the ingress at 50 rps for 10 s.
Run: .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import (CHAT_BODY, INGRESS_HOST, ForeignLoad, Verdict, bench_settings, kind_of, mesh_processes,
                     print_table, print_verdicts, run_loadgen, running_mesh, summarize, target, wait_for_quiet,
                     write_results)
from harness.platforms.local.platform import LocalPlatform

TARGET_RSS_MB = 1200
LOAD_RPS, LOAD_S = 50, 10  # 100 rps of chat already saturated this 2-core box (p99 2.5 s)


def smaps_rollup(pid: int) -> dict[str, int]:
    """kB figures of /proc/<pid>/smaps_rollup (Rss, Pss, Shared_Clean, Private_Dirty, ...)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        out[key.strip()] = int(rest.split()[0])
    return out


def descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def snapshot(platform: LocalPlatform) -> dict[str, Any]:
    status = platform.status()
    pids = mesh_processes(platform, status)
    for extra in descendants(pids["daemon"]) - set(pids.values()):
        pids[f"other pid {extra}"] = extra
    processes = {}
    for name, pid in pids.items():
        rollup = smaps_rollup(pid)
        processes[name] = {"pid": pid, "kind": kind_of(name), "rss_mb": round(rollup["Rss"] / 1024, 1),
                           "pss_mb": round(rollup["Pss"] / 1024, 1)}
    kinds: dict[str, dict[str, float]] = {}
    for p in processes.values():
        k = kinds.setdefault(p["kind"], {"count": 0, "rss_mb": 0.0, "pss_mb": 0.0})
        k["count"] += 1
        k["rss_mb"] = round(k["rss_mb"] + p["rss_mb"], 1)
        k["pss_mb"] = round(k["pss_mb"] + p["pss_mb"], 1)
    total = {"count": len(processes), "rss_mb": round(sum(p["rss_mb"] for p in processes.values()), 1),
             "pss_mb": round(sum(p["pss_mb"] for p in processes.values()), 1)}
    return {"processes": processes, "kinds": kinds, "total": total,
            "envoys_on_the_machine": same_binary_count(pids[status["gateway"]["name"]])}


def same_binary_count(pid: int) -> int:
    """Processes running the same executable (others' meshes too): PSS splits shared pages among all of them."""
    exe = os.readlink(f"/proc/{pid}/exe")
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            count += entry.name.isdigit() and os.readlink(entry / "exe") == exe
        except OSError:
            continue
    return count


def wait_for_scrapes(status: dict[str, Any], timeout_s: float = 30.0) -> bool:
    """Idle means Prometheus is scraping every target already (its memory grows with the first scrapes)."""
    url = status["prometheus_url"] + "/api/v1/targets?state=active"
    expected = 2 * len(status["pods"]) + 1
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=2) as response:
            targets = json.load(response)["data"]["activeTargets"]
        if len(targets) >= expected and all(t["health"] == "up" for t in targets):
            return True
        time.sleep(0.5)
    return False


def show(title: str, snap: dict[str, Any]) -> None:
    print(f"\n== {title}")
    rows = [[k, v["count"], v["rss_mb"], v["pss_mb"]] for k, v in sorted(snap["kinds"].items())]
    rows.append(["TOTAL", snap["total"]["count"], snap["total"]["rss_mb"], snap["total"]["pss_mb"]])
    print_table(["kind", "processes", "RSS MB", "PSS MB"], rows)
    print(f"(Envoy processes on the whole machine, other meshes included: {snap['envoys_on_the_machine']}; "
          "PSS shares the binary's pages among all of them)")


def main() -> None:
    quiet = wait_for_quiet()
    foreign = ForeignLoad()
    with running_mesh(bench_settings("memory")) as (platform, status):
        scraped = wait_for_scrapes(status)
        time.sleep(3.0)
        idle = snapshot(platform)
        show(f"idle (Prometheus scraping every target: {scraped})", idle)
        ingress = int(status["ingress_url"].rsplit(":", 1)[1])
        load = run_loadgen({"mode": "paced", "rate": LOAD_RPS, "duration_s": LOAD_S, "warmup_s": 0,
                            "targets": [target("chat", ingress, "/api/v1/chat", method="POST", body=CHAT_BODY,
                                               host=INGRESS_HOST)]}, timeout_s=LOAD_S + 40)["targets"]["chat"]
        loaded = snapshot(platform)
        load_summary = {"rps": LOAD_RPS, "duration_s": LOAD_S, "statuses": load["statuses"],
                        "errors": load["errors"], "dropped": load["dropped"],
                        "latency_ms": summarize(load["latencies_ms"])}
        show(f"after {LOAD_S} s of chat through the ingress at {LOAD_RPS} rps "
             f"(statuses {load['statuses']}, p50 {load_summary['latency_ms'].get('p50')} ms)", loaded)
    verdicts = [Verdict(f"whole mesh RSS, {label}", f"{snap['total']['rss_mb']} MB (PSS {snap['total']['pss_mb']} MB)",
                        f"< {TARGET_RSS_MB} MB RSS", snap["total"]["rss_mb"] < TARGET_RSS_MB)
                for label, snap in (("idle", idle), ("after load", loaded))]
    print_verdicts(verdicts)
    path = write_results("memory", {"target_rss_mb": TARGET_RSS_MB, "idle": idle, "after_load": loaded,
                                    "load": load_summary, "machine_before": quiet, "other_load": foreign.result(),
                                    "verdicts": [v.__dict__ for v in verdicts]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
