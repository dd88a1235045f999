"""Specifications of the breach watch that lets the runner stop chaos early."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from harness.slo import PrometheusClient, Slo, watch_for_breach

ABORTING = Slo(name="ai-agent-availability", template="availability", service="ai-agent-service", objective=0.995,
               comparator=">=", abort_on_breach=True)  # fmt: skip


def _data_clock(start: float, step_s: float = 1.0) -> Callable[[], float]:
    """A clock over the test data's past: each call is `step_s` later, so polls walk through known seconds."""
    calls = iter(range(100_000))
    return lambda: start + next(calls) * step_s


class _FakePrometheus:
    """Answers every query with the next value of a script; for what real data cannot show."""

    def __init__(self, values: list[float | None], stop_after: threading.Event | None = None) -> None:
        self.values, self.queries, self.stop_after = values, [], stop_after

    def query(self, promql: str, at: float) -> float | None:
        self.queries.append((promql, at))
        if self.stop_after is not None and len(self.queries) >= len(self.values):
            self.stop_after.set()
        return self.values[min(len(self.queries), len(self.values)) - 1]

    def validate(self, promql: str) -> None:
        pass


def test_the_first_breach_in_the_trailing_window_is_returned_with_when_it_was_seen(prometheus: Any) -> None:
    with PrometheusClient(prometheus.url) as client:
        breach = watch_for_breach(
            [ABORTING], client, since=prometheus.at(100), timeout_s=30, window_s=10, poll_interval_s=0.001,
            clock=_data_clock(prometheus.at(100)),
        )  # fmt: skip

    assert breach is not None
    # The first 503 is at second 130: 1 error in the 100 requests of (120, 130] is 0.99 < 0.995.
    assert breach.seen_at == prometheus.at(130)
    assert breach.result.value == pytest.approx(0.99)
    assert (breach.result.verdict, breach.result.phase) == ("fail", "chaos")
    assert (breach.result.window_start, breach.result.window_end) == (prometheus.at(120), prometheus.at(130))


def test_no_breach_until_the_timeout_returns_none(prometheus: Any) -> None:
    with PrometheusClient(prometheus.url) as client:
        breach = watch_for_breach(
            [ABORTING], client, since=prometheus.at(200), timeout_s=0.3, window_s=10, poll_interval_s=0.01,
            clock=_data_clock(prometheus.at(200)),
        )  # fmt: skip

    assert breach is None


def test_the_watch_waits_two_poll_intervals_before_its_first_query() -> None:
    fake = _FakePrometheus([0.5])

    breach = watch_for_breach([ABORTING], fake, since=1000, timeout_s=5, poll_interval_s=0.125,
                              clock=_data_clock(1000, step_s=0.125))  # fmt: skip

    # polls at 1000, 1000.125 and 1000.25; only the last spans two scrape intervals, enough for rate()
    assert breach is not None and breach.seen_at == 1000.25
    assert [at for _, at in fake.queries] == [breach.seen_at]


def test_no_data_and_passes_do_not_stop_the_chaos_and_the_stop_event_ends_the_watch() -> None:
    stop = threading.Event()
    fake = _FakePrometheus([None, 1.0, None], stop_after=stop)

    breach = watch_for_breach([ABORTING], fake, since=0, timeout_s=30, poll_interval_s=0.001, stop=stop,
                              clock=_data_clock(10))  # fmt: skip

    assert breach is None
    assert len(fake.queries) == 3


def test_only_abort_on_breach_slos_are_watched() -> None:
    fake = _FakePrometheus([0.0])
    quiet = Slo(name="quiet", template="availability", service="s", objective=0.995, comparator=">=")

    assert watch_for_breach([quiet], fake, since=0, timeout_s=0.05, poll_interval_s=0.01, clock=_data_clock(10)) is None
    assert fake.queries == []
