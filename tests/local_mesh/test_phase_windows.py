"""A phase's mesh SLO describes that phase's requests only: windows placed by the measured telemetry lag."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from meshkit import Mesh
from test_experiment_runs import EXPERIMENTS, ROOT, assert_mesh_restored, run_env

DELAY_MS = 150


def client_p99(samples: Path, start: float, end: float) -> float:
    """p99 latency of the Locust requests that completed in [start, end] (timestamp is the request's start)."""
    with samples.open() as handle:
        rows = list(csv.DictReader(handle))
    latencies = [float(r["latency_ms"]) for r in rows
                 if start <= float(r["timestamp"]) + float(r["latency_ms"]) / 1000 <= end]
    assert len(latencies) >= 50, f"only {len(latencies)} requests completed in the phase"
    return float(np.percentile(latencies, 99))


def test_each_phase_mesh_p99_agrees_with_the_clients_requests_of_that_phase(mesh: Mesh, tmp_path: Path) -> None:
    """Issue 9: with a 150 ms delay on calls to user, the recovery p99 from Prometheus was 188.9 ms while the
    requests that completed in recovery had a p99 of 35.2 ms: the window carried the chaos phase's requests,
    which reach Prometheus only after Envoy's stats flush, a scrape and a rule evaluation. Now every phase's
    mesh p99 (the ingress gateway's view, histogram buckets of 150/200 ms) stays within 1.3x the client p99
    of the requests that completed in that phase, plus 10 ms (the histogram's interpolation within a
    bucket), and the chaos window does see the delay. The measured lag is in the journal."""
    doc = yaml.safe_load((EXPERIMENTS / "latency-injection.yaml").read_text())
    doc["method"][0]["provider"]["arguments"]["delay_ms"] = DELAY_MS
    doc["method"][0]["pauses"] = {"after": 5}
    doc["controls"][0]["provider"]["arguments"]["slos"] = ["ai-agent-latency-p99"]
    experiment = tmp_path / "latency-150ms.yaml"
    experiment.write_text(yaml.safe_dump(doc))
    report = tmp_path / "run"
    env = run_env(mesh)  # baseline and recovery 6 s, as every run of the suite
    result = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(experiment), "--report-dir", str(report),
                             "--no-progress"], cwd=ROOT, env=env, text=True, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = json.loads((report / "journal.json").read_text())
    harness = journal["harness"]
    lag = harness["telemetry_lag"]
    assert lag["probes"] >= 4 and 0 <= lag["lower_s"] <= lag["median_s"] <= lag["upper_s"]
    mesh_p99 = {r["phase"]: r["value"] for r in harness["slo_results"] if r["name"] == "ai-agent-latency-p99"}
    assert set(mesh_p99) == {"baseline", "chaos", "recovery"}
    for phase, window in harness["phases"].items():
        clients = client_p99(report / "samples.csv", window["start"], window["end"])
        assert mesh_p99[phase] <= 1.3 * clients + 10, (phase, mesh_p99[phase], clients, lag)
    assert mesh_p99["chaos"] >= DELAY_MS, mesh_p99
    assert_mesh_restored(mesh, journal)
