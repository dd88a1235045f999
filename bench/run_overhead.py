"""`harness run` overhead: wall time of a run minus the experiment's own durations (target: 5 s or less)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import free_block
from harness.platforms.local.platform import LocalPlatform
from harness.platforms.local.settings import LocalSettings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "run_overhead.json"
PREFERRED_BASE = 30000  # below Linux's ephemeral ports (32768 on): a client socket in TIME_WAIT blocked 36990
PHASES = {"HARNESS_WARMUP_S": "2", "HARNESS_BASELINE_S": "5", "HARNESS_RECOVERY_S": "5"}
RUNS = 3


def one_run(settings: LocalSettings, report_dir: Path) -> dict[str, float]:
    env = {**os.environ, **PHASES, "HARNESS_STATE_DIR": str(settings.state_dir),
           "HARNESS_BASE_PORT": str(settings.base_port), "HARNESS_INGRESS_PORT": str(settings.ingress_port),
           "HARNESS_PROMETHEUS_PORT": str(settings.prometheus_port)}
    shutil.rmtree(report_dir, ignore_errors=True)  # a run directory holds one run
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", "experiments/pod-kill.yaml", "--report-dir",
                             str(report_dir), "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    wall = time.monotonic() - started
    if result.returncode not in (0, 1):  # the verdict does not matter here, a harness error does
        raise RuntimeError(f"harness run exited {result.returncode}:\n{result.stdout[-2000:]}")
    harness = json.loads((report_dir / "journal.json").read_text())["harness"]
    phases = harness["phases"]
    own = (float(PHASES["HARNESS_WARMUP_S"]) + sum(p["end"] - p["start"] for p in phases.values()))
    return {"wall_s": round(wall, 3), "experiment_s": round(own, 3), "overhead_s": round(wall - own, 3),
            "exit_code": result.returncode}


def main() -> None:
    base = free_block(PREFERRED_BASE)
    settings = LocalSettings(state_dir=ROOT / "bench" / ".state" / "run_overhead", base_port=base,
                             ingress_port=base + 980, prometheus_port=base + 990)
    platform = LocalPlatform(settings)
    platform.up()  # a mesh already up, as a nightly suite has it: the run's own overhead only
    try:
        runs = [one_run(settings, ROOT / "bench" / ".state" / f"run_overhead-{i}") for i in range(RUNS)]
    finally:
        platform.down()
    overheads = sorted(r["overhead_s"] for r in runs)
    result = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "runs": runs,
              "overhead_median_s": overheads[len(overheads) // 2], "target_s": 5.0}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"{'run':>4} {'wall s':>8} {'experiment s':>13} {'overhead s':>11}")
    for i, r in enumerate(runs):
        print(f"{i:>4} {r['wall_s']:>8.2f} {r['experiment_s']:>13.2f} {r['overhead_s']:>11.2f}")
    print(f"median overhead {result['overhead_median_s']:.2f} s (target 5 s or less)")


if __name__ == "__main__":
    main()
