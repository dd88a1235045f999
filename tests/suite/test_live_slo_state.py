"""Specifications of the game day's live SLO state: every SLO over the last 30 s, whatever its phases."""

from __future__ import annotations

import pytest

from harness.errors import InconclusiveError
from harness.platforms.fake import FakePlatform
from harness.slo import parse_slo
from harness.run.live import evaluate_live
from harness.suite.live import format_results, session_slo_state

AVAILABILITY = parse_slo({"name": "ai-agent-availability", "template": "availability", "service": "ai-agent-service",
                          "objective": 0.995, "comparator": ">=", "phases": ["baseline", "recovery"]})
LATENCY = parse_slo({"name": "ai-agent-latency-p99", "template": "latency", "service": "ai-agent-service",
                     "quantile": 0.99, "objective": 500, "comparator": "<="})


class FakePrometheus:
    def __init__(self, values: dict[str, float | None]) -> None:
        self.values = values
        self.asked: list[tuple[str, float]] = []

    def query(self, promql: str, at: float) -> float | None:
        self.asked.append((promql, at))
        return self.values["latency" if "histogram_quantile" in promql else "availability"]

    def validate(self, promql: str) -> None:
        return None


def test_every_slo_is_shown_over_the_last_30_seconds_even_those_not_declared_for_chaos() -> None:
    prometheus = FakePrometheus({"availability": 0.93, "latency": 120.0})
    results = evaluate_live([AVAILABILITY, LATENCY], prometheus, now=1000.0)
    assert [(r.name, r.value, r.verdict) for r in results] == [("ai-agent-availability", 0.93, "fail"),
                                                               ("ai-agent-latency-p99", 120.0, "pass")]
    assert all(at == 1000.0 for _, at in prometheus.asked)
    assert all("[30s]" in promql for promql, _ in prometheus.asked)
    assert (results[0].window_start, results[0].window_end) == (970.0, 1000.0)


def test_the_lines_show_value_objective_and_verdict_and_no_data_is_not_a_pass() -> None:
    lines = format_results(evaluate_live([AVAILABILITY, LATENCY], FakePrometheus({"availability": None,
                                                                                 "latency": 812.0}), now=50.0))
    assert lines[0] == "live SLOs (last 30 s):"
    assert lines[1].split() == ["ai-agent-availability", "-", "(>=", "0.995)", "NO_DATA"]
    assert lines[2].split() == ["ai-agent-latency-p99", "812", "(<=", "500)", "FAIL"]


def test_without_a_harness_session_the_operator_is_told_so() -> None:
    assert session_slo_state() == [
        "live SLOs: no harness session (is the experiment running under `harness gameday`?)"]


def test_an_unreachable_prometheus_surfaces_as_the_inconclusive_error_the_caller_shows() -> None:
    class Down(FakePrometheus):
        def query(self, promql: str, at: float) -> float | None:
            raise InconclusiveError("Prometheus at http://127.0.0.1:19090 is unreachable")

    with pytest.raises(InconclusiveError):
        evaluate_live([AVAILABILITY], Down({}), now=10.0)


def test_the_running_sessions_slos_are_asked_of_its_prometheus_and_an_unreachable_one_is_reported() -> None:
    from types import SimpleNamespace

    from harness.run import control

    platform = FakePlatform()  # its Prometheus URL names a loopback port nothing listens on
    control.set_session(SimpleNamespace(slos=[AVAILABILITY], platform=platform, load=None,  # type: ignore[arg-type]
                                        telemetry_lag=None))
    try:
        lines = session_slo_state()
    finally:
        control.set_session(None)
    assert len(lines) == 1 and lines[0].startswith("live SLOs: not available (Prometheus at http://127.0.0.1:")


def test_the_game_day_window_ends_the_measured_telemetry_lag_ago_as_the_runs_own_live_line(monkeypatch) -> None:
    """Samples newer than the lag's upper bound do not yet hold every request (harness/slo/lag.py): the
    operator's window ends there, and the heading says so."""
    import time
    from types import SimpleNamespace

    import harness.slo
    from harness.run import control

    prometheus = FakePrometheus({"availability": 0.999, "latency": 120.0})

    class Client:
        def __init__(self, url: str) -> None:
            pass

        def __enter__(self) -> FakePrometheus:
            return prometheus

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(harness.slo, "PrometheusClient", Client)
    control.set_session(SimpleNamespace(slos=[AVAILABILITY], platform=FakePlatform(), load=None,  # type: ignore[arg-type]
                                        telemetry_lag=SimpleNamespace(upper_s=2.5)))
    try:
        before = time.time()
        lines = session_slo_state()
    finally:
        control.set_session(None)
    assert lines[0] == "live SLOs (last 30 s, ending 2.5 s ago: the measured telemetry lag):"
    assert prometheus.asked and all(before - 2.5 - 1 < at <= time.time() - 2.5 for _, at in prometheus.asked)
