"""Istio's TCP metrics on the live local mesh: the external API's TLS, passed through by SNI, and blackholed TLS.

Followed: Istio's "Istio Standard Metrics" reference (istio_tcp_sent_bytes_total,
istio_tcp_received_bytes_total, istio_tcp_connections_opened_total, istio_tcp_connections_closed_total and
their labels); istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc` `reportHelper`
(network path: a client sidecar that reads no peer metadata, as from a MESH_EXTERNAL host, reports the
connection when it closes: opened, the downstream wire bytes both ways, closed; request_protocol "tcp",
connection_security_policy "unknown" on the client side, destination_service_name "BlackHoleCluster"
for that cluster); Envoy 1.40's tls_inspector, filter_chain_match.server_names, tcp_proxy access log and
`envoy.access_loggers.stats`.
"""

from __future__ import annotations

import socket
import ssl
import time

from harness.mesh.telemetry_api import STANDARD_TAGS
from tests.local_mesh.meshkit import Mesh
from tests.local_mesh.test_external_and_telemetry import query

TCP_METRICS = ("istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
               "istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total")
EXTERNAL = 'reporter="source",source_app="ai-agent",destination_service_name="api.openai.com"'
BLACKHOLE = 'reporter="source",source_workload="ai-agent-v1-us-east",destination_service_name="BlackHoleCluster"'


def _totals(mesh: Mesh, selector: str) -> dict[str, float]:
    totals = {}
    for metric in TCP_METRICS:
        result = query(mesh, f"sum({metric}{{{selector}}})")
        totals[metric] = float(result[0]["value"][1]) if result else 0.0
    return totals


def _grown(mesh: Mesh, selector: str, before: dict[str, float], metric: str) -> dict[str, float]:
    """The totals once `metric` went past `before` (bounded: 60 polls over about 30 s; a connection is
    counted when it closes, and the stand-in closes an idle keep-alive connection after 5 s)."""
    totals = _totals(mesh, selector)
    for _ in range(60):
        if totals[metric] > before[metric]:
            break
        time.sleep(0.5)
        totals = _totals(mesh, selector)
    return totals


def test_the_external_apis_tls_is_counted_in_istios_tcp_metrics_with_istios_labels(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    before = _totals(mesh, EXTERNAL)
    for i in range(4):
        assert mesh.chat(user=f"tcp{i}").status_code == 200
    after = _grown(mesh, EXTERNAL, before, "istio_tcp_connections_closed_total")
    opened, closed = (after[m] - before[m] for m in TCP_METRICS[:2])
    assert opened >= closed >= 1, (before, after)
    assert after["istio_tcp_sent_bytes_total"] > before["istio_tcp_sent_bytes_total"], (before, after)
    assert after["istio_tcp_received_bytes_total"] > before["istio_tcp_received_bytes_total"], (before, after)

    for metric in TCP_METRICS:
        for series in query(mesh, f"{metric}{{{EXTERNAL}}}"):
            labels = series["metric"]
            # Every standard label but the HTTP-only ones (grpc_response_status; response_code comes from the
            # shipped Telemetry's ALL_METRICS override, which Istio applies to TCP metrics too and evaluates to
            # "unknown": a TCP stream has no response code).
            assert set(STANDARD_TAGS) - {"grpc_response_status"} <= set(labels), (metric, labels)
            assert "grpc_response_status" not in labels
            assert labels["response_code"] == "unknown"
            assert labels["request_protocol"] == "tcp"
            assert labels["connection_security_policy"] == "unknown"  # the client side never knows, in Istio
            # ai-agent is the external API's only caller; which of its workloads carried chats depends on
            # what earlier tests did to the session mesh (a failover moves v1 traffic to us-west)
            assert labels["source_workload"] in ("ai-agent-v1-us-east", "ai-agent-v1-us-west", "ai-agent-v2-eu-west")
            assert labels["source_principal"] == "spiffe://cluster.local/ns/parallel-ai/sa/ai-agent-service"
            assert (labels["destination_service"], labels["destination_service_namespace"]) == (
                "api.openai.com", "parallel-ai")
            # Outside the mesh: no workload, and the TLS is the app's, so no peer certificate for the sidecar.
            assert labels["destination_workload"] == labels["destination_principal"] == "unknown"


def test_tls_naming_no_registry_host_goes_to_the_blackhole_and_is_counted(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    before = _totals(mesh, BLACKHOLE)
    outbound = mesh.pod("ai-agent-v1-us-east-0")["outbound_port"]
    context = ssl.create_default_context()
    try:
        with socket.create_connection(("127.0.0.1", outbound), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="unknown.example.com"):
                raise AssertionError("a TLS handshake completed for a host outside the registry")
    except (ssl.SSLError, ConnectionError):
        pass  # REGISTRY_ONLY: BlackHoleCluster has no endpoint, the connection is closed at once
    after = _grown(mesh, BLACKHOLE, before, "istio_tcp_connections_closed_total")
    assert after["istio_tcp_connections_opened_total"] - before["istio_tcp_connections_opened_total"] >= 1
    assert after["istio_tcp_connections_closed_total"] - before["istio_tcp_connections_closed_total"] >= 1
    (series, *_) = query(mesh, f"istio_tcp_connections_closed_total{{{BLACKHOLE}}}")
    assert series["metric"]["response_flags"] == "UH"  # no healthy upstream
    assert series["metric"]["destination_service"] == "unknown"
