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


def test_validate_lists_a_foreign_locustfile_and_code_loading_load_env(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    experiment = yaml.safe_load((ROOT / "experiments/pod-kill.yaml").read_text())
    locustfile = tmp_path / "mine.py"
    locustfile.write_text((ROOT / "locustfiles/ai_agent.py").read_text())
    load = experiment["controls"][0]["provider"]["arguments"]["load"]
    load.update(locustfile=str(locustfile), env={"LD_PRELOAD": "/tmp/x.so", "HARNESS_TIER_WEIGHTS": "standard=1"})
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"controls[0].provider.arguments.load.locustfile: python {locustfile}" in out
    assert "load.env.LD_PRELOAD=/tmp/x.so (changes what the Locust process loads)" in out
    assert "HARNESS_TIER_WEIGHTS" not in out


def test_validate_lists_nothing_for_an_experiment_of_harness_activities_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "experiments/pod-kill.yaml")]) == 0
    assert "runs with your rights" not in capsys.readouterr().out
