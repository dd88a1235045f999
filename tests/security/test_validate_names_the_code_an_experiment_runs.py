"""Experiments are code run with the user's rights: `harness validate` names every `process` activity and
every Python function outside the harness that an experiment would run, instead of a bare "valid"."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli import main

ROOT = Path(__file__).parents[2]


def test_validate_lists_process_activities_and_foreign_python_functions(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    experiment = yaml.safe_load((ROOT / "experiments/pod-kill.yaml").read_text())
    experiment["method"].append({"type": "action", "name": "run-a-script",
                                 "provider": {"type": "process", "path": "echo", "arguments": "hello"}})
    experiment["steady-state-hypothesis"]["probes"].append(
        {"type": "probe", "name": "json-dumps", "tolerance": "[]",
         "provider": {"type": "python", "module": "json", "func": "dumps", "arguments": {"obj": []}}})
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid" in out
    assert "runs with your rights: method[1] (run-a-script): process echo hello" in out
    assert "runs with your rights: steady-state-hypothesis.probes[1] (json-dumps): python json.dumps" in out
    assert "harness.chaos" not in out, "the harness's own actions and probes are not listed"


def test_validate_lists_nothing_for_an_experiment_of_harness_activities_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "experiments/pod-kill.yaml")]) == 0
    assert "runs with your rights" not in capsys.readouterr().out
