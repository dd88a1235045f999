"""Specifications of mesh SLOs against a real Prometheus holding known Istio series (see conftest.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.errors import ConfigError, InconclusiveError, SloQueryError
from harness.slo import PrometheusClient, Slo, evaluate, load_slo_file, validate_slos

SHIPPED = Path(__file__).resolve().parents[2] / "slos"
BASELINE, CHAOS, RECOVERY, SILENCE = (0, 100), (100, 200), (200, 300), (300, 400)


@pytest.fixture
def client(prometheus: Any) -> Iterator[PrometheusClient]:
    with PrometheusClient(prometheus.url) as real:
        yield real


def _slo(template: str = "availability", service: str = "ai-agent-service", **fields: Any) -> Slo:
    defaults: dict[str, Any] = {"objective": 0.995, "comparator": ">="}
    if template == "latency":
        defaults = {"objective": 500, "comparator": "<=", "quantile": 0.99}
    if template == "error_ratio":
        defaults = {"objective": 0.005, "comparator": "<="}
    fields = {"name": f"{service}-{template}", "template": template, "service": service, **defaults, **fields}
    return Slo(**fields)


def _one(slo: Slo, phase: str, window: tuple[float, float], prometheus: Any, client: PrometheusClient) -> Any:
    (result,) = evaluate([slo], phase, prometheus.at(window[0]), prometheus.at(window[1]), client)  # type: ignore[arg-type]
    return result


def test_availability_over_the_chaos_window_is_one_minus_3_errors_in_1000(prometheus: Any, client: PrometheusClient) -> None:
    result = _one(_slo(), "chaos", CHAOS, prometheus, client)

    assert result.value == pytest.approx(0.997)
    assert result.verdict == "pass"
    assert (result.window_start, result.window_end) == (prometheus.at(100), prometheus.at(200))
    assert "[100s]" in result.query and result.source == "mesh"


def test_availability_below_the_objective_fails(prometheus: Any, client: PrometheusClient) -> None:
    result = _one(_slo(objective=0.998), "chaos", CHAOS, prometheus, client)

    assert (result.verdict, result.passed) == ("fail", False)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        pytest.param(BASELINE, 1.0, id="baseline_has_no_errors"),
        pytest.param(RECOVERY, 1.0, id="recovery_has_no_errors"),
        pytest.param((100, 129), 1.0, id="ends_just_before_the_first_error"),
        pytest.param((129, 130), 0.9, id="one_second_holding_the_first_error"),
        pytest.param((130, 150), 1 - 1 / 200, id="starts_after_the_first_error_ends_on_the_second"),
        pytest.param((50, 150), 1 - 2 / 1000, id="straddles_baseline_and_chaos"),
    ],
)
def test_availability_covers_exactly_the_window_it_is_given(
    prometheus: Any, client: PrometheusClient, window: tuple[float, float], expected: float
) -> None:
    assert _one(_slo(), "chaos", window, prometheus, client).value == pytest.approx(expected)


def test_error_ratio_is_the_5xx_share(prometheus: Any, client: PrometheusClient) -> None:
    result = _one(_slo("error_ratio"), "chaos", CHAOS, prometheus, client)

    assert result.value == pytest.approx(0.003)
    assert result.verdict == "pass"


def test_a_service_with_no_5xx_series_at_all_is_fully_available_not_no_data(prometheus: Any, client: PrometheusClient) -> None:
    availability = _one(_slo(service="analytics-service"), "chaos", CHAOS, prometheus, client)
    errors = _one(_slo("error_ratio", service="analytics-service"), "chaos", CHAOS, prometheus, client)

    assert (availability.value, availability.verdict) == (1.0, "pass")
    assert (errors.value, errors.verdict) == (0.0, "pass")


def test_a_service_with_many_errors_breaches(prometheus: Any, client: PrometheusClient) -> None:
    result = _one(_slo(service="user-service"), "chaos", CHAOS, prometheus, client)

    assert result.value == pytest.approx(0.8)
    assert result.verdict == "fail"


def test_the_reporter_selects_the_destinations_view(prometheus: Any, client: PrometheusClient) -> None:
    result = _one(_slo(reporter="destination"), "chaos", CHAOS, prometheus, client)

    assert result.value == 1.0  # the callee's sidecars saw no 5xx; the gateway saw 3


def test_p99_latency_interpolates_within_envoys_buckets_in_ms(prometheus: Any, client: PrometheusClient) -> None:
    baseline = _one(_slo("latency"), "baseline", BASELINE, prometheus, client)
    chaos = _one(_slo("latency"), "chaos", CHAOS, prometheus, client)
    tighter = _one(_slo("latency", objective=400), "chaos", CHAOS, prometheus, client)

    # 9.9 of 10 requests/s: baseline 10 + 15 * (9.9 - 5) / 5 in (10, 25]; chaos 250 + 250 * 0.9 in (250, 500].
    assert (baseline.value, baseline.verdict) == (pytest.approx(24.7), "pass")
    assert (chaos.value, chaos.verdict) == (pytest.approx(475.0), "pass")
    assert tighter.verdict == "fail"


def test_p50_latency_of_the_chaos_window(prometheus: Any, client: PrometheusClient) -> None:
    assert _one(_slo("latency", quantile=0.5), "chaos", CHAOS, prometheus, client).value == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("slo", "window"),
    [
        pytest.param(_slo(), (-600, -500), id="a_window_before_any_data"),
        pytest.param(_slo(), SILENCE, id="a_window_with_no_requests_is_not_100_percent"),
        pytest.param(_slo("latency"), SILENCE, id="latency_with_no_requests"),
        pytest.param(_slo(service="checkout-service"), CHAOS, id="a_service_with_no_series"),
    ],
)
def test_no_data_is_a_no_data_verdict_never_a_pass(
    prometheus: Any, client: PrometheusClient, slo: Slo, window: tuple[float, float]
) -> None:
    result = _one(slo, "chaos", window, prometheus, client)

    assert (result.verdict, result.value, result.passed) == ("no_data", None, False)
    assert "no series or NaN" in result.detail


def test_a_raw_query_is_evaluated_with_window_and_service(prometheus: Any, client: PrometheusClient) -> None:
    query = 'sum(increase(istio_requests_total{reporter="source",destination_service_name="$service"}[$window]))'
    slo = Slo(name="requests", query=query, service="ai-agent-service", objective=1000, comparator=">=")

    result = _one(slo, "chaos", CHAOS, prometheus, client)

    assert (result.value, result.verdict) == (pytest.approx(1000), "pass")


def test_only_slos_holding_in_the_phase_are_evaluated(prometheus: Any, client: PrometheusClient) -> None:
    slos = [_slo(name="everywhere"), _slo(name="recovery-only", phases=("recovery",))]

    results = evaluate(slos, "chaos", prometheus.at(100), prometheus.at(200), client)

    assert [r.name for r in results] == ["everywhere"]


def test_a_query_yielding_several_series_is_an_error_verdict(prometheus: Any, client: PrometheusClient) -> None:
    slo = Slo(name="per-code", query="sum by (response_code) (rate(istio_requests_total[$window]))", objective=1,
              comparator=">")  # fmt: skip

    result = _one(slo, "chaos", CHAOS, prometheus, client)

    assert (result.verdict, result.value) == ("error", None)
    assert "expected the query to yield one number, got 2 series" in result.detail
    with pytest.raises(SloQueryError):
        client.query(result.query, prometheus.at(200))


def test_a_query_prometheus_cannot_execute_is_an_error_verdict(prometheus: Any, client: PrometheusClient) -> None:
    many_to_many = "sum(istio_requests_total / on (reporter) istio_requests_total)"
    slo = Slo(name="bad-match", query=many_to_many, objective=1, comparator=">")

    result = _one(slo, "chaos", CHAOS, prometheus, client)

    assert result.verdict == "error"
    assert "Prometheus could not evaluate the query (execution:" in result.detail


def test_a_promql_syntax_error_is_a_config_error_naming_the_slo_with_prometheus_message(
    prometheus: Any, client: PrometheusClient
) -> None:
    slo = Slo(name="broken", query="sum(rate(istio_requests_total[$window])", objective=1, comparator=">",
              file="slos/mine.yaml", field="slos[3]")  # fmt: skip

    with pytest.raises(ConfigError) as validated:
        validate_slos([_slo(), slo], client)
    with pytest.raises(ConfigError) as evaluated:
        evaluate([slo], "chaos", prometheus.at(100), prometheus.at(200), client)

    for error in (validated.value, evaluated.value):
        assert (error.file, error.field) == ("slos/mine.yaml", "slos[3].query")
        assert "SLO 'broken': Prometheus rejected the query (bad_data: " in error.message
        assert "unclosed left parenthesis" in error.message  # Prometheus's own words


def test_a_query_yielding_a_range_vector_is_rejected_before_the_run(client: PrometheusClient) -> None:
    slo = Slo(name="range", query="istio_requests_total[$window]", objective=1, comparator=">", file="f.yaml",
              field="slos[0]")  # fmt: skip

    with pytest.raises(ConfigError, match=r"f.yaml: slos\[0\].query: SLO 'range': expected a query that yields one number"):
        validate_slos([slo], client)


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_slo_passes_prometheus_validation(client: PrometheusClient, path: Path) -> None:
    validate_slos(load_slo_file(path), client)


def test_a_stopped_prometheus_makes_the_run_inconclusive(stoppable_prometheus: Any) -> None:
    with PrometheusClient(stoppable_prometheus.url) as client:
        assert client.query("vector(1)", stoppable_prometheus.t0) == 1.0
        stoppable_prometheus.stop()

        with pytest.raises(InconclusiveError, match="is unreachable") as error:
            evaluate([_slo()], "chaos", stoppable_prometheus.t0 - 10, stoppable_prometheus.t0, client)
        with pytest.raises(InconclusiveError):
            validate_slos([_slo()], client)

    assert error.value.exit_code == 3


def test_a_prometheus_that_does_not_answer_in_time_is_inconclusive() -> None:
    with socket.socket() as silent:  # accepts connections into its backlog, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with PrometheusClient(url, timeout_s=0.2) as client, pytest.raises(InconclusiveError, match="did not answer within 0.2 s"):
            client.query("vector(1)", 0)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        pytest.param(503, {"status": "error", "errorType": "unavailable", "error": "starting"}, "answered HTTP 503",
                     id="5xx"),
        pytest.param(404, "not found", "without a Prometheus API body", id="not_prometheus"),
    ],
)  # fmt: skip
def test_a_prometheus_answering_5xx_or_not_prometheus_at_all_is_inconclusive(status: int, body: Any, expected: str) -> None:
    # Prometheus only answers 5xx when overloaded or shutting down, which cannot be provoked reliably: faked.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    with PrometheusClient("http://127.0.0.1:9", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(InconclusiveError, match=expected) as error:
            client.query("vector(1)", 0)

    assert type(error.value) is InconclusiveError


def test_a_5xx_series_born_in_the_window_counts_from_its_first_sample(prometheus: Any, client: PrometheusClient) -> None:
    """A proxy creates a series at its first request with new labels (Envoy's stats, Istio's stats
    plugin), so Prometheus first sees review-service's 503/UO series at 20: rate()/increase() count
    nothing of it (no sample before the first; prometheus/prometheus#1673), and availability read 1.0
    while 20 requests failed. The templates add a series born in the window from its first sample."""
    chaos = _one(_slo(service="review-service"), "chaos", CHAOS, prometheus, client)
    assert chaos.value == pytest.approx(1 - 20 / 1020)
    assert chaos.verdict == "fail"
    ratio = _one(_slo(template="error_ratio", service="review-service"), "chaos", CHAOS, prometheus, client)
    assert ratio.value == pytest.approx(20 / 1020)


def test_a_series_born_in_an_earlier_window_is_not_counted_again(prometheus: Any, client: PrometheusClient) -> None:
    for phase, window in (("baseline", BASELINE), ("recovery", RECOVERY)):
        assert _one(_slo(service="review-service"), phase, window, prometheus, client).value == pytest.approx(1.0)


def test_latency_counts_the_observations_of_a_histogram_series_born_in_the_window(
        prometheus: Any, client: PrometheusClient) -> None:
    """p99 of 1000 requests in (5, 10] ms and a new series' 20 in (250, 500]: rank 1009.8 falls in
    (250, 500], 250 + 250 * 9.8 / 20 ms (histogram_quantile's linear interpolation)."""
    result = _one(_slo(template="latency", service="review-service"), "chaos", CHAOS, prometheus, client)
    assert result.value == pytest.approx(250 + 250 * 9.8 / 20)
