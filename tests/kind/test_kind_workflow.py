"""The GitHub workflow that runs the kind platform for real, on a runner with Docker (it cannot run here)."""

from __future__ import annotations

import yaml

from tests.kind.kindkit import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "kind-e2e.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _commands(job: dict) -> list[str]:
    return [line.strip() for step in job["steps"] for line in str(step.get("run", "")).splitlines() if line.strip()]


def test_the_workflow_parses_and_has_one_job_on_an_ubuntu_runner() -> None:
    workflow = _workflow()
    assert workflow["name"] == "kind-e2e"
    assert set(workflow[True]) >= {"workflow_dispatch", "schedule"}  # YAML 1.1 reads the key `on` as True
    assert list(workflow["jobs"]) == ["kind-e2e"]
    job = workflow["jobs"]["kind-e2e"]
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 90
    assert all("name" in step and ("uses" in step) != ("run" in step) for step in job["steps"])


def test_the_workflow_sets_up_python_3_11_and_installs_kind_istioctl_and_kubectl() -> None:
    job = _workflow()["jobs"]["kind-e2e"]
    setup_python = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@"))
    assert setup_python["with"]["python-version"] == "3.11"
    commands = "\n".join(_commands(job))
    for tool in ("kind", "kubectl", "istioctl"):
        assert "install -m 0755" in commands and f"/usr/local/bin/{tool}" in commands
    assert job["env"]["ISTIO_VERSION"] == job["env"]["HARNESS_ISTIO_VERSION"] == "1.30.3"


def test_the_workflow_runs_setup_up_the_pod_kill_experiment_and_down_in_that_order() -> None:
    job = _workflow()["jobs"]["kind-e2e"]
    commands = _commands(job)
    wanted = ["make setup", ".venv/bin/harness up --platform kind",
              ".venv/bin/harness run experiments/pod-kill.yaml --platform kind --report-dir runs/kind-pod-kill",
              ".venv/bin/harness down --platform kind"]
    assert [c for c in commands if c in wanted] == wanted
    down = next(step for step in job["steps"] if step.get("run") == ".venv/bin/harness down --platform kind")
    assert down["if"] == "always()", "the clusters must go even when the experiment fails"
    assert (ROOT / "experiments" / "pod-kill.yaml").is_file()
