"""Load and SLO settings from the command line and HARNESS_* variables, over the experiment's own.

Every value goes through the load layer's one table of limits (harness.load._spec.NUMBER_RULES), and
an error names the flag or variable the bad value came from, before anything starts (exit 2).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.run.overrides import apply, collect, settings_for
from harness.run.settings import parse_settings

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfiles" / "ai_agent.py"
POD_KILL = ROOT / "experiments" / "pod-kill.yaml"


def harness_settings(**load: object) -> object:
    return parse_settings({"load": {"locustfile": str(LOCUSTFILE), "users": 3, **load}}, ROOT)


def test_a_flag_wins_over_its_variable_and_both_over_the_experiment() -> None:
    overrides = collect({"users": "40", "rate": None}, {"HARNESS_USERS": "7", "HARNESS_RATE": "200",
                                                        "HARNESS_DURATION": "2m"})
    assert (overrides.users, overrides.rate, overrides.duration_s) == (40, 200.0, 120.0)
    assert overrides.sources["users"] == "--users" and overrides.sources["rate"] == "HARNESS_RATE"
    settings = apply(harness_settings(think_time_s=[0.1, 0.3]), overrides)
    assert (settings.load.users, settings.load.rate, settings.load.duration_s) == (40, 200.0, 120.0)
    assert settings.load.think_time_s is None  # a rate sets each user's wait instead


@pytest.mark.parametrize(("flags", "environ", "field"), [
    ({"users": "0"}, {}, "--users"),
    ({"users": "many"}, {}, "--users"),
    ({}, {"HARNESS_USERS": "100000"}, "HARNESS_USERS"),
    ({"rate": "0"}, {}, "--rate"),
    ({"rate": "nan"}, {}, "--rate"),
    ({"duration": "soon"}, {}, "--duration"),
    ({}, {"HARNESS_WORKERS": "999"}, "HARNESS_WORKERS"),
])
def test_a_bad_override_is_refused_naming_the_flag_or_variable(flags: dict[str, str], environ: dict[str, str],
                                                              field: str) -> None:
    names = {"duration": "duration_s"}
    with pytest.raises(ConfigError) as caught:
        apply(harness_settings(), collect({names.get(k, k): v for k, v in flags.items()}, environ))
    assert caught.value.field == field


def test_changing_the_load_of_an_experiment_without_one_asks_for_a_locustfile() -> None:
    with pytest.raises(ConfigError) as caught:
        apply(parse_settings({}, ROOT), collect({"users": "5"}, {}))
    assert caught.value.field == "--users" and "--locustfile" in caught.value.message


def test_a_time_based_shape_needs_a_duration_that_outlasts_the_phases() -> None:
    with pytest.raises(ConfigError) as caught:
        harness_settings(shape="ramp")
    assert caught.value.field.endswith("load.duration_s")
    with pytest.raises(ConfigError) as caught:
        apply(harness_settings(shape="ramp", duration_s=60), collect({"duration_s": "10s"}, {}))
    assert caught.value.field == "--duration" and "lengthen" in caught.value.message


def test_a_plain_experiment_without_load_and_slos_is_told_exactly_which_flags_to_add(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    with pytest.raises(ConfigError) as caught:
        settings_for({}, path, None, collect({"users": "5"}, {}))
    message = caught.value.message
    assert "--locustfile FILE" in message and "--slo-file FILE" in message
    assert "--users" not in message.split("add ")[1].split(", as in")[0]  # given: not asked for again


def test_validate_takes_the_same_overrides_as_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(POD_KILL), "--users", "40", "--rate", "300", "--duration", "60s"]) == 0
    assert main(["validate", str(POD_KILL), "--rate", "-1"]) == 2
    assert "--rate" in capsys.readouterr().err


def test_a_load_duration_holds_the_recovery_window_until_the_load_ran_that_long() -> None:
    """HarnessRun._load_left_s: what the recovery window adds so the load runs `duration_s` from its start."""
    import time
    from types import SimpleNamespace

    from harness.run.session import HarnessRun

    settings = apply(harness_settings(), collect({"duration_s": "60s"}, {}))
    started_10_s_ago = SimpleNamespace(settings=settings, load_started_at=time.time() - 10)
    assert 49 < HarnessRun._load_left_s(started_10_s_ago) <= 50
    without = SimpleNamespace(settings=harness_settings(), load_started_at=time.time() - 10)
    assert HarnessRun._load_left_s(without) == 0.0
