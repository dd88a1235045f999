"""Reports from 1M request samples: SLO tables, per-service stats and per-second plots; target 3 s or less.

A synthetic 10-minute run (baseline 120 s, chaos 300 s with a 503 abort on 5% of requests, recovery
180 s) at about 1,670 requests per second over three request names, 1,000,000 samples in all. Timed,
each best of REPEAT: the SLO tables (every client SLO of slos/ per phase, as `harness run` judges
them), the analysis (stats, series, score, what to fix) with report.html, junit.xml and summary.md
rendered, and the same from disk: reading samples.csv, reading samples.parquet, and a whole
write_reports of a run directory. The declared mesh (for "what to fix") is loaded once first and
its cold cost printed apart: it validates every manifest, whatever the number of samples.

Run: .venv/bin/python bench/report_analysis.py [--samples N]   (prints; writes only to a temp dir)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.report.analysis import analyse_run  # noqa: E402
from harness.report.junit import render_junit  # noqa: E402
from harness.report.meshview import declared_view  # noqa: E402
from harness.report.page import render_html  # noqa: E402
from harness.report.rundata import read_run, read_samples  # noqa: E402
from harness.report.summary import render_summary  # noqa: E402
from harness.report.write import write_parquet, write_reports  # noqa: E402
from harness.slo import evaluate_samples, load_slo_file  # noqa: E402

TARGET_S = 3.0
REPEAT = 3
T0 = 1_800_000_000.0
PHASES = {"baseline": (T0, T0 + 120), "chaos": (T0 + 120, T0 + 420), "recovery": (T0 + 420, T0 + 600)}
NAMES, WEIGHTS = ["chat [standard]", "chat [premium]", "chat [canary]"], [0.80, 0.15, 0.05]


def synthetic_samples(n: int, seed: int = 7) -> pd.DataFrame:
    """n requests over 600 s: lognormal latency around 60 ms, 5% 503s during the abort window in chaos."""
    rng = np.random.default_rng(seed)
    start = np.sort(rng.uniform(T0 - 2, T0 + 600, n))
    names = rng.choice(len(NAMES), size=n, p=WEIGHTS)
    latency = rng.lognormal(np.log(60), 0.5, n)
    aborted = (start > T0 + 150) & (start < T0 + 390) & (rng.random(n) < 0.05)
    status = np.where(aborted, 503, 200)
    latency = np.where(aborted, 2.0, latency)
    return pd.DataFrame({
        "timestamp": start, "name": pd.Series(np.array(NAMES)[names], dtype="string"), "method": "POST",
        "status": status, "latency_ms": latency.round(3),
        "tier": pd.Series(np.array(["standard", "premium", "canary"])[names], dtype="string"), "ok": ~aborted,
        "response_length": 520, "error": pd.Series(np.where(aborted, "HTTPError 503", ""), dtype="string"),
    })  # fmt: skip


def slo_tables(samples: pd.DataFrame) -> list[dict[str, Any]]:
    """Every client SLO of the shipped SLO files, judged in every phase, as journal rows."""
    files = (ROOT / "slos" / "default.yaml", ROOT / "slos" / "premium.yaml")
    slos = [s for f in files for s in load_slo_file(f) if s.source == "client"]
    rows = []
    for phase, (start, end) in PHASES.items():
        rows += [r.__dict__ for r in evaluate_samples(slos, phase, start, end, samples)]  # type: ignore[arg-type]
    return rows


def journal(slo_rows: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """A journal like `harness run` writes, with the abort recorded as a fault."""
    failed = any(r["verdict"] != "pass" for r in slo_rows)
    fault = {"kind": "abort", "target": "user-service", "details": {"side": "destination", "http_status": 503,
             "percentage": 5}, "requested_at": T0 + 149.9, "applied_at": T0 + 150, "reverted_requested_at": T0 + 390,
             "reverted_at": T0 + 390.1, "inject_latency_ms": 100.0, "revert_latency_ms": 100.0}
    return {"experiment": {"title": "bench: 1M samples"}, "status": "completed", "deviated": False,
            "start": "2027-01-15T08:00:00+00:00", "duration": 600.0,
            "harness": {"run_dir": str(run_dir), "platform": "local", "phase": "done",
                        "phases": {k: {"start": s, "end": e} for k, (s, e) in PHASES.items()},
                        "chaos": {"faults": [fault], "pod_kills": []}, "undo": [], "slo_results": slo_rows,
                        "inconclusive": None, "exit_code": 1 if failed else 0}}


def best(fn: Callable[[], Any], repeat: int = REPEAT) -> tuple[float, Any]:
    """The shortest of `repeat` wall-clock timings, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    began = time.perf_counter()
    declared_view()
    mesh_s = time.perf_counter() - began
    samples = synthetic_samples(args.samples)
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        tables_s, rows = best(lambda: slo_tables(samples))
        (run_dir / "journal.json").write_text(json.dumps(journal(rows, run_dir)))
        run = read_run(run_dir)

        def analysis_and_render() -> tuple[str, str, str]:
            analysis = analyse_run(run, samples)
            return render_html(analysis), render_junit([(run, analysis.score)]), render_summary(analysis)

        render_s, (html, _, _) = best(analysis_and_render)
        samples.to_csv(run_dir / "samples.csv", index=False)
        csv_s, _ = best(lambda: read_samples(run_dir), repeat=1)
        parquet_write_s, _ = best(lambda: write_parquet(samples, run_dir), repeat=1)
        (run_dir / "samples.csv").unlink()
        parquet_s, _ = best(lambda: read_samples(run_dir))
        whole_s, _ = best(lambda: write_reports(run_dir))
        html_kb = (run_dir / "report.html").stat().st_size / 1024
    in_memory = tables_s + render_s
    print(f"samples: {len(samples):,}; SLO rows: {len(rows)}; report.html {html_kb:.0f} kB, {html.count('<svg')} plots")
    print(f"  declared mesh, loaded once (cold, not per sample): {mesh_s:6.2f} s")
    print(f"  SLO tables (client SLOs x 3 phases):               {tables_s:6.2f} s")
    print(f"  analysis + report.html/junit.xml/summary.md:       {render_s:6.2f} s")
    print(f"  = samples in memory to SLO tables and plots:       {in_memory:6.2f} s  (target {TARGET_S:g} s: "
          f"{'met' if in_memory <= TARGET_S else 'MISSED'})")
    print(f"  read samples.csv (pandas):                         {csv_s:6.2f} s")
    print(f"  write samples.parquet:                             {parquet_write_s:6.2f} s")
    print(f"  read samples.parquet:                              {parquet_s:6.2f} s")
    print(f"  write_reports(run dir with samples.parquet):       {whole_s:6.2f} s  (read + analyse + render + write)")
    from_disk = parquet_s + in_memory
    print(f"  from parquet on disk to SLO tables and plots:      {from_disk:6.2f} s  (target {TARGET_S:g} s: "
          f"{'met' if from_disk <= TARGET_S else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
