"""The shipped experiments at their realistic load on this machine: verdict, why, and what to fix.

    .venv/bin/python bench/realistic_load.py [--out NAME] [pod-kill pod-kill-fixed-mesh ...]

Brings up its own local mesh, runs each experiment once with `harness run` at the load its file
declares, and records the exit code, the SLOs that broke, the advice's fixes (summary.md's "What to
fix") and the machine's load average, into bench/results/realistic_load.json (or NAME.json). The verdicts depend on
what else runs on the machine: the load average is recorded beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import STATE_ROOT, free_block, running_mesh, write_results  # noqa: E402

from harness.platforms.local.settings import LocalSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["pod-kill", "pod-kill-fixed-mesh"]


def one(settings: LocalSettings, name: str) -> dict[str, Any]:
    env = {**os.environ, "HARNESS_STATE_DIR": str(settings.state_dir), "HARNESS_BASE_PORT": str(settings.base_port),
           "HARNESS_INGRESS_PORT": str(settings.ingress_port), "HARNESS_PROMETHEUS_PORT": str(settings.prometheus_port)}
    report = STATE_ROOT / f"realistic-{name}"
    shutil.rmtree(report, ignore_errors=True)
    before = os.getloadavg()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", f"experiments/{name}.yaml", "--report-dir",
                             str(report), "--no-progress"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    harness = json.loads((report / "journal.json").read_text())["harness"]
    summary = (report / "summary.md").read_text() if (report / "summary.md").is_file() else ""
    fixes = summary.split("**What to fix**", 1)[1].strip().splitlines() if "**What to fix**" in summary else []
    load = (harness.get("load") or {}).get("stats", {}).get("samples") or {}
    declared = ((yaml.safe_load((ROOT / "experiments" / f"{name}.yaml").read_text())["controls"][0]["provider"]
                 ["arguments"]).get("load") or {})
    return {"experiment": name, "users": declared.get("users"), "rate": declared.get("rate"),
            "exit_code": result.returncode, "wall_s": round(time.monotonic() - started, 1),
            "broke": [f"{r['name']} {r['phase']} {r['value']}" for r in harness.get("slo_results") or []
                      if r["verdict"] != "pass"],
            "inconclusive": harness.get("inconclusive"), "fixes": fixes[:6],
            "requests": (load.get("total") or {}).get("requests"),
            "generator": {k: v.get("busiest_percent") for k, v in (harness.get("generator") or {}).get("windows", {}).items()},
            "loadavg_before": [round(v, 2) for v in before], "loadavg_after": [round(v, 2) for v in os.getloadavg()]}


def main() -> int:
    args = sys.argv[1:]
    out = "realistic_load"
    if args[:1] == ["--out"]:
        out, args = args[1], args[2:]
    names = args or DEFAULT
    base = free_block(38000)
    settings = LocalSettings(state_dir=STATE_ROOT / "realistic", base_port=base, ingress_port=base + 980,
                             prometheus_port=base + 990)
    runs = []
    with running_mesh(settings) as (platform, _):
        for name in names:
            runs.append(one(platform.settings, name))
            print(json.dumps({k: runs[-1][k] for k in ("experiment", "exit_code", "broke", "inconclusive")}), flush=True)
    path = write_results(out, {"runs": runs, "note": "other helpers' work shared this 2-core machine: "
                                                                  "see loadavg_before/after"})
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
