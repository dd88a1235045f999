"""Specifications of the measured telemetry lag (harness.slo.lag) and the readiness gate built on it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness.errors import InconclusiveError
from harness.platforms.telemetry import TelemetryPipeline, duration_s
from harness.run.evaluation import wait_until_ready
from harness.slo import Slo
from harness.slo.lag import TelemetryLag, _match, _Probe

PIPELINE = TelemetryPipeline(stats_flush_s=1.0, scrape_s=1.0, rule_s=1.0)
GATEWAY = {"reporter": "source", "pod": "istio-ingressgateway-0"}
AGENT = {"reporter": "destination", "pod": "ai-agent-v1-us-east-0"}


def lag(*values: float, spacing: float = 0.25) -> TelemetryLag:
    return TelemetryLag(lags_s=values, by_proxy={"source gw": values}, spacing_s=spacing, pipeline=PIPELINE,
                        measured_at=0.0, settled_at=0.0)


def test_a_phase_window_starts_after_every_earlier_request_and_ends_before_any_later_one() -> None:
    measured = lag(1.2, 1.5, 1.9, 2.1)
    assert measured.upper_s == pytest.approx(2.1 + 0.25 + 0.1)  # latest probe + spacing + timer jitter
    assert measured.lower_s == pytest.approx(1.2 - 0.25 - 0.1)
    assert measured.phase_window(100.0, 110.0) == (pytest.approx(102.45), pytest.approx(110.85))
    assert measured.median_s == pytest.approx(1.7) and measured.max_s == 2.1


def test_the_lower_bound_never_goes_before_the_request_itself() -> None:
    assert lag(0.1, 0.2).lower_s == 0.0


def test_each_proxy_counts_the_probes_it_saw_in_completion_order() -> None:
    """The gateway counts every probe, an ai-agent sidecar those it served (x-served-by); the i-th
    increase after the first probe was sent is the i-th probe, timed from the sample's timestamp."""
    probes = [_Probe(10.0, 10.01, "ai-agent-v1-us-east-0"), _Probe(10.25, 10.26, "ai-agent-v1-us-west-0"),
              _Probe(10.5, 10.51, "ai-agent-v1-us-east-0")]
    gateway = [(8.0, 7.0), (9.0, 7.0), (10.0, 7.0), (11.0, 7.0), (12.0, 9.0), (13.0, 10.0)]
    agent = [(9.0, 3.0), (12.0, 4.0), (13.0, 5.0)]
    lags, settled, pending, foreign, newest = _match([(GATEWAY, gateway), (AGENT, agent)], probes, started=10.0)
    assert pending == [] and foreign == [] and newest == 13.0
    assert lags["source istio-ingressgateway-0"] == pytest.approx([1.99, 1.74, 2.49])
    assert lags["destination ai-agent-v1-us-east-0"] == pytest.approx([1.99, 2.49])
    assert settled == 13.0


def test_probes_not_yet_recorded_are_pending() -> None:
    probes = [_Probe(10.0, 10.01, None), _Probe(10.25, 10.26, None)]
    _, _, pending, _, _ = _match([(GATEWAY, [(9.0, 0.0), (11.0, 1.0)])], probes, started=10.0)
    assert pending == ["source istio-ingressgateway-0: 1 of 2"]
    assert _match([], probes, started=10.0)[2] == ["no gateway series yet"]


def test_more_405s_than_probes_are_foreign_traffic_not_timed_and_a_sidecar_without_probes_is_left_out() -> None:
    """Other clients of a shared mesh answer 405 too (tests probing methods, late-counted requests of an
    earlier test): a proxy that counted more than its probes is reported, not timed; a sidecar that
    served none of the probes says nothing about them."""
    probes = [_Probe(10.0, 10.01, "ai-agent-v1-us-east-0")]
    other = {"reporter": "destination", "pod": "ai-agent-v2-eu-west-0"}
    lags, _, pending, foreign, _ = _match([(GATEWAY, [(9.0, 0.0), (11.0, 3.0)]), (AGENT, [(9.0, 0.0), (12.0, 1.0)]),
                                           (other, [(9.0, 0.0), (11.0, 4.0)])], probes, started=10.0)
    assert foreign == ["source istio-ingressgateway-0 counted 3 requests answered 405 while 1 probes went through it"]
    assert pending == [] and list(lags) == ["destination ai-agent-v1-us-east-0"]


def test_without_a_clean_measurement_the_pipelines_own_bounds_are_used() -> None:
    from harness.slo.lag import _unmeasured

    fallback = _unmeasured(PIPELINE, ["round 1: foreign"], now=50.0)
    assert (fallback.lower_s, fallback.upper_s) == (0.0, 3.5) and fallback.of_gateway() is fallback
    assert fallback.as_dict()["measured"] is False and fallback.settled_at == 50.0


def test_pipeline_periods_come_from_durations_as_prometheus_writes_them() -> None:
    assert [duration_s(text, field="f") for text in ("1s", "500ms", "2s", "1m", "1.5s")] == [1.0, 0.5, 2.0, 60.0, 1.5]
    with pytest.raises(Exception, match="expected a duration"):
        duration_s("soon", field="scrape_interval")
    assert TelemetryPipeline(5.0, 2.0, 0.0).period_s == 5.0 and TelemetryPipeline(1.0, 1.0, 1.0).bound_s == 3.0


class PrometheusOnly:
    name = "stand-in"

    def __init__(self, url: str) -> None:
        self.url = url

    def status(self) -> dict[str, Any]:
        return {"prometheus_url": self.url}


def test_the_readiness_gate_gives_up_at_its_deadline_naming_the_query_without_data(prometheus: Any) -> None:
    """The test Prometheus holds data only in the past: no SLO query has data after the probes, so the gate
    ends at its deadline with an InconclusiveError (exit 3) that names the SLO and its PromQL."""
    slo = Slo(name="ai-agent-latency-p99", template="latency", service="ai-agent-service", quantile=0.99,
              objective=500, comparator="<=")
    measured = TelemetryLag(lags_s=(1.0,), by_proxy={}, spacing_s=0.25, pipeline=PIPELINE, measured_at=0.0,
                            settled_at=time.time() - 5)
    started = time.monotonic()
    with pytest.raises(InconclusiveError) as caught:
        wait_until_ready([slo], PrometheusOnly(prometheus.url), measured, deadline=time.monotonic() + 1.0)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "ai-agent-latency-p99" in message and "istio_request_duration_milliseconds_bucket" in message


def test_no_data_in_a_window_prometheus_barely_recorded_is_an_error_not_a_failed_slo(prometheus: Any) -> None:
    """A window without requests (the test data's silence, 300 to 400 s, sampled each second) stays
    no_data, an SLO failure; a window where Prometheus recorded fewer than two samples (its rule
    evaluations fell behind; here: a window holding only the data's last sample) is an error, which makes the
    run inconclusive."""
    from harness.run.evaluation import _thin_windows
    from harness.slo import PrometheusClient, evaluate

    slo = Slo(name="ai-agent-availability", template="availability", service="ai-agent-service",
              objective=0.995, comparator=">=")
    with PrometheusClient(prometheus.url) as client:
        silent = _thin_windows(evaluate([slo], "recovery", prometheus.at(320), prometheus.at(330), client), client)
        thin = evaluate([slo], "recovery", prometheus.at(399.5), prometheus.at(420), client)
        unrecorded = _thin_windows(thin, client)
    assert silent[0].verdict == "no_data"
    assert unrecorded[0].verdict == "error" and "fell behind" in unrecorded[0].detail


def test_a_proxy_that_restarted_counts_from_zero_again() -> None:
    """A pod an earlier run held down comes back with a new Envoy: its counter starts at 0, below the
    value Prometheus last had, and the probes it then counts are still its probes."""
    probes = [_Probe(10.0, 10.01, "ai-agent-v1-us-east-0"), _Probe(10.5, 10.51, "ai-agent-v1-us-east-0")]
    restarted = [(9.0, 50.0), (11.0, 0.0), (12.0, 1.0), (13.0, 2.0)]
    lags, _, pending, foreign, _ = _match([(GATEWAY, [(9.0, 5.0), (12.0, 7.0)]), (AGENT, restarted)], probes,
                                          started=10.0)
    assert pending == [] and foreign == []
    assert lags["destination ai-agent-v1-us-east-0"] == pytest.approx([1.99, 2.49])


class _Answers405:
    """ai-agent's answer to a GET on the chat route, on 127.0.0.1: 405, served by one pod; keeps when each
    request was answered."""

    def __init__(self) -> None:
        import http.server
        import threading

        answered = self.answered = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook
                self.send_response(405)
                self.send_header("x-served-by", "ai-agent-v1-us-east-0")
                self.send_header("content-length", "0")
                self.end_headers()
                answered.append(time.time())

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _TwoPaths:
    """Prometheus as the probe reads it: one recorded sample per second for the gateway, each 405 counted
    `counter_lag_s` after it was answered in istio_requests_total and `histogram_lag_s` after in the
    latency histogram's count (Envoy shows counters at once, folds histograms at its stats flush)."""

    def __init__(self, server: _Answers405, counter_lag_s: float, histogram_lag_s: float) -> None:
        self.server, self.lags = server, {"counter": counter_lag_s, "histogram": histogram_lag_s}

    def unscraped_targets(self) -> list[str]:
        return []

    def samples(self, query: str, at: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        lag_s = self.lags["counter" if query.startswith("istio_requests_total") else "histogram"]
        ticks = [float(t) for t in range(int(time.time()) - 8, int(time.time()) + 1)]
        return [(GATEWAY, [(t, float(sum(1 for done in self.server.answered if done + lag_s <= t))) for t in ticks])]


def test_a_phase_window_ends_by_the_counters_faster_path_and_starts_after_the_histograms_slower_one() -> None:
    """Availability reads istio_requests_total, a counter Envoy's admin endpoint shows at once; latency
    reads the histogram, folded only at the stats flush (Envoy docs, "Statistics": histograms are
    flushed to sinks/admin at the flush interval). Measured here a flush period apart (0.88 against
    1.88 s for one probe). Timing only the histogram put a phase's window end up to a second too late
    for the counter, into the next phase's requests (a fault's fast 503s counted in the baseline)."""
    from harness.slo.lag import measure_lag

    server = _Answers405()
    try:
        lag = measure_lag({"ingress_url": server.url}, PIPELINE, _TwoPaths(server, 0.2, 1.2),
                          deadline=time.monotonic() + 30)
    finally:
        server.close()
    assert set(lag.by_proxy) == {"source istio-ingressgateway-0", "source istio-ingressgateway-0 (counter)"}
    assert max(lag.by_proxy["source istio-ingressgateway-0 (counter)"]) < min(lag.by_proxy["source istio-ingressgateway-0"])
    counter_min = min(lag.by_proxy["source istio-ingressgateway-0 (counter)"])
    histogram_max = max(lag.by_proxy["source istio-ingressgateway-0"])
    assert lag.lower_s <= counter_min and lag.upper_s >= histogram_max
    assert lag.of_gateway().lower_s == lag.lower_s  # the gateway's own lag keeps both paths


class _Redefined:
    """Prometheus as the probe reads it just after a push changed how the gateway counts (a Telemetry's
    tag overrides): one sample per scrape period; until `gone_at` the old stat (at `old`, the probes
    of earlier runs) shadows the new one (Prometheus keeps the first of two samples of one series in a
    scrape), then the new stat counts this round's probes from 0 and climbs back to `old`, unseen as a
    reset. Samples are those of the queried range, as Prometheus returns them."""

    def __init__(self, server: _Answers405, old: float, gone_at: float, period_s: float) -> None:
        self.server, self.old, self.gone_at, self.period_s = server, old, gone_at, period_s

    def unscraped_targets(self) -> list[str]:
        return []

    def samples(self, query: str, at: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        import math
        import re

        window = duration_s(re.search(r"\[([0-9a-z]+)\]", query).group(1), field="range")
        ticks = [k * self.period_s for k in range(math.floor((at - window) / self.period_s), math.floor(at / self.period_s) + 1)
                 if at - window < k * self.period_s <= at]
        return [(GATEWAY, [(t, self.old if t <= self.gone_at else
                            float(sum(1 for done in self.server.answered if done + 0.1 <= t))) for t in ticks])]


@pytest.mark.parametrize("known", ["at the start", "once Prometheus has every target"])
def test_probes_wait_until_the_stats_a_push_redefined_have_left_the_window_they_are_matched_in(known: str) -> None:
    """The platform records when a push's old stats are gone (platforms/local/controller.py). Probed
    before that, the gateway's 405 counter of earlier runs (4) shadows the new one, which then shows 4
    after this round's 4 probes: no increase, the probes never counted, the run inconclusive. Waiting
    until no sample of the old stat is in the probe's range, the new counter is the series. A push
    made while the probe waited for Prometheus's targets is in the status read after that wait."""
    from harness.slo.lag import measure_lag

    fast = TelemetryPipeline(stats_flush_s=0.25, scrape_s=0.25, rule_s=0.25)
    server = _Answers405()
    now = time.time()
    record = {"at": now - 2.5, "settled_at": now + 0.5, "proxies": ["istio-ingressgateway"], "reason": "apply"}
    status = {"ingress_url": server.url, "stats_redefinitions": [record]}
    try:
        lag = measure_lag(status if known == "at the start" else {"ingress_url": server.url}, fast,
                          _Redefined(server, old=4.0, gone_at=record["settled_at"], period_s=0.25),
                          deadline=time.monotonic() + 10,
                          current_status=None if known == "at the start" else lambda: status)
    finally:
        server.close()
    assert lag.measured_at > record["settled_at"] + fast.scrape_s + fast.rule_s + 2 * fast.period_s + 1.0
    assert len(lag.by_proxy["source istio-ingressgateway-0 (counter)"]) == 4
    assert any("redefined" in note for note in lag.notes)


def test_a_redefinition_past_the_deadline_is_inconclusive_naming_the_push() -> None:
    from harness.slo.lag import measure_lag

    record = {"at": time.time(), "settled_at": time.time() + 3.0, "proxies": ["user-v1-us-east-0"],
              "reason": "apply"}
    with pytest.raises(InconclusiveError, match=r"redefined \(apply, user-v1-us-east-0\)"):
        measure_lag({"ingress_url": "http://127.0.0.1:9", "stats_redefinitions": [record]}, PIPELINE,
                    _Redefined(None, 0.0, 0.0, 1.0), deadline=time.monotonic() + 1)


class _Status:
    def __init__(self, *records: dict[str, Any]) -> None:
        self.records = list(records)

    def status(self) -> dict[str, Any]:
        return {"stats_redefinitions": self.records}


def test_a_redefinition_within_a_phase_window_or_the_lag_probe_makes_those_mesh_rows_errors() -> None:
    """`harness apply` of a Telemetry from another shell during a run: the counters it restarts feed the
    phase's series; the verdict would rest on counts that are not the requests'. The phase's mesh rows
    become errors (the run is then inconclusive, exit 3), its client rows and the other phases keep
    theirs; reaching the lag probe reaches every phase (its bounds place every window)."""
    from harness.run.evaluation import _stats_kept

    measured = TelemetryLag(lags_s=(1.0, 2.0), by_proxy={}, spacing_s=0.25, pipeline=PIPELINE,
                            measured_at=100.0, settled_at=104.0)
    windows = [("baseline", 110.0, 130.0), ("chaos", 132.0, 160.0)]

    def rows() -> list[dict[str, Any]]:
        return [{"name": f"{source}-{phase}", "phase": phase, "source": source, "verdict": "pass", "value": 1.0,
                 "detail": ""} for phase in ("baseline", "chaos") for source in ("mesh", "client")]

    before = {"at": 90.0, "settled_at": 93.0, "proxies": ["istio-ingressgateway"], "reason": "apply"}
    between = {"at": 130.5, "settled_at": 130.6, "proxies": ["istio-ingressgateway"], "reason": "apply"}
    kept = rows()
    _stats_kept(_Status(before), windows, measured, kept)  # waited out by the probe: nothing changes
    assert all(r["verdict"] == "pass" for r in kept)
    chaos = rows()
    _stats_kept(_Status(before, between), windows, measured, chaos)
    assert [(r["name"], r["verdict"]) for r in chaos] == [
        ("mesh-baseline", "pass"), ("client-baseline", "pass"), ("mesh-chaos", "error"), ("client-chaos", "pass")]
    assert "within the chaos phase's mesh window" in chaos[2]["detail"] and chaos[2]["value"] is None
    during_probe = {"at": 101.0, "settled_at": 102.0, "proxies": ["user-v1-us-east-0"], "reason": "reset"}
    every = rows()
    _stats_kept(_Status(during_probe), windows, measured, every)
    assert [r["verdict"] for r in every if r["source"] == "mesh"] == ["error", "error"]
    assert "(reset) changed how user-v1-us-east-0 count requests" in every[0]["detail"]
    assert "while the telemetry lag was measured" in every[0]["detail"]
