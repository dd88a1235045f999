"""The kind platform for real: `harness up --platform kind`, the pod-kill experiment, `harness down`.

Through the `harness` command, as a user (and .github/workflows/kind-e2e.yml) runs it. The tests run
in file order and share one mesh; the module fixture takes it down whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 1800  # cold image pulls for Istio, Prometheus and Jaeger
RUN_TIMEOUT_S = 900


def harness(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def kind_clusters() -> list[str]:
    listed = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, timeout=60, check=True)
    return listed.stdout.split()


@pytest.fixture(scope="module")
def kind_mesh() -> Iterator[dict]:
    up = harness("up", "--platform", "kind", timeout_s=UP_TIMEOUT_S)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        status = harness("status", "--platform", "kind", "--json", timeout_s=120)
        assert status.returncode == 0, status.stderr[-3000:]
        yield json.loads(status.stdout)
    finally:
        harness("down", "--platform", "kind", timeout_s=600)  # safe twice


def test_up_brings_every_pod_ready_behind_the_ingress_and_prometheus(kind_mesh: dict) -> None:
    assert kind_mesh["platform"] == "kind"
    assert kind_mesh["ingress_url"] == "http://127.0.0.1:18080"
    assert kind_mesh["prometheus_url"] == "http://127.0.0.1:19090"
    assert len(kind_mesh["pods"]) == 6 and all(pod["ready"] for pod in kind_mesh["pods"])
    assert "parallel-ai" in kind_clusters()


def test_the_pod_kill_experiment_runs_unchanged_on_kind(kind_mesh: dict, tmp_path: Path) -> None:
    run = harness("run", "experiments/pod-kill.yaml", "--platform", "kind", "--report-dir", str(tmp_path),
                  "--no-progress", timeout_s=RUN_TIMEOUT_S)
    assert run.returncode in (0, 1), run.stderr[-3000:]  # a verdict either way; 2 or 3 is a harness failure
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["harness"]["platform"] == "kind"
    kills = journal["harness"]["chaos"]["pod_kills"]
    assert len(kills) == 3 and {k["pod"] for k in kills} <= {"ai-agent-v1-us-east-0", "ai-agent-v1-us-west-0"}
    assert journal["harness"]["pending_undo"] == []


def test_down_deletes_the_cluster(kind_mesh: dict) -> None:
    down = harness("down", "--platform", "kind", timeout_s=600)
    assert down.returncode == 0, down.stderr[-3000:]
    assert "parallel-ai" not in kind_clusters()
