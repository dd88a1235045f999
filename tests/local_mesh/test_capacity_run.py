"""A short capacity climb on the real local mesh: three low steps, each judged, all held.

The shipped experiments/capacity.yaml with its staircase lowered (10 to 30 requests/s, 8 s steps: a mesh SLO needs a few seconds of samples per step) so
the run stays short; the full climb is a benchmark (bench/capacity.py), not a test.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.local_mesh.meshkit import Mesh
from tests.local_mesh.test_experiment_runs import EXPERIMENTS, assert_mesh_restored, run

ROOT = Path(__file__).parents[2]
LOW = {"start_rps": 10, "step_rps": 10, "step_s": 8, "ceiling_rps": 30, "user_rps": 2, "settle_s": 2, "min_rps": 20}


def test_a_low_capacity_climb_holds_every_step_and_reports_capacity_at_slo(mesh: Mesh, tmp_path: Path) -> None:
    experiment = yaml.safe_load((EXPERIMENTS / "capacity.yaml").read_text())
    arguments = experiment["controls"][0]["provider"]["arguments"]
    arguments["capacity"] = LOW
    arguments["load"]["locustfile"] = str(ROOT / "locustfiles" / "ai_agent.py")
    arguments["slo_file"] = str(ROOT / "slos" / "capacity.yaml")
    path = tmp_path / "capacity-low.yaml"
    path.write_text(yaml.safe_dump(experiment))
    code, journal, output = run(mesh, path, tmp_path / "run", load_defaults=False)  # it climbs its own load
    assert code == 0, output
    capacity = journal["harness"]["capacity"]
    assert [s["target_rps"] for s in capacity["steps"]] == [10, 20, 30]
    assert [s["users"] for s in capacity["steps"]] == [5, 10, 15]
    for step in capacity["steps"]:
        assert step["held"], step
        assert step["throughput_rps"] >= 0.9 * step["target_rps"]
        assert {s["slo"] for s in step["slos"]} == {"ai-agent-availability", "ai-agent-latency-p99",
                                                    "client-availability", "client-latency-p99"}
    assert capacity["capacity_rps"] == 30 and capacity["broke_at"] is None
    assert capacity["per_service"] == {"ai-agent-service": 30, "client": 30}
    assert "capacity at SLO: 30 req/s" in (tmp_path / "run" / "summary.md").read_text()
    assert "capacity at SLO: 30 req/s" in output
    assert set(journal["harness"]["generator"]["windows"]) >= {"baseline", "recovery", "step 10 req/s"}
    assert_mesh_restored(mesh, journal)
