"""The kind platform for real, one cluster: `harness up --platform kind`, the pod-kill experiment (local
Locust and Locust in the cluster), `harness down`.

Through the `harness` command, as a user (and .github/workflows/kind-e2e.yml) runs it. The tests run in
file order and share one mesh; the module fixture takes it down whatever happens. Experiments that must
pass are required to exit 0: exit 1 is a failed verdict on a healthy mesh, a bug.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kindrun import RUN_TIMEOUT_S, UP_TIMEOUT_S, harness, journal, kind_clusters, passed, report_dir


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


def test_a_second_up_changes_nothing(kind_mesh: dict) -> None:
    again = harness("up", "--platform", "kind", timeout_s=UP_TIMEOUT_S)
    assert again.returncode == 0 and "already up" in again.stdout, again.stderr[-3000:]


def test_the_pod_kill_experiment_passes_on_kind(kind_mesh: dict, tmp_path: Path) -> None:
    run_dir = report_dir(tmp_path, "pod-kill")
    run = harness("run", "experiments/pod-kill.yaml", "--platform", "kind", "--report-dir", str(run_dir),
                  "--no-progress", timeout_s=RUN_TIMEOUT_S)
    assert run.returncode == 0, passed(run)
    record = journal(run_dir)
    assert record["harness"]["platform"] == "kind"
    kills = record["harness"]["chaos"]["pod_kills"]
    assert len(kills) == 3 and {k["pod"] for k in kills} <= {"ai-agent-v1-us-east-0", "ai-agent-v1-us-west-0"}
    assert record["harness"]["pending_undo"] == []


def test_the_pod_kill_experiment_passes_with_locust_in_the_cluster(kind_mesh: dict, tmp_path: Path) -> None:
    run_dir = report_dir(tmp_path, "pod-kill-in-cluster")
    run = harness("run", "experiments/pod-kill.yaml", "--platform", "kind", "--in-cluster", "--workers", "2",
                  "--report-dir", str(run_dir), "--no-progress", timeout_s=RUN_TIMEOUT_S)
    assert run.returncode == 0, passed(run)
    assert (run_dir / "locust_stats.csv").is_file() and (run_dir / "started").is_file()
    assert sorted(p.name for p in run_dir.glob("samples-w*.csv"))  # every worker's samples came back
    assert (run_dir / "locust-worker-0.log").is_file() and (run_dir / "locust-worker-1.log").is_file()
    jobs = subprocess.run(["kubectl", "--context", "kind-parallel-ai", "-n", "parallel-ai", "get", "jobs,configmaps",
                           "-l", "app=locust", "-o", "name"], capture_output=True, text=True, timeout=60, check=True)
    assert jobs.stdout.strip() == ""  # the Jobs and the ConfigMap are gone


def test_down_deletes_the_cluster(kind_mesh: dict) -> None:
    down = harness("down", "--platform", "kind", timeout_s=600)
    assert down.returncode == 0, down.stderr[-3000:]
    assert "parallel-ai" not in kind_clusters()
