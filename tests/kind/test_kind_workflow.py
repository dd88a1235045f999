"""The GitHub workflow that runs the kind platform for real (it cannot run here: no Docker), and the
end-to-end tests it runs (issue 11, point 13)."""

from __future__ import annotations

import ast
import subprocess

import yaml

from tests.e2e.conftest import TOOLS, missing_tools
from tests.kind.kindkit import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "kind-e2e.yml"
E2E = ROOT / "tests" / "e2e"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _commands(job: dict) -> list[str]:
    return [line.strip() for step in job["steps"] for line in str(step.get("run", "")).splitlines() if line.strip()]


def test_the_workflow_parses_and_runs_on_ubuntu_runners_with_every_step_named() -> None:
    workflow = _workflow()
    assert workflow["name"] == "kind-e2e"
    assert set(workflow[True]) >= {"workflow_dispatch", "schedule", "pull_request"}  # YAML 1.1 reads `on` as True
    assert list(workflow["jobs"]) == ["kind-e2e", "kind-e2e-multicluster"]
    for job in workflow["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] <= 120
        assert all("name" in step and ("uses" in step) != ("run" in step) for step in job["steps"])


def test_a_pull_request_touching_anything_a_run_reads_triggers_it() -> None:
    paths = set(_workflow()[True]["pull_request"]["paths"])
    for needed in ("harness/**", "kind-config/**", "docker/**", "experiments/**", "slos/**", "locustfiles/**",
                   "tests/e2e/**", "pyproject.toml", ".github/workflows/kind-e2e.yml"):
        assert needed in paths, needed


def test_the_jobs_install_the_tools_raise_inotify_and_run_tests_e2e_then_always_take_the_mesh_down() -> None:
    workflow = _workflow()
    assert workflow["env"]["ISTIO_VERSION"] == workflow["env"]["HARNESS_ISTIO_VERSION"] == "1.30.3"
    for name, pytest_line in (("kind-e2e", ".venv/bin/pytest tests/e2e --with-kind -v"),
                              ("kind-e2e-multicluster", ".venv/bin/pytest tests/e2e --with-kind --kind-clusters 3 -v")):
        job = workflow["jobs"][name]
        setup_python = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@"))
        assert setup_python["with"]["python-version"] == "3.11"
        commands = _commands(job)
        for tool in ("kind", "kubectl", "istioctl"):
            assert any(c.startswith("sudo install -m 0755") and c.endswith(f"/usr/local/bin/{tool}") for c in commands)
        assert "sudo sysctl fs.inotify.max_user_instances=512" in commands
        assert commands.index("make setup") < commands.index(pytest_line)
        down = next(s for s in job["steps"] if s.get("run") == ".venv/bin/harness down --platform kind")
        assert down["if"] == "always()", "the clusters must go even when a test fails"
    assert workflow["jobs"]["kind-e2e-multicluster"]["if"] == "github.event_name != 'pull_request'"


def _asserted_exit_codes(path) -> list[str]:
    """Every `assert <x>.returncode ...` comparison of an e2e test file, as source text."""
    tree = ast.parse(path.read_text())
    return [ast.unparse(node.test) for node in ast.walk(tree) if isinstance(node, ast.Assert)
            and "returncode" in ast.unparse(node.test)]


def test_experiments_that_must_pass_must_exit_0_in_the_e2e_tests() -> None:
    checks = _asserted_exit_codes(E2E / "test_kind_e2e.py") + _asserted_exit_codes(E2E / "test_kind_multicluster_e2e.py")
    assert checks and all("== 0" in check for check in checks), checks
    assert not any("in (0, 1)" in check or "1)" in check for check in checks)
    for name in ("pod-kill.yaml", "cluster-failover.yaml"):
        assert (ROOT / "experiments" / name).is_file()


def test_the_e2e_tests_need_every_tool_up_runs_not_only_kind_and_docker() -> None:
    assert TOOLS == ("docker", "kind", "istioctl", "kubectl")
    ok = subprocess.CompletedProcess([], 0, "27.3.1", "")
    for absent in TOOLS:
        assert missing_tools(which=lambda p, absent=absent: None if p == absent else f"/usr/bin/{p}",
                             run=lambda *a, **k: ok) == f"{absent} is not installed"
    assert missing_tools(which=lambda p: f"/usr/bin/{p}", run=lambda *a, **k: ok) is None
    down = subprocess.CompletedProcess([], 1, "", "Cannot connect")
    assert missing_tools(which=lambda p: f"/usr/bin/{p}", run=lambda *a, **k: down) == "the Docker daemon is not running"
