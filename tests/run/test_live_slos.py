"""Specifications of the progress line's live SLO state (harness.run.live.LiveSlos)."""

from __future__ import annotations

import time

from harness.errors import InconclusiveError
from harness.run.live import LiveSlos
from harness.slo import parse_slo

AVAILABILITY = parse_slo({"name": "ai-agent-availability", "template": "availability", "service": "ai-agent-service",
                          "objective": 0.995, "comparator": ">=", "phases": ["baseline", "recovery"]})
LATENCY = parse_slo({"name": "ai-agent-latency-p99", "template": "latency", "service": "ai-agent-service",
                     "quantile": 0.99, "objective": 500, "comparator": "<="})
CLIENT = parse_slo({"name": "chat-errors", "source": "client", "template": "error_ratio", "objective": 0.01,
                    "comparator": "<="})


class FakePrometheus:
    def __init__(self, availability: float | None, latency: float | None, down: bool = False) -> None:
        self.values = {"availability": availability, "latency": latency}
        self.down = down
        self.asked: list[tuple[str, float]] = []

    def query(self, promql: str, at: float) -> float | None:
        if self.down:
            raise InconclusiveError("Prometheus at http://127.0.0.1:1 is unreachable")
        self.asked.append((promql, at))
        return self.values["latency" if "histogram_quantile" in promql else "availability"]

    def validate(self, promql: str) -> None:
        return None


def test_the_line_shows_each_mesh_slo_with_value_objective_and_state() -> None:
    live = LiveSlos([AVAILABILITY, LATENCY, CLIENT], FakePrometheus(0.9962, 612.4), lag_s=2.0)
    before = time.time()
    live.poll()
    assert live.summary() == ("slo(30s) ai-agent-availability 99.6% >= 99.5% ok, "
                              "ai-agent-latency-p99 612ms <= 500ms BREACH")
    asked_at = {at for _, at in live.client.asked}
    assert len(asked_at) == 1 and before - 2.0 <= asked_at.pop() <= time.time() - 2.0


def test_no_data_is_shown_as_such_and_client_slos_are_left_to_the_end() -> None:
    live = LiveSlos([AVAILABILITY, CLIENT], FakePrometheus(None, None), lag_s=2.0)
    live.poll()
    assert live.summary() == "slo(30s) ai-agent-availability no data"


def test_an_unreachable_prometheus_is_on_the_line_and_the_last_state_is_kept() -> None:
    prometheus = FakePrometheus(0.999, 100.0)
    live = LiveSlos([AVAILABILITY], prometheus, lag_s=2.0)
    assert live.summary() == ""
    prometheus.down = True
    live.poll()
    assert live.summary() == "slo: Prometheus at http://127.0.0.1:1 is unreachable"
    prometheus.down = False
    live.poll()
    prometheus.down = True
    live.poll()
    assert live.summary() == "slo(30s) ai-agent-availability 99.9% >= 99.5% ok"


def test_the_thread_polls_until_stopped() -> None:
    prometheus = FakePrometheus(0.999, 100.0)
    live = LiveSlos([AVAILABILITY], prometheus, lag_s=2.0, every_s=0.01)
    live.start()
    deadline = time.monotonic() + 5
    while not live.latest() and time.monotonic() < deadline:
        time.sleep(0.01)
    live.stop()
    assert not live.is_alive()
    assert [r.name for r in live.latest()] == ["ai-agent-availability"]
    asked = len(prometheus.asked)
    time.sleep(0.05)
    assert len(prometheus.asked) == asked
