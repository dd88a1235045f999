"""PromQL for a mesh SLO over one window: the Istio templates, `$window`/`$service`, range durations.

The query is evaluated at the window's end (`time=end`) with a range of exactly `end - start`, so
it sees the samples of [start, end] (Prometheus 2 range selectors include both ends).
"""

from __future__ import annotations

import json
import re

from harness.slo.model import Slo

_PLACEHOLDER = re.compile(r"\$(window|service)\b")

# Requests in the window, per series: increase() over the window, plus for a series born in it (absent
# at the window's start: `unless ... offset $window`) the value of its first sample (min_over_time),
# which increase() never counts: a proxy creates a series at its first request with those labels (a
# first 503, a first UO flag), so it is first scraped at 1 or more and rate()/increase() see only what
# comes after (prometheus/prometheus#1673: no zero before a new series). Without it the first 5xx of
# each new label set was lost: a chaos phase read availability 1.0 while the client saw the 503.
# `or vector(0)`: with no 5xx series at all the error count is 0, not "no data"; the total has no such
# fallback, so no requests (empty vector) stays empty and zero requests (0/0) stays NaN: no data.
_COUNT = ("((sum(increase({series}[$window])){fallback}) + "
          "(sum(min_over_time({series}[$window]) unless {series} offset $window) or vector(0)))")
_ERRORS = _COUNT.format(series='istio_requests_total{{{selector},response_code=~"5.."}}', fallback=" or vector(0)")
_TOTAL = _COUNT.format(series="istio_requests_total{{{selector}}}", fallback="")
_BUCKETS = "istio_request_duration_milliseconds_bucket{{{selector}}}"
_LATENCY = (
    "histogram_quantile({quantile}, sum by (le) (increase(" + _BUCKETS + "[$window])) + "
    "(sum by (le) (min_over_time(" + _BUCKETS + "[$window]) unless " + _BUCKETS + " offset $window) "
    "or sum by (le) (increase(" + _BUCKETS + "[$window])) * 0))"
)


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
