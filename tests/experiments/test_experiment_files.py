"""Every shipped experiment is valid for Chaos Toolkit and for the harness, and bad ones are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.run.runner import check_only

EXPERIMENTS = sorted((Path(__file__).parents[2] / "experiments").glob("*.yaml"))
POD_KILL = Path(__file__).parents[2] / "experiments" / "pod-kill.yaml"


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_is_valid(path: Path) -> None:
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    ensure_experiment_is_valid(load_experiment(str(path)))
    check_only(path)


def test_the_five_experiments_and_their_failing_variants_are_shipped() -> None:
    names = {p.stem for p in EXPERIMENTS}
    assert {"pod-kill", "latency-injection", "abort-injection", "cluster-failover", "canary"} <= names
    tagged = {p.stem for p in EXPERIMENTS if "failing-variant" in yaml.safe_load(p.read_text()).get("tags", [])}
    assert len(tagged) >= 5


def broken(tmp_path: Path, change) -> Path:
    doc = yaml.safe_load(POD_KILL.read_text())
    change(doc)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("title: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        check_only(path)


def test_an_unknown_action_is_named(tmp_path: Path) -> None:
    path = broken(tmp_path, lambda d: d["method"][0]["provider"].update(func="explode"))
    with pytest.raises(ConfigError) as error:
        check_only(path)
    assert "explode" in str(error.value) and "broken.yaml" in str(error.value)


def test_a_wrong_argument_type_names_the_field(tmp_path: Path) -> None:
    path = broken(tmp_path, lambda d: d["method"][0]["provider"]["arguments"].update(count="one"))
    with pytest.raises(ConfigError, match=r"method\[0\]\.provider\.arguments\.count.*expected int"):
        check_only(path)


def test_an_unknown_service_is_named(tmp_path: Path) -> None:
    path = broken(tmp_path, lambda d: d["method"][0]["provider"]["arguments"].update(service="payments"))
    with pytest.raises(ConfigError, match=r"arguments\.service.*unknown service 'payments'"):
        check_only(path)


def test_a_missing_locustfile_is_named(tmp_path: Path) -> None:
    path = broken(tmp_path, lambda d: d["controls"][0]["provider"]["arguments"]["load"].update(locustfile="nope.py"))
    with pytest.raises(ConfigError, match=r"load\.locustfile.*nope\.py"):
        check_only(path)


def test_an_slo_file_with_a_missing_field_is_named(tmp_path: Path) -> None:
    slos = tmp_path / "slos.yaml"
    slos.write_text("slos:\n  - name: x\n    template: availability\n    service: user-service\n    comparator: '>='\n")
    path = broken(tmp_path, lambda d: d["controls"][0]["provider"]["arguments"].update(slo_file=str(slos), slos=None))
    with pytest.raises(ConfigError, match=r"slos\.yaml.*objective"):
        check_only(path)
