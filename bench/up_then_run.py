"""`harness up` followed at once by a pod-kill run, then `down`, N times (target: N of N pass).

The run starts while Prometheus is still picking up its targets (its first scrape comes about 5 s
after it starts): the readiness gate must hold the baseline back until every mesh SLO query has data,
and the measured telemetry lag must place each phase's window. Prints the pass count and the lag
figures; writes bench/results/up_then_run.json. Usage: .venv/bin/python bench/up_then_run.py [N [EXPERIMENT]]

The default experiment is the headline pod-kill.yaml (30 users at 30 requests/s, spread over each
second, on the seed mesh as `up` declares it): issue 9 asks for ten passes in ten of exactly that.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import free_block

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "up_then_run.json"
PREFERRED_BASE = 30000  # below Linux's ephemeral ports (32768 on), which the load's client sockets take
PHASES = {"HARNESS_WARMUP_S": "2", "HARNESS_BASELINE_S": "8", "HARNESS_RECOVERY_S": "8"}  # short; 2 s over the suite's


def environment(state_dir: Path, base: int) -> dict[str, str]:
    return {**os.environ, **PHASES, "HARNESS_STATE_DIR": str(state_dir), "HARNESS_BASE_PORT": str(base),
            "HARNESS_INGRESS_PORT": str(base + 980), "HARNESS_PROMETHEUS_PORT": str(base + 990)}


def harness(args: list[str], env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


def one(index: int, work: Path, experiment: str) -> dict[str, object]:
    state, report = work / f"state-{index}", work / f"run-{index}"
    shutil.rmtree(report, ignore_errors=True)
    env = environment(state, free_block(PREFERRED_BASE))
    started = time.monotonic()
    up = harness(["up"], env, 120)
    up_s = time.monotonic() - started
    try:
        if up.returncode != 0:
            return {"index": index, "passed": False, "stage": "up", "exit_code": up.returncode,
                    "output": (up.stdout + up.stderr)[-1500:]}
        run = harness(["run", experiment, "--report-dir", str(report), "--no-progress"], env, 300)
    finally:
        harness(["down"], env, 120)
    try:
        section = json.loads((report / "journal.json").read_text())["harness"]
    except (OSError, ValueError, KeyError):
        section = {}
    lag = section.get("telemetry_lag") or {}
    failed = [(r["name"], r["phase"], r["verdict"]) for r in section.get("slo_results", []) if r["verdict"] != "pass"]
    return {"index": index, "passed": run.returncode == 0, "exit_code": run.returncode, "up_s": round(up_s, 2),
            "readiness_wait_s": section.get("readiness_wait_s"), "lag_median_s": lag.get("median_s"),
            "lag_max_s": lag.get("max_s"), "lag_lower_s": lag.get("lower_s"), "lag_upper_s": lag.get("upper_s"),
            "lag_attempts": lag.get("attempts"), "not_pass": failed, "inconclusive": section.get("inconclusive"),
            "output": "" if run.returncode == 0 else run.stdout[-1500:] + run.stderr[-1500:]}


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    experiment = sys.argv[2] if len(sys.argv) > 2 else "experiments/pod-kill.yaml"
    work = ROOT / "bench" / ".state" / "up_then_run"
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for index in range(runs):
        result = one(index, work, experiment)
        results.append(result)
        print(f"{index:>3} exit {result['exit_code']} lag median {result.get('lag_median_s')} s max "
              f"{result.get('lag_max_s')} s, gate waited {result.get('readiness_wait_s')} s"
              + ("" if result["passed"] else f"  FAILED {result.get('not_pass') or result.get('inconclusive')}"),
              flush=True)
    medians = [r["lag_median_s"] for r in results if r.get("lag_median_s") is not None]
    maxima = [r["lag_max_s"] for r in results if r.get("lag_max_s") is not None]
    summary = {"date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(), "runs": runs, "experiment": experiment,
               "load_average": os.getloadavg(),
               "passed": sum(bool(r["passed"]) for r in results), "phases": PHASES,
               "lag_median_s": statistics.median(medians) if medians else None,
               "lag_max_s": max(maxima) if maxima else None, "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"passed {summary['passed']} of {runs}; telemetry lag median {summary['lag_median_s']} s, "
          f"max {summary['lag_max_s']} s")


if __name__ == "__main__":
    main()
