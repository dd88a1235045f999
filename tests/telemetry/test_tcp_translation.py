"""What the translator gives a sidecar for a ServiceEntry's HTTPS port: TLS passthrough by SNI, Istio's TCP metrics.

Followed: Istio's treatment of a `protocol: HTTPS` (or TLS) ServiceEntry port (the app originates TLS, the
sidecar matches the SNI and tcp_proxies to `outbound|443||<host>`; REGISTRY_ONLY sends other TLS to
BlackHoleCluster; http routes do not apply to such a port, Istio's "Traffic Management" / "Egress TLS
Origination" tasks: origination needs a port of protocol HTTP); istio/proxy `istio_stats.cc` `reportHelper`
(TCP metrics at connection close for a peer without metadata: opened, wire bytes sent and received,
closed; request_protocol "tcp", no response_code); Istio's "Istio Standard Metrics" (label set) and
Telemetry API metric names TCP_OPENED_CONNECTIONS, TCP_CLOSED_CONNECTIONS, TCP_SENT_BYTES,
TCP_RECEIVED_BYTES; Envoy 1.40's tls_inspector, filter_chain_match (server_names, transport_protocol),
tcp_proxy `access_log` and `envoy.access_loggers.stats` (counter `value_fixed` / `value_format`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import UnsupportedFieldError
from harness.mesh.loader import build_model, load_documents
from harness.mesh.schema import default_manifest_paths
from harness.mesh.translate.model import CertPaths, Endpoint, MeshState, ProxyNode, TraceCollector
from harness.mesh.translate.proxy import translate_proxy
from harness.platforms.local.recording_rules import metric_relabel_configs

NOWHERE = Path("/nonexistent")
EXTERNAL = "outbound|443||api.openai.com"
TCP = ("tcp_connections_opened_total", "tcp_sent_bytes_total", "tcp_received_bytes_total",
       "tcp_connections_closed_total")


def _config(tmp_path: Path, *extra: dict[str, Any], pod: str = "ai-agent-v1-us-east-0"):
    paths = list(default_manifest_paths())
    if extra:
        path = tmp_path / "extra.yaml"
        path.write_text(yaml.safe_dump_all(extra), encoding="utf-8")
        paths.append(path)
    model = build_model(load_documents(paths))
    found = model.topology.pod(pod)
    node = ProxyNode(name=found.name, kind="sidecar", namespace=found.namespace, labels=found.labels,
                     region=found.region, service_account=found.service_account,
                     certs=CertPaths(NOWHERE, NOWHERE, NOWHERE), xds_dir=NOWHERE, admin_port=1,
                     inbound_port=2, app_port=3, outbound_port=4)
    endpoints = {p.name: Endpoint(pod=p.name, address="127.0.0.1", port=10000 + i, ready=True)
                 for i, p in enumerate(model.topology.pods)}
    state = MeshState(istio=model.istio, topology=model.topology, endpoints=endpoints,
                      secrets={p.service_account: {"name": "default"} for p in model.topology.pods},
                      trace_collector=TraceCollector("127.0.0.1", 4318))
    return translate_proxy(state, node)


def _outbound(config) -> dict[str, Any]:
    (listener,) = [item for item in config.listeners if item["name"] == "virtualOutbound"]
    return listener


def _counters(chain: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (tcp_proxy,) = chain["filters"]
    (logger,) = tcp_proxy["typed_config"]["access_log"]
    return {c["stat"]["name"]: c for c in logger["typed_config"]["counters"]}


def _tags(counter: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["value_format"] for t in counter["stat"]["tags"]}


def test_the_outbound_listener_passes_the_external_apis_tls_through_by_sni(tmp_path: Path) -> None:
    config = _config(tmp_path)
    listener = _outbound(config)
    assert [f["name"] for f in listener["listener_filters"]] == ["envoy.filters.listener.tls_inspector"]
    external, blackhole, http = listener["filter_chains"]
    assert external["filter_chain_match"] == {"transport_protocol": "tls", "server_names": ["api.openai.com"]}
    assert [f["typed_config"]["cluster"] for f in external["filters"]] == [EXTERNAL]
    assert blackhole["filter_chain_match"] == {"transport_protocol": "tls"}  # any other SNI: REGISTRY_ONLY
    assert [f["typed_config"]["cluster"] for f in blackhole["filters"]] == ["BlackHoleCluster"]
    assert "filter_chain_match" not in http  # plaintext: the HTTP connection manager, as before
    assert [f["name"] for f in http["filters"]] == ["envoy.filters.network.http_connection_manager"]

    clusters = {c["name"]: c for c in config.clusters}
    assert "transport_socket" not in clusters[EXTERNAL]  # the app's TLS, not the sidecar's
    assert "typed_extension_protocol_options" not in clusters[EXTERNAL]  # bytes, not HTTP
    assert clusters["BlackHoleCluster"]["type"] == "STATIC" and "load_assignment" not in clusters["BlackHoleCluster"]
    # No HTTP route reaches the external host any more: plaintext naming it meets block_all.
    names = [vh["name"] for rc in config.routes.values() for vh in rc["virtual_hosts"]]
    assert not [name for name in names if "api.openai.com" in name]


def test_each_passthrough_chain_counts_istios_four_tcp_metrics_at_connection_close(tmp_path: Path) -> None:
    external, blackhole, _http = _outbound(_config(tmp_path))["filter_chains"]
    counters = _counters(external)
    assert list(counters) == list(TCP)
    assert counters["tcp_connections_opened_total"]["value_fixed"] == 1
    assert counters["tcp_connections_closed_total"]["value_fixed"] == 1
    assert counters["tcp_sent_bytes_total"]["value_format"] == "%BYTES_SENT%"  # to the app
    assert counters["tcp_received_bytes_total"]["value_format"] == "%BYTES_RECEIVED%"  # from the app
    tags = _tags(counters["tcp_sent_bytes_total"])
    assert tags["reporter"] == "source" and tags["request_protocol"] == "tcp"
    assert tags["response_flags"] == "%RESPONSE_FLAGS%"
    # constant per proxy: the scrape writes them (the own side from mesh_self, "unknown" by rule)
    assert not {"connection_security_policy", "source_workload", "source_version"} & set(tags)
    assert tags["source_app"] == "=ai-agent"  # the shipped Telemetry's CLIENT override, marked
    assert "grpc_response_status" not in tags
    # The shipped Telemetry's ALL_METRICS overrides: response_code is string(response.code), which a TCP
    # stream lacks (Istio evaluates it to "unknown"); destination_service is the service name.
    assert tags["response_code"] == "=unknown"  # an override's value, marked (translate/telemetry.OVERRIDE_MARK)
    assert tags["destination_service"] == "=%CLUSTER_METADATA(istio:name)%"
    assert _tags(_counters(blackhole)["tcp_connections_opened_total"])["destination_service_name"] == "BlackHoleCluster"


def _telemetry(overrides: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "telemetry.istio.io/v1alpha1", "kind": "Telemetry",
            "metadata": {"name": "tcp-overrides", "namespace": "parallel-ai"},
            "spec": {"selector": {"matchLabels": {"app": "ai-agent"}},
                     "metrics": [{"providers": [{"name": "prometheus"}], "overrides": overrides}]}}


def test_telemetry_overrides_of_tcp_metrics_apply_as_they_do_to_http_ones(tmp_path: Path) -> None:
    config = _config(tmp_path, _telemetry([
        {"match": {"metric": "TCP_SENT_BYTES"}, "disabled": True},
        {"match": {"metric": "TCP_OPENED_CONNECTIONS"}, "tagOverrides": {"source_version": {"operation": "REMOVE"}}},
        {"match": {"metric": "TCP_CLOSED_CONNECTIONS", "mode": "CLIENT"},
         "tagOverrides": {"sni": {"value": "connection.requested_server_name"},
                          "method": {"value": "request.method"}}},
    ]))
    counters = _counters(_outbound(config)["filter_chains"][0])
    assert "tcp_sent_bytes_total" not in counters
    assert _tags(counters["tcp_connections_opened_total"])["source_version"] == "REMOVED"
    assert "source_version" not in _tags(counters["tcp_received_bytes_total"])  # left to mesh_self
    closed = _tags(counters["tcp_connections_closed_total"])
    added = {value for name, value in closed.items() if name.startswith("mesh_user_tag_")}
    assert added == {"sni=%REQUESTED_SERVER_NAME%",
                     "method=unknown"}  # no request on a TCP stream: Istio's evaluation fails, "unknown"


def _destination_rule(traffic_policy: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
            "metadata": {"name": "openai", "namespace": "parallel-ai"},
            "spec": {"host": "api.openai.com", "trafficPolicy": traffic_policy}}


@pytest.mark.parametrize(("document", "field"), [
    (_destination_rule({"tls": {"mode": "SIMPLE"}}), "spec.trafficPolicy.tls.mode"),
    (_destination_rule({"connectionPool": {"http": {"http1MaxPendingRequests": 5}}}),
     "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests"),
    ({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
      "metadata": {"name": "openai-retries", "namespace": "parallel-ai"},
      "spec": {"hosts": ["api.openai.com"],
               "http": [{"route": [{"destination": {"host": "api.openai.com"}}], "retries": {"attempts": 3}}]}},
     "spec.http[0]"),
    ({"apiVersion": "networking.istio.io/v1beta1", "kind": "ServiceEntry",
      "metadata": {"name": "plain-api", "namespace": "parallel-ai"},
      "spec": {"hosts": ["plain.example.com"], "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
               "location": "MESH_EXTERNAL", "resolution": "DNS"}},
     "spec.ports[0].protocol"),
])
def test_what_needs_http_on_a_passed_through_port_is_refused_naming_the_field(
        tmp_path: Path, document: dict[str, Any], field: str) -> None:
    with pytest.raises(UnsupportedFieldError) as caught:
        _config(tmp_path, document)
    assert caught.value.field == field


def test_a_tcp_proxy_cluster_outlier_detection_and_tcp_pool_still_apply(tmp_path: Path) -> None:
    config = _config(tmp_path, _destination_rule({
        "connectionPool": {"tcp": {"maxConnections": 7}},
        "outlierDetection": {"consecutive5xxErrors": 2, "interval": "1s", "baseEjectionTime": "5s"}}))
    cluster = next(c for c in config.clusters if c["name"] == EXTERNAL)
    assert cluster["circuit_breakers"]["thresholds"][0]["max_connections"] == 7
    assert cluster["outlier_detection"]["consecutive_5xx"] == 2  # connect failures count on a tcp_proxy


def test_the_scrape_fills_response_code_only_on_http_series() -> None:
    """Istio's TCP metrics carry no response_code: the scrape must not add response_code="unknown" to them."""
    (rule,) = [c for c in metric_relabel_configs()
               if c.get("target_label") == "response_code" and c.get("replacement") == "unknown"]
    pattern = re.compile(str(rule["regex"]))
    assert pattern.fullmatch("envoy_istio_requests_total;")
    assert pattern.fullmatch("envoy_istio_request_duration_milliseconds_bucket;")
    for metric in TCP:
        assert not pattern.fullmatch(f"envoy_istio_{metric};")
