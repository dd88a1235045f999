"""The harness's load at a fixed rate against raw `locust --headless` on the same mesh, below capacity.

    .venv/bin/python bench/rate_accuracy.py [--rate 40] [--users 20] [--seconds 30]

Brings up its own local mesh and drives its ingress twice with the chat mix of locustfiles/ai_agent.py,
each user at Locust's own constant_throughput(rate / users): once through harness.load (LoadSpec
rate=..., the recorder plugin applies the wait and records every request), once as plain `locust
--headless` with a locustfile that sets the same wait itself. For each: the requests/s over the steady
part (after the users are up) and over the whole run from Locust's own stats. The harness should
reach at least 0.95 x the rate while the mesh is below capacity (bench/results/capacity.json).
Results: bench/results/rate_accuracy.json, with the machine's load average (other work shares it).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import INGRESS_HOST, STATE_ROOT, free_block, running_mesh, write_results  # noqa: E402

from harness.load import LoadRun, LoadSpec  # noqa: E402
from harness.platforms.local.settings import LocalSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILES = ROOT / "locustfiles"
WARM_S = 5.0  # users are all up well within this at a spawn rate of `users` per second

RAW = """
import os

from locust import constant_throughput

from ai_agent import CanaryUser, PremiumUser, StandardUser  # noqa: F401  (Locust runs these)

for _cls in (StandardUser, PremiumUser, CanaryUser):
    _cls.wait_time = constant_throughput(float(os.environ["RAW_RATE_PER_USER"]))
del _cls  # a module-level name for a user class would make Locust run it twice
"""


def total_rps(stats_csv: Path) -> float:
    with open(stats_csv, newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    return round(float(rows["Aggregated"]["Requests/s"]), 2)


def harness_run(url: str, rate: float, users: int, seconds: int, run_dir: Path) -> dict[str, Any]:
    spec = LoadSpec(locustfile=LOCUSTFILES / "ai_agent.py", users=users, spawn_rate=float(users), duration_s=seconds,
                    host=url, host_header=INGRESS_HOST, rate=rate)
    with LoadRun(spec) as load:
        load.start(run_dir)
        load.wait(seconds + 60)
    samples = load.samples()
    start = float(samples["timestamp"].min()) + WARM_S
    end = float(samples["timestamp"].max())
    steady = samples[(samples["timestamp"] > start) & (samples["timestamp"] <= end)]
    return {"steady_rps": round(len(steady) / (end - start), 2), "locust_total_rps": total_rps(run_dir / "locust_stats.csv"),
            "errors": int((~samples["ok"].astype(bool)).sum()), "requests": int(len(samples))}


def raw_run(url: str, rate: float, users: int, seconds: int, work: Path) -> dict[str, Any]:
    locustfile = work / "raw_rate.py"
    locustfile.write_text(textwrap.dedent(RAW))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "HARNESS_"))}
    env.update({"PYTHONPATH": str(LOCUSTFILES), "RAW_RATE_PER_USER": repr(rate / users),
                "HARNESS_INGRESS_HOST": INGRESS_HOST})
    prefix = work / "raw"
    result = subprocess.run([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--only-summary",
                             "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", url, "--csv",
                             str(prefix), "--csv-full-history", "--exit-code-on-error", "0"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(f"raw locust exited {result.returncode}: {result.stderr[-1500:]}")
    history = list(csv.DictReader(open(f"{prefix}_stats_history.csv", newline="")))
    rows = [r for r in history if r["Name"] == "Aggregated"]
    t0 = int(rows[0]["Timestamp"])
    steady = [r for r in rows if int(r["Timestamp"]) - t0 >= WARM_S]
    first, last = steady[0], steady[-1]
    span = int(last["Timestamp"]) - int(first["Timestamp"])
    count = int(last["Total Request Count"]) - int(first["Total Request Count"])
    return {"steady_rps": round(count / span, 2) if span else None, "locust_total_rps": total_rps(Path(f"{prefix}_stats.csv")),
            "errors": int(rows[-1]["Total Failure Count"]), "requests": int(rows[-1]["Total Request Count"])}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    base = free_block(39000)
    settings = LocalSettings(state_dir=STATE_ROOT / "rate_accuracy", base_port=base, ingress_port=base + 980,
                             prometheus_port=base + 990)
    load_before = os.getloadavg()
    with running_mesh(settings) as (_, status), tempfile.TemporaryDirectory() as work:
        url = status["ingress_url"]
        harness = harness_run(url, args.rate, args.users, args.seconds, Path(work) / "harness")
        raw = raw_run(url, args.rate, args.users, args.seconds, Path(work))
    figures = {"rate": args.rate, "users": args.users, "seconds": args.seconds, "harness": harness, "raw_locust": raw,
               "harness_over_rate": round(harness["steady_rps"] / args.rate, 3),
               "harness_over_raw": round(harness["steady_rps"] / raw["steady_rps"], 3) if raw["steady_rps"] else None,
               "at_least_0_95_of_rate": harness["steady_rps"] >= 0.95 * args.rate,
               "loadavg_before": [round(v, 2) for v in load_before],
               "loadavg_after": [round(v, 2) for v in os.getloadavg()],
               "note": "other helpers' work shared this 2-core machine during the run"}
    path = write_results("rate_accuracy", figures)
    print({k: figures[k] for k in ("harness_over_rate", "harness_over_raw", "at_least_0_95_of_rate")}, "->", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
