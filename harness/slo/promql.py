"""PromQL for a mesh SLO over one window: the Istio templates, `$window`/`$service`, range durations.

The query is evaluated at the window's end (`time=end`) with a range of exactly `end - start`, so
it sees the samples of [start, end] (Prometheus 2 range selectors include both ends).
"""

from __future__ import annotations

import json
import re

from harness.slo.model import Slo

_PLACEHOLDER = re.compile(r"\$(window|service)\b")

# Requests in the window, per series: increase() over the window for a series that already had samples
# before it; for a series born in the window, its largest value (max_over_time), which counts its first
# sample too. A proxy creates a series at its first request with new labels (a first 503, a first UO
# flag), so Prometheus first sees it at 1 or more, and increase() never counts that first value
# (prometheus/prometheus#1673); its extrapolation toward zero would count part of it twice if both were
# added. Without this the first 5xx of each new label set was lost: a chaos phase read availability 1.0
# while the client saw the 503. "Had samples before" is a range over the 5 minutes before the window
# (Prometheus' lookback), which skips stale markers: one failed scrape just before the window writes
# them for every series of that proxy, and an instant `offset` lookup would take those series for new
# ones and add their whole lifetime. A series born in the window whose proxy restarts in it is counted
# up to the restart (max_over_time sees no reset).
# `or vector(0)` on each part: zero requests give 0/0 = NaN, which evaluate() reports as no data.
_EXISTED = "last_over_time({series}[5m] offset $window)"


def requests_in_window(series: str) -> str:
    """PromQL for how many requests the counter `series` (a selector) counted in `$window`."""
    existed = _EXISTED.format(series=series)
    return (f"((sum(increase({series}[$window]) and {existed}) or vector(0)) + "
            f"(sum(max_over_time({series}[$window]) unless {existed}) or vector(0)))")


_ERRORS = requests_in_window('istio_requests_total{{{selector},response_code=~"5.."}}')
_TOTAL = requests_in_window("istio_requests_total{{{selector}}}")
_BUCKETS = "istio_request_duration_milliseconds_bucket{{{selector}}}"
_OLD_BUCKETS = "sum by (le) (increase(" + _BUCKETS + "[$window]) and " + _EXISTED.format(series=_BUCKETS) + ")"
_NEW_BUCKETS = "sum by (le) (max_over_time(" + _BUCKETS + "[$window]) unless " + _EXISTED.format(series=_BUCKETS) + ")"
_LATENCY = ("histogram_quantile({quantile}, " + _OLD_BUCKETS + " + " + _NEW_BUCKETS + " or " + _OLD_BUCKETS
            + " or " + _NEW_BUCKETS + ")")


def prometheus_duration(seconds: float) -> str:
    """A range for PromQL: whole seconds as "37s", anything finer in milliseconds ("37250ms")."""
    milliseconds = round(seconds * 1000)
    if milliseconds < 1:
        raise ValueError(f"expected a window of at least 1 ms, got {seconds} s")
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def template_promql(slo: Slo) -> str:
    """The SLO's PromQL with `$window` still in it: its raw query, or its template rendered."""
    if slo.source != "mesh":
        raise ValueError(f"SLO {slo.name!r} is computed from client samples, not PromQL")
    if slo.query is not None:
        return slo.query
    if slo.service is None:
        raise ValueError(f"SLO {slo.name!r}: template {slo.template!r} needs a service")
    selector = f"reporter={json.dumps(slo.reporter)},destination_service_name={json.dumps(slo.service)}"
    errors, total = _ERRORS.format(selector=selector), _TOTAL.format(selector=selector)
    if slo.template == "availability":
        return f"1 - ({errors} / {total})"
    if slo.template == "error_ratio":
        return f"{errors} / {total}"
    if slo.template == "latency" and slo.quantile is not None:
        return _LATENCY.format(quantile=repr(slo.quantile), selector=selector)
    raise ValueError(f"SLO {slo.name!r}: no PromQL for template {slo.template!r} with quantile {slo.quantile!r}")


def render_promql(slo: Slo, window_s: float) -> str:
    """The PromQL to evaluate at the window's end so that it covers the last `window_s` seconds."""
    window = prometheus_duration(window_s)
    service = slo.service or ""
    return _PLACEHOLDER.sub(lambda m: window if m.group(1) == "window" else service, template_promql(slo))
