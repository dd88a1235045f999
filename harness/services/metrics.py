"""Hand-written Prometheus counters and a latency histogram, rendered in the text exposition format."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds; dense from 1 ms to 100 ms, where mesh hops and the simulated AI call live, then up to a timeout.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# Methods outside this set share one label value, so clients cannot grow the series count.
_KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS_S))
    total_s: float = 0.0
    count: int = 0


class Metrics:
    """This process's series; the constant labels name the service, version and pod."""

    def __init__(self, *, service: str, version: str, pod: str) -> None:
        self._const = f'service="{_escape(service)}",version="{_escape(version)}",pod="{_escape(pod)}"'
        self._requests: dict[tuple[str, str, str], int] = {}
        self._durations: dict[tuple[str, str, str], _Histogram] = {}
        self._upstream: dict[tuple[str, str], int] = {}

    def observe_request(self, *, method: str, route: str, code: int, seconds: float) -> None:
        """Count one answered request and its duration; `route` is a template, never a raw path."""
        key = (method if method in _KNOWN_METHODS else "OTHER", route, str(code))
        self._requests[key] = self._requests.get(key, 0) + 1
        histogram = self._durations.get(key)
        if histogram is None:
            histogram = self._durations[key] = _Histogram()
        index = bisect_left(DURATION_BUCKETS_S, seconds)
        if index < len(histogram.buckets):
            histogram.buckets[index] += 1
        histogram.total_s += seconds
        histogram.count += 1

    def count_upstream(self, *, destination: str, code: int) -> None:
        """Count one outbound call; code 0 means no HTTP response (refused, reset, timed out)."""
        key = (destination, str(code))
        self._upstream[key] = self._upstream.get(key, 0) + 1

    def upstream_count(self, *, destination: str, code: int) -> int:
        return self._upstream.get((destination, str(code)), 0)

    def render(self) -> str:
        """Every series in the Prometheus text format."""
        lines = [
            "# HELP app_requests_total Requests answered, by route template and status code.",
            "# TYPE app_requests_total counter",
        ]
        for (method, route, code), value in sorted(self._requests.items()):
            lines.append(f"app_requests_total{{{self._labels(method, route, code)}}} {value}")
        lines += [
            "# HELP app_request_duration_seconds Time from request received to response sent.",
            "# TYPE app_request_duration_seconds histogram",
        ]
        for (method, route, code), histogram in sorted(self._durations.items()):
            labels = self._labels(method, route, code)
            lines.extend(_histogram_lines(labels, histogram))
        lines += [
            "# HELP app_upstream_requests_total Outbound calls by destination and code (0: no response).",
            "# TYPE app_upstream_requests_total counter",
        ]
        for (destination, code), value in sorted(self._upstream.items()):
            lines.append(
                f'app_upstream_requests_total{{destination="{_escape(destination)}",code="{code}"}} {value}'
            )
        return "\n".join(lines) + "\n"

    def _labels(self, method: str, route: str, code: str) -> str:
        return f'{self._const},method="{method}",route="{_escape(route)}",code="{code}"'


def _histogram_lines(labels: str, histogram: _Histogram) -> list[str]:
    lines = []
    cumulative = 0
    for bound, count in zip(DURATION_BUCKETS_S, histogram.buckets, strict=True):
        cumulative += count
        lines.append(f'app_request_duration_seconds_bucket{{{labels},le="{bound:g}"}} {cumulative}')
    lines.append(f'app_request_duration_seconds_bucket{{{labels},le="+Inf"}} {histogram.count}')
    lines.append(f"app_request_duration_seconds_sum{{{labels}}} {histogram.total_s!r}")
    lines.append(f"app_request_duration_seconds_count{{{labels}}} {histogram.count}")
    return lines


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
