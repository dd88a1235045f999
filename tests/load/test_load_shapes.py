"""The load shapes of locustfiles/shapes.py: users over time, read through tick() at chosen run times."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.load.loadkit import ROOT


@pytest.fixture(scope="module")
def shapes() -> Iterator[ModuleType]:
    """locustfiles/shapes.py, imported without gevent's monkey-patching of this test process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
        spec = importlib.util.spec_from_file_location("harness_test_shapes", ROOT / "locustfiles" / "shapes.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    yield module


def ticks(shape: Any, times: list[float]) -> list[Any]:
    """What tick() returns at each run time."""
    out = []
    for t in times:
        shape.get_run_time = lambda t=t: t
        out.append(shape.tick())
    return out


def test_steady_holds_all_users_until_the_duration_then_ends(shapes: ModuleType) -> None:
    shape = shapes.SteadyShape(users=10, spawn_rate=5, duration_s=60)
    assert ticks(shape, [0, 30, 59.9, 60, 61]) == [(10, 5), (10, 5), (10, 5), None, None]


def test_ramp_climbs_in_five_equal_steps_to_all_users(shapes: ModuleType) -> None:
    shape = shapes.RampShape(users=10, spawn_rate=5, duration_s=100)
    users = [tick[0] for tick in ticks(shape, [0, 19.9, 20, 40, 60, 80, 99.9])]
    assert users == [2, 2, 4, 6, 8, 10, 10]
    assert ticks(shape, [100]) == [None]


def test_ramp_with_fewer_users_than_steps_adds_one_user_a_step(shapes: ModuleType) -> None:
    shape = shapes.RampShape(users=3, spawn_rate=5, duration_s=30)
    assert [tick[0] for tick in ticks(shape, [0, 10, 20, 29])] == [1, 2, 3, 3]


def test_spike_jumps_to_all_users_for_the_middle_fifth_then_falls_back(shapes: ModuleType) -> None:
    shape = shapes.SpikeShape(users=50, spawn_rate=5, duration_s=100)
    users = [tick[0] for tick in ticks(shape, [0, 39.9, 40, 59.9, 60, 99.9])]
    assert users == [5, 5, 50, 50, 5, 5]
    assert all(rate >= 50 for _, rate in ticks(shape, [40]))  # the spike arrives within a second
    assert ticks(shape, [100]) == [None]


def test_soak_holds_all_users_for_an_hour_by_default_reached_over_its_first_tenth(
        shapes: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_DURATION_S", raising=False)
    shape = shapes.SoakShape(users=100, spawn_rate=50)
    assert shape.duration_s == 3600
    (users, rate), = ticks(shape, [0])
    assert users == 100 and users / rate <= 0.1 * 3600 + 1
    assert ticks(shape, [3599, 3600]) == [(100, rate), None]


def test_shape_parameters_come_from_the_environment(shapes: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_USERS", "7")
    monkeypatch.setenv("HARNESS_SPAWN_RATE", "2")
    monkeypatch.setenv("HARNESS_DURATION_S", "12")
    assert ticks(shapes.SteadyShape(), [0, 12]) == [(7, 2.0), None]


def test_harness_load_shape_picks_the_class_and_an_unknown_name_lists_the_valid_ones(
        shapes: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_LOAD_SHAPE", raising=False)
    assert shapes.shape_from_env() is None
    for name, cls in [("steady", shapes.SteadyShape), ("ramp", shapes.RampShape), ("spike", shapes.SpikeShape),
                      ("soak", shapes.SoakShape)]:
        monkeypatch.setenv("HARNESS_LOAD_SHAPE", name)
        assert shapes.shape_from_env() is cls
    monkeypatch.setenv("HARNESS_LOAD_SHAPE", "sawtooth")
    with pytest.raises(ValueError, match="ramp, soak, spike, steady"):
        shapes.shape_from_env()


def test_a_bad_shape_parameter_names_its_variable(shapes: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_USERS", "many")
    with pytest.raises(ValueError, match="HARNESS_USERS"):
        shapes.SteadyShape()


def test_no_shape_class_is_runnable_by_locust_on_its_own(shapes: ModuleType) -> None:
    assert all(cls.abstract for cls in shapes.SHAPES.values())


def test_the_harness_accepts_exactly_the_shapes_the_shipped_locustfile_has(shapes: ModuleType) -> None:
    """Two programs share the names: the harness checks HARNESS_LOAD_SHAPE before anything starts
    (harness.load.SHAPES), and the plain locustfile must run without the harness installed; this pins
    that both name the same shapes."""
    from harness.load import SHAPES

    assert sorted(shapes.SHAPES) == sorted(SHAPES)
