"""Capacity at SLO in the reports and in `harness compare`.

The capacity section is built by the real harness.run.capacity.summarise from steps; the run
directories are the fixture runs of tests/report/data with that section added to their journals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.cli import main
from harness.report import compare, comparison_exit_code, parse_tolerance, write_reports
from harness.run.capacity import CapacitySettings, _verdict_row, summarise
from tests.report.reportkit import PASSING, RunFactory

SETTINGS = CapacitySettings(start_rps=40, step_rps=40, step_s=10, ceiling_rps=400, min_rps=80)


def steps(capacity: float) -> list[dict[str, Any]]:
    """Steps that held up to `capacity` and broke one step above it, on the ai-agent availability SLO."""
    out = []
    for index, rps in enumerate(range(40, int(capacity) + 41, 40)):
        held = rps <= capacity
        out.append({"target_rps": float(rps), "users": rps // 5, "start": 1000.0 + 10 * index,
                    "end": 1010.0 + 10 * index, "window": [1002.0 + 10 * index, 1010.0 + 10 * index],
                    "throughput_rps": rps * 0.99, "p50_ms": 50.0 + rps / 10, "p95_ms": 80.0 + rps / 5,
                    "p99_ms": 100.0 + (rps / 2 if held else 900), "error_ratio": 0.0 if held else 0.02,
                    "reached": True, "held": held, "generator_percent": 20.0, "services": {
                        "ai-agent-service": held, "client": True},
                    "broken": [] if held else [{"slo": "ai-agent-availability", "value": 0.98, "objective": 0.995,
                                                "comparator": ">=", "verdict": "fail", "detail": ""}],
                    "why": "" if held else "ai-agent-availability fail: 0.98 (objective >= 0.995)"})
    return out


def with_capacity(run_dir: RunFactory, into: str, capacity: float) -> Path:
    source = run_dir(PASSING, into=into)
    journal = json.loads((source / "journal.json").read_text())
    ran = steps(capacity)
    summary = summarise(ran, SETTINGS)
    journal["harness"]["capacity"] = summary
    journal["harness"]["slo_results"].append(_verdict_row(summary, SETTINGS, ran))
    (source / "journal.json").write_text(json.dumps(journal))
    return source


def test_the_report_and_summary_carry_capacity_at_slo_and_the_latency_throughput_curve(run_dir: RunFactory) -> None:
    run = with_capacity(run_dir, "run", 200)
    write_reports(run)
    html, summary = (run / "report.html").read_text(), (run / "summary.md").read_text()
    headline = "capacity at SLO: 200 req/s; broke at 240 req/s: ai-agent-availability fail"
    assert headline in html and headline in summary
    assert "latency vs throughput" in html and "<svg" in html.split('id="capacity"')[1]
    assert "ai-agent-service 200 req/s" in html  # per service
    journal = json.loads((run / "journal.json").read_text())
    assert journal["harness"]["capacity"]["headline"].startswith("capacity at SLO: 200 req/s")


def test_a_capacity_drop_past_its_tolerance_is_a_regression_and_within_it_is_not(run_dir: RunFactory) -> None:
    baseline = with_capacity(run_dir, "baseline", 200)
    run = with_capacity(run_dir, "run", 160)  # 20 % less
    regressed = compare(run, baseline, parse_tolerance("capacity=10%"))
    capacity = [d for d in regressed.regressions if d.subject.endswith("capacity-at-slo")]
    assert capacity and capacity[0].change == -20.0
    assert comparison_exit_code(regressed) == 1
    within = compare(run, baseline, parse_tolerance("capacity=25%"))
    assert not [d for d in within.regressions if d.subject.endswith("capacity-at-slo")]


def test_harness_compare_takes_a_capacity_tolerance(run_dir: RunFactory) -> None:
    baseline = with_capacity(run_dir, "baseline", 200)
    run = with_capacity(run_dir, "run", 160)
    assert main(["compare", str(run), str(baseline), "--tolerance", "capacity=10%"]) == 1
    assert main(["compare", str(run), str(baseline), "--tolerance", "capacity=25%"]) == 0
