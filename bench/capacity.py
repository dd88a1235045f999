"""Capacity at SLO on this machine: repeatability, run time, sidecar CPU per 1000 req/s, Locust's share.

    .venv/bin/python bench/capacity.py [--runs 3] [--variant capacity|capacity-under-pod-kill]

Brings up its own local mesh (own state dir and port block), runs `harness run experiments/<variant>.yaml`
`--runs` times, and while each runs samples every Envoy sidecar's CPU from /proc/<pid>/stat once a
second, with the requests each has proxied (its admin /stats downstream_rq_total). Per run: the
capacity at SLO, the wall time start to verdict, the CPU of every sidecar that proxied at least
10 req/s during the highest step that held, as vCPU per 1000 of its own req/s (summed CPU over summed
requests; Istio 1.24's published figure is about
0.20 vCPU per 1000 req/s per sidecar with 1 KB payloads, istio.io "Performance and Scalability"), the
Locust processes' and the machine's CPU in that step, and the machine's load average before and
after (other work on the machine changes every figure here: it is recorded, not subtracted).
Results: bench/results/<variant>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import STATE_ROOT, cpu_seconds, free_block, machine_info, running_mesh, write_results  # noqa: E402

from harness.platforms.local.settings import LocalSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ISTIO_VCPU_PER_1000_RPS = 0.20


def requests_through(client: httpx.Client, admin: str) -> float | None:
    """Requests the sidecar has proxied: the sum of its HTTP connection managers' downstream_rq_total
    (inbound and outbound listeners: each request through the sidecar counts once)."""
    try:
        stats = client.get(f"{admin}/stats", params={"filter": r"^http\..*\.downstream_rq_total$",
                                                      "format": "json"}).json()["stats"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return float(sum(s.get("value", 0) for s in stats))


class SidecarCpu(threading.Thread):
    """Every sidecar's CPU seconds and proxied requests once a second: [(time, {pod: (cpu_s, requests)})]."""

    def __init__(self, sidecars: dict[str, tuple[int, str]]) -> None:
        super().__init__(daemon=True)
        self.sidecars, self.points = sidecars, []  # type: ignore[var-annotated]
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while not self.done.wait(1.0):
                self.points.append((time.time(), {pod: (cpu_seconds(pid), requests_through(client, admin))
                                                  for pod, (pid, admin) in self.sidecars.items()}))

    def per_sidecar(self, start: float, end: float) -> dict[str, dict[str, float]]:
        """vCPU and requests/s of each sidecar over [start, end], and vCPU per 1000 of its requests/s."""
        inside = [(t, c) for t, c in self.points if start <= t <= end]
        if len(inside) < 2:
            return {}
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        out = {}
        for pod, (cpu0, rq0) in c0.items():
            cpu1, rq1 = c1.get(pod, (None, None))
            if None in (cpu0, cpu1, rq0, rq1):
                continue
            vcpu, rps = (cpu1 - cpu0) / (t1 - t0), (rq1 - rq0) / (t1 - t0)
            out[pod] = {"vcpu": round(vcpu, 4), "rps": round(rps, 1),
                        "vcpu_per_1000_rps": round(vcpu / rps * 1000, 3) if rps > 1 else None}
        return out


def one_run(settings: LocalSettings, status: dict[str, Any], variant: str, report_dir: Path) -> dict[str, Any]:
    env = {**os.environ, "HARNESS_STATE_DIR": str(settings.state_dir), "HARNESS_BASE_PORT": str(settings.base_port),
           "HARNESS_INGRESS_PORT": str(settings.ingress_port), "HARNESS_PROMETHEUS_PORT": str(settings.prometheus_port)}
    shutil.rmtree(report_dir, ignore_errors=True)
    sidecars = SidecarCpu({p["name"]: (p["sidecar_pid"], p["sidecar_admin_url"]) for p in status["pods"]
                           if p.get("sidecar_pid") and p.get("sidecar_admin_url")})
    load_before = os.getloadavg()
    sidecars.start()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", f"experiments/{variant}.yaml",
                             "--report-dir", str(report_dir), "--no-progress"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - started
    sidecars.done.set()
    harness = json.loads((report_dir / "journal.json").read_text())["harness"]
    capacity = harness.get("capacity") or {}
    steps = capacity.get("steps") or []
    top = next((s for s in steps if s["target_rps"] == capacity.get("capacity_rps")), None)
    figures: dict[str, Any] = {
        "exit_code": result.returncode, "wall_s": round(wall, 1), "capacity_rps": capacity.get("capacity_rps"),
        "per_service": capacity.get("per_service"), "broke_at": capacity.get("broke_at"),
        "inconclusive": harness.get("inconclusive"), "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "steps": [{k: s.get(k) for k in ("target_rps", "users", "throughput_rps", "p50_ms", "p99_ms", "error_ratio",
                                         "generator_percent", "held")} for s in steps],
    }
    if top is not None and top.get("throughput_rps"):
        sidecar = sidecars.per_sidecar(*top["window"])
        busy = {pod: v for pod, v in sidecar.items() if v["vcpu_per_1000_rps"] is not None and v["rps"] >= 10}
        total_vcpu, total_rps = sum(v["vcpu"] for v in busy.values()), sum(v["rps"] for v in busy.values())
        window = (harness.get("generator") or {}).get("windows", {}).get(f"step {top['target_rps']:g} req/s") or {}
        figures["at_capacity"] = {
            "throughput_rps": top["throughput_rps"], "sidecars": sidecar,
            "vcpu_per_1000_rps_per_sidecar": round(total_vcpu / total_rps * 1000, 3) if total_rps else None,
            "locust_busiest_percent_of_a_core": window.get("busiest_percent"),
            "machine_busy_percent": window.get("machine_percent"),
        }
    if result.returncode not in (0, 1, 3):
        figures["error"] = result.stdout[-1500:] + result.stderr[-1500:]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", default="capacity", choices=("capacity", "capacity-under-pod-kill"))
    args = parser.parse_args()
    base = free_block(37000)
    settings = LocalSettings(state_dir=STATE_ROOT / "capacity", base_port=base, ingress_port=base + 980,
                             prometheus_port=base + 990)
    runs = []
    with running_mesh(settings) as (platform, status):
        settings = platform.settings
        for index in range(args.runs):
            runs.append(one_run(settings, platform.status(), args.variant, STATE_ROOT / f"capacity-run-{index}"))
            print(json.dumps({k: runs[-1].get(k) for k in ("exit_code", "wall_s", "capacity_rps", "broke_at")}),
                  flush=True)
    values = [r["capacity_rps"] for r in runs if r["capacity_rps"]]
    spread = (max(values) - min(values)) / max(values) if len(values) == len(runs) and values else None
    figures = {"variant": args.variant, "runs": runs, "capacities_rps": [r["capacity_rps"] for r in runs],
               "spread": None if spread is None else round(spread, 3),
               "repeatable_within_10_percent": spread is not None and spread <= 0.10,
               "max_wall_s": max(r["wall_s"] for r in runs),
               "istio_1_24_vcpu_per_1000_rps_per_sidecar": ISTIO_VCPU_PER_1000_RPS,
               "note": "other helpers' work shared this 2-core machine during these runs: see loadavg_before/after",
               "machine_at_start": machine_info()}
    path = write_results(args.variant, figures)
    print(f"capacities {figures['capacities_rps']} spread {figures['spread']} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
