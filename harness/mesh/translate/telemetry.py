"""Istio-style request telemetry from stock Envoy: a stats access logger on every HTTP connection manager.

listeners.py adds `request_stats(reporter)` to every HCM, and routes.py tags routes with
`route_metadata(host)`. Istio's stats filter counts every request a proxy answers, local replies
included (an injected abort, no healthy upstream, overflow, an RBAC denial, a blackholed host).
Envoy's cluster stats miss those, because no upstream request is made. An access logger runs for every
request, so its counters do not: Envoy 1.40's `envoy.access_loggers.stats` emits a counter and a
histogram tagged with command operators. On /stats/prometheus they are `envoy_istio_requests_total` and
`envoy_istio_request_duration_milliseconds_*`. The recording rules
(platforms/local/prometheus/recording-rules.yaml) turn these into `istio_requests_total` and
`istio_request_duration_milliseconds_*` with Istio's label names.

Tags (the label values on the Envoy series):
- reporter: "source" (outbound sidecar listener, ingress gateway) or "destination" (inbound listener)
- response_code, response_flags: %RESPONSE_CODE%, %RESPONSE_FLAGS% (UH, UO, FI, URX, ...)
- source: upstream_cluster (%UPSTREAM_CLUSTER%, `outbound|port|subset|host`) and route_host, the
  destination host that routes.py writes into the route's metadata. A local reply made before a
  cluster is chosen (an injected abort) still has the route.
- destination: source_principal (%DOWNSTREAM_PEER_URI_SAN%, the caller's SPIFFE id) and
  response_code_details (%RESPONSE_CODE_DETAILS%, which names RBAC denials).

The extension is marked work-in-progress upstream; here every peer is a local process the harness
started, which is the trust model it asks for.
"""

from __future__ import annotations

from typing import Any, Literal

STATS_LOGGER = "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config"
METADATA_NAMESPACE = "istio"
BLACKHOLE = "BlackHoleCluster"  # Istio's destination_service for REGISTRY_ONLY denials

Reporter = Literal["source", "destination"]


def _tags(reporter: Reporter, *, with_flags: bool) -> list[dict[str, str]]:
    tags = [{"name": "reporter", "value_format": reporter},
            {"name": "response_code", "value_format": "%RESPONSE_CODE%"}]
    if with_flags:
        tags.append({"name": "response_flags", "value_format": "%RESPONSE_FLAGS%"})
    if reporter == "source":
        tags += [{"name": "upstream_cluster", "value_format": "%UPSTREAM_CLUSTER%"},
                 {"name": "route_host", "value_format": f"%METADATA(ROUTE:{METADATA_NAMESPACE}:destination_service)%"}]
    else:
        tags.append({"name": "source_principal", "value_format": "%DOWNSTREAM_PEER_URI_SAN%"})
        if with_flags:
            tags.append({"name": "response_code_details", "value_format": "%RESPONSE_CODE_DETAILS%"})
    return tags


def request_stats(reporter: Reporter) -> dict[str, Any]:
    """The access log entry that counts and times every request this HCM answers."""
    return {
        "name": "envoy.access_loggers.stats",
        "typed_config": {
            "@type": STATS_LOGGER,
            "stats_scope": {"prefix": METADATA_NAMESPACE},
            "counters": [{"stat": {"name": "requests_total", "tags": _tags(reporter, with_flags=True)},
                          "value_fixed": 1}],
            "histograms": [{"stat": {"name": "request_duration_milliseconds",
                                     "tags": _tags(reporter, with_flags=False)},
                            "unit": "Milliseconds", "value_format": "%DURATION%"}],
        },
    }


def route_metadata(host: str | None) -> dict[str, Any]:
    """A route's `metadata` naming its destination host; {} when its destinations differ in host."""
    if host is None:
        return {}
    return {"metadata": {"filter_metadata": {METADATA_NAMESPACE: {"destination_service": host}}}}
