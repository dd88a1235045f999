"""Specifications of the PromQL rendered for mesh SLOs and of window durations."""

from __future__ import annotations

import pytest

from harness.slo import Slo, prometheus_duration, render_promql

SELECTOR = 'reporter="source",destination_service_name="ai-agent-service"'


def _slo(**fields: object) -> Slo:
    return Slo(**{"name": "s", "objective": 0.99, "comparator": ">=", "service": "ai-agent-service", **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(37, "37s"), (37.0, "37s"), (3600, "3600s"), (37.25, "37250ms"), (0.001, "1ms"), (1.0004, "1s")],
)
def test_a_window_becomes_a_prometheus_range_in_whole_seconds_or_milliseconds(seconds: float, expected: str) -> None:
    assert prometheus_duration(seconds) == expected


@pytest.mark.parametrize("seconds", [0, 0.0004, -5])
def test_a_window_under_a_millisecond_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="at least 1 ms"):
        prometheus_duration(seconds)


def _count(series: str, window: str) -> str:
    """Requests of a selector in the window: increase() for a series seen in the 5 minutes before it
    (a range, so stale markers do not count), the largest value of one born in it (its first sample
    included). What they compute: test_promql_counts.py."""
    existed = f"last_over_time({series}[5m] offset {window})"
    return (f"((sum(increase({series}[{window}]) and {existed}) or vector(0)) + "
            f"(sum(max_over_time({series}[{window}]) unless {existed}) or vector(0)))")


ERRORS = f'istio_requests_total{{{SELECTOR},response_code=~"5.."}}'
TOTAL = f"istio_requests_total{{{SELECTOR}}}"


def test_availability_is_one_minus_the_5xx_share_of_istio_requests_over_the_window() -> None:
    assert render_promql(_slo(template="availability"), 37) == f"1 - ({_count(ERRORS, '37s')} / {_count(TOTAL, '37s')})"


def test_error_ratio_is_the_5xx_share_and_counts_no_5xx_series_as_zero() -> None:
    assert render_promql(_slo(template="error_ratio"), 90.5) == f"{_count(ERRORS, '90500ms')} / {_count(TOTAL, '90500ms')}"


def test_latency_is_histogram_quantile_over_the_duration_buckets_in_ms() -> None:
    buckets = f"istio_request_duration_milliseconds_bucket{{{SELECTOR}}}"
    existed = f"last_over_time({buckets}[5m] offset 60s)"
    old = f"sum by (le) (increase({buckets}[60s]) and {existed})"
    new = f"sum by (le) (max_over_time({buckets}[60s]) unless {existed})"
    assert render_promql(_slo(template="latency", quantile=0.99, objective=500, comparator="<="), 60) == (
        f"histogram_quantile(0.99, {old} + {new} or {old} or {new})"
    )


def test_the_reporter_selects_whose_view_is_judged() -> None:
    promql = render_promql(_slo(template="availability", reporter="destination", service="user-service"), 10)

    assert 'reporter="destination",destination_service_name="user-service"' in promql
    assert 'reporter="source"' not in promql


def test_a_raw_query_gets_window_and_service_and_keeps_other_dollars() -> None:
    query = 'label_replace(sum(rate(x{s="$service"}[$window])), "a", "$1", "b", "(.*)") + $windows'

    assert render_promql(_slo(query=query), 12) == (
        'label_replace(sum(rate(x{s="ai-agent-service"}[12s])), "a", "$1", "b", "(.*)") + $windows'
    )


def test_a_client_slo_has_no_promql() -> None:
    with pytest.raises(ValueError, match="client samples"):
        render_promql(_slo(source="client", template="availability", service=None), 10)
