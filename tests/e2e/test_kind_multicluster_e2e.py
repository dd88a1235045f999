"""The three-cluster mesh for real (`--kind-clusters 3`): up, the cluster-failover experiment, which only
passes when the ingress cluster's sidecars reach the other clusters through their east-west gateways
(meshNetworks' gateway addresses on the kind network), then a plain `down` deleting all three clusters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.kindrun import RUN_TIMEOUT_S, UP_TIMEOUT_S, harness, journal, kind_clusters, passed, report_dir

pytestmark = pytest.mark.multicluster
CLUSTERS = ["parallel-ai-us-east", "parallel-ai-us-west", "parallel-ai-eu-west"]


@pytest.fixture(scope="module")
def three() -> Iterator[None]:
    up = harness("up", "--platform", "kind", "--clusters", "3", timeout_s=2 * UP_TIMEOUT_S)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield
    finally:
        harness("down", "--platform", "kind", timeout_s=900)  # a plain down takes all three


def test_traffic_fails_over_to_another_cluster_through_its_east_west_gateway(three: None, tmp_path: Path) -> None:
    run_dir = report_dir(tmp_path, "cluster-failover")
    run = harness("run", "experiments/cluster-failover.yaml", "--platform", "kind", "--clusters", "3",
                  "--report-dir", str(run_dir), "--no-progress", timeout_s=RUN_TIMEOUT_S)
    assert run.returncode == 0, passed(run)
    assert journal(run_dir)["harness"]["pending_undo"] == []


def test_a_plain_down_deletes_all_three_clusters(three: None) -> None:
    down = harness("down", "--platform", "kind", timeout_s=900)
    assert down.returncode == 0, down.stderr[-3000:]
    assert not set(CLUSTERS) & set(kind_clusters())
