"""The telemetry lag, measured: how long after a request completes its sample is in the series SLOs read.

A request's latency and status reach the `istio_*` series an SLO query reads only after the proxy's
stats flush, Prometheus's next scrape of that proxy and (locally) the next recording-rule evaluation;
each stage runs on its own timer (`TelemetryPipeline`, from the platform). So a request completed at
t is first in a recorded sample stamped t + L, with L between a lower and an upper bound that depend
on where t falls in those timers' cycles and on how busy the machine is. The run measures L at its
start (`measure_lag`) with marked requests and judges each phase over the samples of its own requests
(`TelemetryLag.phase_window`); run/evaluation.py explains the window.

The marked request: GET on the chat route through the ingress. ai-agent routes only POST there, so
its app answers 405: a response code the load never produces, counted like any request by the ingress
gateway (reporter="source", the series the ai-agent SLOs read) and by the ai-agent sidecar that served
it (reporter="destination"; the same proxy reports ai-agent's calls to user and analytics). The probe
times, per proxy, when each probe is first counted, from the raw samples Prometheus stored (so the
polling rate does not enter the figure), on both paths an SLO reads: the latency histogram
(`istio_request_duration_milliseconds_count`, the slowest: Envoy folds histograms only at a stats
flush) and the request counter (`istio_requests_total`, which availability reads: Envoy's admin
endpoint shows a counter's value at once, so it skips the flush and reaches Prometheus up to a flush
period sooner). The window of a phase ends at the fastest path's lower bound and starts at the
slowest one's upper bound, so neither path's samples of the phase before or after fall into it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.errors import InconclusiveError
from harness.platforms.telemetry import TelemetryPipeline
from harness.slo.prometheus import PrometheusClient
from harness.slo.promql import prometheus_duration

PROBE_PATH = "/api/v1/chat"  # POST only: a GET is answered 405 by ai-agent's app (after both proxies)
PROBE_SELECTOR = ('istio_request_duration_milliseconds_count'
                  '{destination_service_name="ai-agent-service",response_code="405"}')
COUNTER_SELECTOR = 'istio_requests_total{destination_service_name="ai-agent-service",response_code="405"}'
# The paths a probe is timed on, and how their proxies' keys are marked in `by_proxy`.
PATHS = ((PROBE_SELECTOR, ""), (COUNTER_SELECTOR, " (counter)"))
PROBED_SERVICE = "ai-agent-service"
PROBE_SPACING_S = 0.125  # probes this far apart meet every eighth of the pipeline's cycle
MIN_PROBES, MAX_PROBES = 4, 16
JITTER_S = 0.1  # timers of flush, scrape and rule evaluation drift by tens of ms on a busy machine
POLL_S = 0.2


@dataclass(frozen=True)
class TelemetryLag:
    """Measured lags (s) from a probe's completion to the first recorded sample that counts it."""

    lags_s: tuple[float, ...]  # one per (probe, reporting proxy)
    by_proxy: dict[str, tuple[float, ...]]  # "<reporter> <pod>" -> its probes' lags
    spacing_s: float  # between probes: the resolution of the measured bounds
    pipeline: TelemetryPipeline
    measured_at: float  # epoch s of the first probe
    settled_at: float  # epoch s of the sample holding the last probe: no probe counts after it
    attempts: int = 1
    notes: tuple[str, ...] = field(default=())
    fixed_bounds: tuple[float, float] | None = None  # (lower, upper) when no clean measurement was possible

    @property
    def median_s(self) -> float:
        return statistics.median(self.lags_s)

    @property
    def max_s(self) -> float:
        return max(self.lags_s)

    @property
    def min_s(self) -> float:
        return min(self.lags_s)

    @property
    def lower_s(self) -> float:
        """No request is in a sample stamped earlier than its completion + lower_s. Probes `spacing_s`
        apart over one pipeline period come within spacing_s of the luckiest moment (just before a
        flush that a scrape and a rule evaluation follow at once), hence the margin."""
        if self.fixed_bounds is not None:
            return self.fixed_bounds[0]
        return max(0.0, self.min_s - self.spacing_s - JITTER_S)

    @property
    def upper_s(self) -> float:
        """Every request is in the samples stamped from its completion + upper_s on (the unluckiest
        moment, just after a flush, is within spacing_s of a probe as well)."""
        if self.fixed_bounds is not None:
            return self.fixed_bounds[1]
        return self.max_s + self.spacing_s + JITTER_S

    def of_gateway(self) -> TelemetryLag:
        """The lags the ingress gateway showed alone: the proxy that reports (reporter="source") the
        requests to ai-agent-service, which the probes all went through. Proxies differ by where their
        scrape falls in their flush cycle, so one proxy's band is narrower than all of them together."""
        mine = {key: lags for key, lags in self.by_proxy.items() if key.startswith("source ")}
        if not mine or self.fixed_bounds is not None:
            return self
        every = tuple(v for lags in mine.values() for v in lags)
        return TelemetryLag(lags_s=every, by_proxy=mine, spacing_s=self.spacing_s, pipeline=self.pipeline,
                            measured_at=self.measured_at, settled_at=self.settled_at, attempts=self.attempts,
                            notes=self.notes)

    def phase_window(self, start: float, end: float) -> tuple[float, float]:
        """The query window whose increase counts only requests completed in [start, end]: from
        start + upper_s (every earlier request is already in the first sample, so its increase leaves
        them out) to end + lower_s (no later request is in a sample up to there)."""
        return start + self.upper_s, end + self.lower_s

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": round(self.median_s, 3), "min_s": round(self.min_s, 3), "max_s": round(self.max_s, 3),
                "lower_s": round(self.lower_s, 3), "upper_s": round(self.upper_s, 3),
                "probes": len(self.lags_s), "spacing_s": self.spacing_s, "attempts": self.attempts,
                "by_proxy": {k: [round(v, 3) for v in lags] for k, lags in self.by_proxy.items()},
                "pipeline": {"stats_flush_s": self.pipeline.stats_flush_s, "scrape_s": self.pipeline.scrape_s,
                             "rule_s": self.pipeline.rule_s},
                "measured_at": self.measured_at, "settled_at": self.settled_at, "notes": list(self.notes),
                "measured": self.fixed_bounds is None}


@dataclass(frozen=True)
class _Probe:
    sent_at: float
    done_at: float
    served_by: str | None


def measure_lag(status: dict[str, Any], pipeline: TelemetryPipeline, client: PrometheusClient, *,
                deadline: float, clock: Callable[[], float] = time.time,
                current_status: Callable[[], dict[str, Any]] | None = None) -> TelemetryLag:
    """Probe the pipeline of a running mesh (`status`: the platform's, with ingress_url and
    ingress_host) until `deadline` (time.monotonic()); InconclusiveError when it cannot be measured.
    `current_status` reads the platform's status again once Prometheus has every target, for the
    pushes that redefined stats meanwhile (`_wait_for_redefined_stats`).

    Prometheus picks up targets on a 5 s tick after it starts: until it has scraped every target once,
    the first probes would time that wait, not the pipeline, so the probe waits for it first. A round
    whose lag exceeds what the pipeline's periods allow (flush + scrape + rule + 1 s) is taken again,
    once: a target picked up mid-round inflates it.
    """
    _wait_for_targets(client, deadline)
    notes: list[str] = []
    _wait_for_redefined_stats(status if current_status is None else current_status(), pipeline, deadline, clock,
                              notes)
    probes = min(MAX_PROBES, max(MIN_PROBES, math.ceil(pipeline.period_s / PROBE_SPACING_S)))
    spacing = pipeline.period_s / probes
    with httpx.Client(timeout=5.0, trust_env=False) as http:
        for attempt in (1, 2):
            try:
                lag = _one_round(status, pipeline, client, http, probes, spacing, deadline, clock, attempt, notes)
            except _Foreign as exc:
                notes.append(f"round {attempt}: {exc}")
                continue
            if lag.max_s <= pipeline.bound_s + 1.0 or attempt == 2:
                return lag
            notes.append(f"round {attempt}: max lag {lag.max_s:.2f} s > {pipeline.bound_s + 1.0:.2f} s; measured again")
    return _unmeasured(pipeline, notes, clock())


class _Foreign(Exception):
    """Other requests answered 405 while the probes were counted: this round's timing is not the probes'."""


def _unmeasured(pipeline: TelemetryPipeline, notes: list[str], now: float) -> TelemetryLag:
    """Other traffic kept answering 405 (tests sharing one mesh, a client probing methods): the bounds
    the pipeline's periods allow, [0, flush + scrape + rule + 0.5 s], wider than a measurement but sure."""
    upper = pipeline.bound_s + 0.5
    notes.append(f"no clean measurement: using the pipeline's bounds 0 to {upper:g} s")
    return TelemetryLag(lags_s=(0.0, upper), by_proxy={}, spacing_s=0.0, pipeline=pipeline, measured_at=now,
                        settled_at=now, attempts=2, notes=tuple(notes), fixed_bounds=(0.0, upper))


def probe_lookback_s(pipeline: TelemetryPipeline) -> float:
    """How far before its first probe a round's queries reach: two pipeline periods and a second, so a
    sample taken just before the probes (the value they count from) is in the range."""
    return 2 * pipeline.period_s + 1.0


def quiet_after(redefinition: dict[str, Any], pipeline: TelemetryPipeline) -> float:
    """When the recorded series no longer hold a sample of the stats a push redefined (epoch s): the old
    stats are gone at `settled_at` (the platform's record, e.g. platforms/local/controller.py), their
    last scrape is then at most a scrape period old and the recording rule reads it one evaluation
    later."""
    return float(redefinition["settled_at"]) + pipeline.scrape_s + pipeline.rule_s + JITTER_S


def _wait_for_redefined_stats(status: dict[str, Any], pipeline: TelemetryPipeline, deadline: float,
                              clock: Callable[[], float], notes: list[str]) -> None:
    """A push that changed how proxies count (a Telemetry's tag overrides) restarts those counters under
    new Envoy stat names, while the old ones count on until their listener has drained; both may feed
    one series (translate/telemetry.stats_definitions). Probes counted in that time, or matched against a
    sample of the old counter, would time nothing: the first probe goes out only once the window its
    rounds query (probe_lookback_s before it) holds no sample of the old stats."""
    redefinitions = status.get("stats_redefinitions") or []
    if not redefinitions:
        return
    newest = max(redefinitions, key=lambda r: float(r["settled_at"]))
    wait = quiet_after(newest, pipeline) + probe_lookback_s(pipeline) - clock()
    if wait <= 0:
        return
    if time.monotonic() + wait > deadline:
        raise InconclusiveError(f"the proxies' stats were redefined ({newest.get('reason')}, "
                                f"{', '.join(newest.get('proxies', []))}) {wait:.1f} s before their old "
                                f"series leave the telemetry probe's window, past the run's deadline")
    notes.append(f"waited {wait:.1f} s for the stats that {newest.get('reason')!r} redefined on "
                 f"{len(newest.get('proxies', []))} proxies to leave the probe's window")
    time.sleep(wait)


def _wait_for_targets(client: PrometheusClient, deadline: float) -> None:
    while True:
        pending = client.unscraped_targets()
        if not pending:
            return
        if time.monotonic() > deadline:
            raise InconclusiveError(f"Prometheus has not scraped {', '.join(pending[:3])} yet; the telemetry "
                                    f"lag cannot be measured and no SLO could be judged")
        time.sleep(POLL_S)


def _one_round(status: dict[str, Any], pipeline: TelemetryPipeline, client: PrometheusClient, http: httpx.Client,
               count: int, spacing: float, deadline: float, clock: Callable[[], float], attempt: int,
               notes: list[str]) -> TelemetryLag:
    url = status["ingress_url"].rstrip("/") + PROBE_PATH
    headers = {"host": status.get("ingress_host", "ai-agent-service.parallel-ai.svc.cluster.local")}
    started = clock()
    sent: list[_Probe] = []
    for index in range(count):
        pause = started + index * spacing - clock()
        if pause > 0:
            time.sleep(pause)
        sent_at = clock()
        try:
            response = http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise InconclusiveError(f"the telemetry probe (GET {url}) failed: {exc}") from exc
        done_at = clock()
        if response.status_code != 405:
            raise InconclusiveError(f"the telemetry probe GET {url} expected ai-agent's 405, got "
                                    f"{response.status_code}: the lag cannot be measured")
        sent.append(_Probe(sent_at, done_at, response.headers.get("x-served-by")))
    while True:
        window = prometheus_duration(max(1.0, clock() - started + probe_lookback_s(pipeline)))
        lags, settled, pending, foreign, newest = {}, started, [], [], math.inf
        for selector, mark in PATHS:
            path = _match(client.samples(f"{selector}[{window}]", clock()), sent, started, mark)
            lags.update(path[0])
            settled, newest = max(settled, path[1]), min(newest, path[4])  # a sample after it on each path
            pending += path[2]
            foreign += path[3]
        if foreign:
            raise _Foreign("; ".join(foreign))
        # One more sample after the last arrival: a foreign 405 counted before a probe would pass for it.
        # The gateway saw every probe and must count them all; a sidecar that has not counted its own
        # within the pipeline's bound after that (its proxy restarting) is left out.
        gateway_pending = [entry for entry in pending if not entry.startswith("destination ")]
        done = not gateway_pending and newest >= settled + max(pipeline.scrape_s, pipeline.rule_s)
        if done and pending and newest < settled + pipeline.bound_s:
            done = False
        if done:
            if pending:
                notes.append(f"left out, not counted in time: {'; '.join(pending)}")
            by_proxy = {key: tuple(values) for key, values in lags.items() if values}
            every = tuple(v for values in by_proxy.values() for v in values)
            if not every:
                raise InconclusiveError(f"no series matched the telemetry probe: {PROBE_SELECTOR}")
            return TelemetryLag(lags_s=every, by_proxy=by_proxy, spacing_s=round(spacing, 3), pipeline=pipeline,
                                measured_at=started, settled_at=settled, attempts=attempt, notes=tuple(notes))
        if time.monotonic() > deadline:
            raise InconclusiveError(f"Prometheus had not recorded the telemetry probes by the deadline "
                                    f"({'; '.join(pending)}): {PROBE_SELECTOR}")
        time.sleep(POLL_S)


def _match(series: list[tuple[dict[str, str], list[tuple[float, float]]]], probes: list[_Probe],
           started: float, mark: str = "") -> tuple[dict[str, list[float]], float, list[str], list[str], float]:
    """Per reporting proxy, the i-th count increase after `started` is the i-th probe it saw (a proxy
    counts requests in the order they complete). The gateway saw every probe (several gateway
    replicas are taken together), an ai-agent sidecar those it served (x-served-by). Returns the lags,
    the last arrival, the proxies still waiting, those that counted more than their probes (foreign
    405s) and the newest sample's time. A sidecar that served no probe is left out. `mark` ends each
    proxy's key (which path its series is)."""
    arrivals: dict[str, list[float]] = {}
    expected: dict[str, list[float]] = {}
    gateways = sorted({labels.get("pod", "?") for labels, _ in series if labels.get("reporter") != "destination"})
    for labels, values in series:
        pod = labels.get("pod", "?")
        if labels.get("reporter") == "destination":
            key, mine = f"destination {pod}{mark}", [p.done_at for p in probes if p.served_by == pod]
        else:
            key, mine = f"source {'+'.join(gateways)}{mark}", [p.done_at for p in probes]
        expected[key] = mine
        before = [v for t, v in values if t < started]  # a sample stamped before the first probe holds none
        last = before[-1] if before else 0.0
        counted, arrived = 0.0, []
        for t, v in values:
            if t < started:
                continue
            # a proxy restarted (a pod killed or held by an earlier run) counts from 0 again
            counted += v - last if v >= last else v
            last = v
            while counted > len(arrived):
                arrived.append(t)
        arrivals[key] = sorted(arrivals.get(key, []) + arrived)
    lags: dict[str, list[float]] = {}
    pending = [] if gateways else [f"no gateway series yet{mark}"]
    foreign: list[str] = []
    settled = started
    newest = max((t for _, values in series for t, _ in values), default=started)
    for key, done in expected.items():
        got = arrivals[key]
        if not done:
            continue
        if len(got) > len(done):
            foreign.append(f"{key} counted {len(got)} requests answered 405 while {len(done)} probes went through it")
            continue
        if len(got) < len(done):
            pending.append(f"{key}: {len(got)} of {len(done)}")
            continue
        lags[key] = [t - d for t, d in zip(got, sorted(done))]
        settled = max([settled, *got])
    return lags, settled, pending, foreign, newest
