"""The sidecar's plaintext listener that serves its app's /metrics to Prometheus, and nothing else.

The app listens on a Unix socket only the sidecar and the harness can open, so Prometheus scrapes it
through its sidecar, as Istio's metrics merging does (the agent's :15020/stats/prometheus serves the
app's metrics with the proxy's). Only `GET /metrics` reaches the app; any other request gets 404 from
Envoy, so this port opens no way around the inbound listener's mTLS and authorization.
"""

from __future__ import annotations

from typing import Any

from harness.mesh.translate.clusters import cluster_name
from harness.mesh.translate.model import ProxyNode

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
METRICS_PATH = "/metrics"


def app_metrics_listener(node: ProxyNode) -> dict[str, Any]:
    """A listener on 127.0.0.1:app_port routing exactly GET /metrics to the app's socket."""
    assert node.app_port is not None
    route_config = {
        "name": "app-metrics",
        "virtual_hosts": [{
            "name": "app-metrics",
            "domains": ["*"],
            "routes": [
                {"match": {"path": METRICS_PATH, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
                 "route": {"cluster": cluster_name("inbound", 8080, None, ""), "timeout": "5s"}},
                {"match": {"prefix": "/"},
                 "direct_response": {"status": 404, "body": {"inline_string": "only GET /metrics is served here\n"}}},
            ],
        }],
    }
    return {
        "@type": LISTENER,
        "name": "app_metrics",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": node.app_port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM,
                "stat_prefix": "app_metrics",
                "route_config": route_config,
                "normalize_path": True,  # /metrics spelt otherwise is normalised first, then matched exactly
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}],
            },
        }]}],
    }
