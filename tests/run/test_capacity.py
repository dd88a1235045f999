"""Capacity at SLO: the staircase, per-step figures and verdicts, and where and why it broke.

The steps and the SLOs come from the real modules (harness.run.capacity, harness.slo.evaluate on
client samples); the live climb on the real mesh is in tests/local_mesh/test_capacity_run.py.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.run import capacity
from harness.run.capacity import CapacitySettings, parse_capacity, step_metrics, summarise
from harness.run.runner import prepare
from harness.slo.loader import parse_slo

ROOT = Path(__file__).resolve().parents[2]
WHERE = "controls[harness].provider.arguments.capacity"


def test_the_staircase_runs_from_start_to_the_ceiling_in_whole_users() -> None:
    settings = parse_capacity({"start_rps": 40, "step_rps": 40, "step_s": 10, "ceiling_rps": 130}, WHERE)
    assert settings.targets() == [40, 80, 120]
    assert [settings.users_for(r) for r in settings.targets()] == [8, 16, 24]  # 5 req/s per user


@pytest.mark.parametrize(("raw", "field"), [
    ({"step_rps": 10, "step_s": 10, "ceiling_rps": 100}, "start_rps"),
    ({"start_rps": 12, "step_rps": 10, "step_s": 10, "ceiling_rps": 100}, "start_rps"),  # not whole users
    ({"start_rps": 10, "step_rps": 10, "step_s": 10, "ceiling_rps": 5}, "ceiling_rps"),
    ({"start_rps": 10, "step_rps": 10, "step_s": 1, "ceiling_rps": 50}, "step_s"),
    ({"start_rps": 10, "step_rps": 10, "step_s": 10, "ceiling_rps": 50, "settle_s": 10}, "settle_s"),
    ({"start_rps": 10, "step_rps": float("nan"), "step_s": 10, "ceiling_rps": 50}, "step_rps"),
    ({"start_rps": 10, "step_rps": 10, "step_s": 10, "ceiling_rps": 50, "knee": 1}, None),
])
def test_bad_capacity_settings_name_the_field(raw: dict[str, Any], field: str | None) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_capacity(raw, WHERE)
    assert caught.value.field == (f"{WHERE}.{field}" if field else WHERE)


def test_the_shipped_capacity_experiments_start_at_their_first_step_and_fit_in_three_minutes() -> None:
    for name in ("capacity", "capacity-under-pod-kill"):
        experiment, settings = prepare(ROOT / "experiments" / f"{name}.yaml")
        assert "release" in experiment["tags"]
        first = settings.capacity.targets()[0]
        assert settings.load.users == settings.capacity.users_for(first)
        assert settings.load.rate == pytest.approx(first)
        assert settings.warmup_s + settings.baseline_s + settings.capacity.duration_s + settings.recovery_s < 150


def test_a_capacity_run_refuses_users_or_rate_of_its_own(tmp_path: Path) -> None:
    text = (ROOT / "experiments" / "capacity.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("spawn_rate: 50}", "spawn_rate: 50, users: 30}"))
    with pytest.raises(ConfigError) as caught:
        prepare(path)
    assert caught.value.field.endswith("load.users")
    path.write_text(text.replace("func: climb}", "func: climb}\n  - {type: action, name: again, provider: "
                                 "{type: python, module: harness.run.capacity, func: climb}}"))
    with pytest.raises(ConfigError) as caught:
        prepare(path)
    assert caught.value.field == "method" and "exactly one" in caught.value.message


def samples(rows: list[tuple[float, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame({"timestamp": [r[0] for r in rows], "latency_ms": [r[1] for r in rows],
                         "ok": [r[2] for r in rows], "status": [200 if r[2] else 503 for r in rows],
                         "name": "chat [standard]", "tier": "standard"})


def test_step_figures_describe_only_the_requests_of_the_step() -> None:
    frame = samples([((t + 0.5) / 10, 10.0 if t < 100 else 900.0, t % 50 != 0) for t in range(200)])
    first, second = step_metrics(frame, 0.0, 10.0), step_metrics(frame, 10.0, 20.0)
    assert first["throughput_rps"] == pytest.approx(10.0) and second["throughput_rps"] == pytest.approx(10.0)
    assert first["p99_ms"] == 10.0 and second["p50_ms"] == 900.0
    assert second["error_ratio"] == pytest.approx(0.02)


def fake_session(settings: CapacitySettings, frame: pd.DataFrame, steps: list[dict[str, Any]]) -> Any:
    slos = [parse_slo({"name": "client-p99", "source": "client", "template": "latency", "quantile": 0.99,
                       "objective": 500, "comparator": "<=", "phases": ["baseline"]}),
            parse_slo({"name": "client-ok", "source": "client", "template": "availability", "objective": 0.99,
                       "comparator": ">=", "phases": ["baseline"]})]
    load = SimpleNamespace(samples=lambda: frame)
    return SimpleNamespace(settings=SimpleNamespace(capacity=settings), slos=slos, load=load, capacity_steps=steps,
                           platform=None, result={"slo_results": [], "inconclusive": None})


def test_the_capacity_is_the_highest_step_below_the_first_that_broke_and_says_which_slo() -> None:
    settings = CapacitySettings(start_rps=10, step_rps=10, step_s=10, ceiling_rps=40, user_rps=5, settle_s=0,
                                min_rps=20)
    rows = []
    for index, rate in enumerate((10, 20, 30, 40)):  # latency grows past 500 ms at the third step
        start = index * 10.0
        rows += [(start + (i + 0.5) / rate, 100.0 if rate < 30 else 800.0, True) for i in range(rate * 10)]
    steps = [{"target_rps": r, "users": r // 5, "start": i * 10.0, "end": i * 10.0 + 10} for i, r in
             enumerate((10, 20, 30, 40))]
    session = fake_session(settings, samples(rows), steps)
    capacity.judge(session)
    summary = session.result["capacity"]
    assert summary["capacity_rps"] == 20
    assert summary["broke_at"]["target_rps"] == 30 and "client-p99 fail" in summary["broke_at"]["why"]
    assert summary["per_service"] == {"client": 20}
    row = session.result["slo_results"][-1]
    assert (row["name"], row["value"], row["verdict"]) == ("capacity-at-slo", 20, "pass")
    assert session.result["inconclusive"] is None


def test_a_step_that_locust_could_not_reach_did_not_hold_and_below_min_rps_fails() -> None:
    settings = CapacitySettings(start_rps=10, step_rps=10, step_s=10, ceiling_rps=20, user_rps=5, settle_s=0,
                                min_rps=20)
    rows = [(i / 10 + 0.05, 50.0, True) for i in range(100)] + [(10 + i / 12 + 0.01, 50.0, True) for i in range(120)]
    steps = [{"target_rps": 10, "users": 2, "start": 0.0, "end": 10.0},
             {"target_rps": 20, "users": 4, "start": 10.0, "end": 20.0}]
    session = fake_session(settings, samples(rows), steps)
    capacity.judge(session)
    summary = session.result["capacity"]
    assert summary["capacity_rps"] == 10 and "under 90% of the step's 20" in summary["broke_at"]["why"]
    assert session.result["slo_results"][-1]["verdict"] == "fail"


def test_no_step_is_no_capacity_and_the_run_is_inconclusive() -> None:
    settings = CapacitySettings(start_rps=10, step_rps=10, step_s=10, ceiling_rps=20)
    session = fake_session(settings, samples([]), [])
    capacity.judge(session)
    assert "climb ran no step" in session.result["inconclusive"]
    assert summarise([], settings)["capacity_rps"] is None


def _judged(held: list[bool], confirm: int) -> dict[str, Any]:
    steps = [{"target_rps": 10.0 * (i + 1), "held": ok, "reached": True, "services": {"client": ok},
              "why": "" if ok else "client-ok fail: 0.98 (objective >= 0.99)"} for i, ok in enumerate(held)]
    settings = CapacitySettings(start_rps=10, step_rps=10, step_s=10, ceiling_rps=10.0 * len(held), user_rps=5,
                                confirm_steps=confirm)
    return summarise(steps, settings)


def test_a_break_counts_once_the_next_heavier_step_breaks_too_and_a_blip_is_reported() -> None:
    """One step's window failing on a burst that the next, heavier step does not repeat is a blip, not
    the capacity: the climb goes on and the report says so. confirm_steps: 1 judges every break at once."""
    summary = _judged([True, False, True, True, False, False], confirm=2)
    assert summary["capacity_rps"] == 40 and summary["broke_at"]["target_rps"] == 50
    assert summary["per_service"] == {"client": 40}
    assert [b["target_rps"] for b in summary["blips"]] == [20]
    assert "next step held: 20 req/s" in summary["headline"]
    once = _judged([True, False, True, True, False, False], confirm=1)
    assert once["capacity_rps"] == 10 and once["broke_at"]["target_rps"] == 20 and once["blips"] == []
    # a break at the last step the climb ran has no step after it: it counts
    assert _judged([True, True, False], confirm=2)["capacity_rps"] == 20
    assert capacity.first_break([True, False, True, False, True], 2) is None


def test_confirm_steps_is_a_whole_number_from_1_to_5() -> None:
    raw = {"start_rps": 10, "step_rps": 10, "step_s": 10, "ceiling_rps": 50}
    assert parse_capacity({**raw, "confirm_steps": 3}, WHERE).confirm_steps == 3
    for bad in (0, 6, 1.5, "2"):
        with pytest.raises(ConfigError) as caught:
            parse_capacity({**raw, "confirm_steps": bad}, WHERE)
        assert caught.value.field == f"{WHERE}.confirm_steps"


def test_unreadable_samples_make_the_capacity_inconclusive_not_a_failure() -> None:
    settings = CapacitySettings(start_rps=10, step_rps=10, step_s=10, ceiling_rps=20, user_rps=5, settle_s=0)
    steps = [{"target_rps": 10, "users": 2, "start": 0.0, "end": 10.0}]
    session = fake_session(settings, samples([]), steps)

    def unreadable() -> pd.DataFrame:
        raise ValueError("samples.csv: latency_ms is not a number in row 3")

    session.load = SimpleNamespace(samples=unreadable)
    capacity.judge(session)
    assert "could not be read" in session.result["inconclusive"] and "row 3" in session.result["inconclusive"]
