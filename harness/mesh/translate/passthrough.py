"""TLS passthrough for ServiceEntry ports of protocol HTTPS or TLS, with Istio's TCP metrics.

As Istio does for a `protocol: HTTPS` (or TLS) port: the app originates TLS itself, the sidecar's outbound
listener reads the SNI (tls_inspector) and a filter chain per host (`server_names`) tcp_proxies the bytes,
unopened, to `outbound|<port>||<host>`. A TLS connection naming no registry host goes to BlackHoleCluster
(outboundTrafficPolicy REGISTRY_ONLY, what the local mesh and the kind control plane use; the HTTP side's
`block_all` route is the same policy). Plaintext keeps the HTTP filter chain.

Since the sidecar never sees inside the TLS, HTTP features cannot apply to such a host, in Istio either:
a VirtualService `http` route for it, a DestinationRule `tls` (the sidecar would wrap the app's TLS in a
second TLS) or `connectionPool.http` settings are refused here with the field named, never ignored.

TCP metrics (istio/proxy `istio_stats.cc`, `reportHelper` on the network-filter path): a client sidecar
reads no peer metadata from a MESH_EXTERNAL host (there is no metadata exchange with it), so the plugin
reports the connection once, when it closes: `tcp_connections_opened_total` +1, the downstream bytes
meter's wire bytes sent and received, `tcp_connections_closed_total` +1, with request_protocol "tcp",
response_flags and connection_security_policy "unknown" (client side), and no response_code. The local
tcp_proxy's access log runs at the same moment (connection close), through the same
`envoy.access_loggers.stats` logger as the HTTP metrics (translate/telemetry.py).
"""

from __future__ import annotations

from typing import Any, Iterable

from harness.errors import UnsupportedFieldError
from harness.mesh import cel
from harness.mesh.resources import ServiceEntry, VirtualService
from harness.mesh.telemetry_api import TelemetryResource, metric_plan
from harness.mesh.translate.clusters import cluster_name
from harness.mesh.translate.model import CLUSTER_TYPE, MeshState, ProxyNode
from harness.mesh.translate.policy import EffectivePolicy
from harness.mesh.translate.telemetry import (
    BLACKHOLE, METADATA_NAMESPACE, STATS_LOGGER, envoy_node, overridden_tags, standard_tags,
)

PASSTHROUGH_PROTOCOLS = ("HTTPS", "TLS")
TCP_PROXY_NAME = "envoy.filters.network.tcp_proxy"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
TLS_INSPECTOR = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
}
# Istio's TCP metrics (the stats plugin's names, istio_ prefix dropped) and what each adds per connection.
TCP_METRICS = {
    "tcp_connections_opened_total": None,
    "tcp_sent_bytes_total": "%BYTES_SENT%",  # to the app (downstream): the response direction
    "tcp_received_bytes_total": "%BYTES_RECEIVED%",  # from the app: the request direction
    "tcp_connections_closed_total": None,
}
_HTTP_ONLY_ROOTS = frozenset({"request", "response"})  # attributes a TCP stream does not have


def tls_hosts(state: MeshState) -> dict[str, tuple[int, ServiceEntry]]:
    """ServiceEntry host -> (port, entry) for every port the sidecar passes through by SNI.

    A port of another protocol is refused: the local mesh implements ServiceEntry ports as Istio treats
    HTTPS and TLS ones (passthrough) only."""
    hosts: dict[str, tuple[int, ServiceEntry]] = {}
    for entry in state.istio.service_entries:
        for index, port in enumerate(entry.ports):
            if port.protocol.upper() not in PASSTHROUGH_PROTOCOLS:
                raise UnsupportedFieldError(
                    f"ServiceEntry {entry.name!r}: port {port.number} protocol {port.protocol!r} is not implemented "
                    f"locally; expected one of {', '.join(PASSTHROUGH_PROTOCOLS)} (the app originates TLS and the "
                    "sidecar passes it through by SNI, as Istio does)",
                    field=f"spec.ports[{index}].protocol")
            for host in entry.hosts:
                hosts.setdefault(host, (port.number, entry))
    return hosts


def check_passthrough(hosts: dict[str, tuple[int, ServiceEntry]], policies: dict[str, EffectivePolicy],
                      virtual_services: Iterable[VirtualService]) -> None:
    """Refuse what would need the sidecar to read the passed-through bytes (Istio cannot apply it either)."""
    for host, (port, _entry) in hosts.items():
        effective = policies.get(host)
        if effective is None:
            continue
        rules = ", ".join(effective.rule_names) or "a DestinationRule"
        for subset in (None, *(s.name for s in effective.subsets)):
            policy = effective.policy_for(subset)
            if policy.tls_mode not in (None, "DISABLE"):
                raise UnsupportedFieldError(
                    f"DestinationRule {rules} for {host}: tls.mode {policy.tls_mode!r} would make the sidecar "
                    f"originate TLS inside the app's own TLS: port {port} of {host} is HTTPS/TLS, passed through "
                    "by SNI (Istio's TLS origination needs a ServiceEntry port of protocol HTTP)",
                    field="spec.trafficPolicy.tls.mode")
            pool = policy.pool
            http = {"http1MaxPendingRequests": pool.http1_max_pending_requests,
                    "http2MaxRequests": pool.http2_max_requests,
                    "maxRequestsPerConnection": pool.max_requests_per_connection,
                    "maxRetries": pool.max_retries, "idleTimeout": pool.idle_timeout_s}
            for name, value in http.items():
                if value is not None:
                    raise UnsupportedFieldError(
                        f"DestinationRule {rules} for {host}: connectionPool.http.{name} cannot apply to port "
                        f"{port}, which is HTTPS/TLS passed through by SNI (the sidecar sees no HTTP requests); "
                        "use connectionPool.tcp", field=f"spec.trafficPolicy.connectionPool.http.{name}")
    for vs in virtual_services:
        for index, route in enumerate(vs.routes):
            named = {d.host for d in route.destinations} | set(vs.hosts)
            passed = sorted(named & set(hosts))
            if passed:
                raise UnsupportedFieldError(
                    f"VirtualService {vs.name!r}: an http route for {passed[0]}, whose ServiceEntry port "
                    f"{hosts[passed[0]][0]} is HTTPS/TLS: the sidecar passes that TLS through by SNI and sees no "
                    "HTTP, so Istio applies no http route (retries, timeouts, faults) to it; only tls routes with "
                    "sniHosts would, which the local mesh does not implement", field=f"spec.http[{index}]")


def blackhole_cluster() -> dict[str, Any]:
    """Istio's BlackHoleCluster: no endpoints, so every connection to it is closed at once."""
    return {"@type": CLUSTER_TYPE, "name": BLACKHOLE, "type": "STATIC", "connect_timeout": "10s"}


def _tcp_tags(state: MeshState, node: ProxyNode, *, blackhole: bool) -> dict[str, str]:
    tags = standard_tags(state, node, "source", mtls=None)
    tags.pop("response_code", None)  # HTTP only (the plugin's TCP path never adds it)
    tags["destination_service"] = f"%CLUSTER_METADATA({METADATA_NAMESPACE}:host)%"
    tags["destination_service_name"] = (BLACKHOLE if blackhole
                                        else f"%CLUSTER_METADATA({METADATA_NAMESPACE}:name)%")
    # connection_security_policy is "unknown" on Istio's TCP path for a source reporter: the scrape writes it
    tags.update({"request_protocol": "tcp", "response_flags": "%RESPONSE_FLAGS%"})
    return tags


def _tcp_value(text: str, node: ProxyNode) -> str:
    """A Telemetry override's value on a TCP connection: request/response attributes do not exist there,
    so Istio's evaluation fails and the tag reads "unknown"."""
    if cel.check(text).roots & _HTTP_ONLY_ROOTS:
        return "unknown"
    return cel.to_envoy_format(text, reporter="source", node=envoy_node(node))


def tcp_stats(state: MeshState, node: ProxyNode, telemetry: Iterable[TelemetryResource], *,
              blackhole: bool) -> dict[str, Any] | None:
    """The stats access logger of one passthrough chain (reporter "source"); None if all four are disabled."""
    plan = metric_plan(telemetry, "source", node.namespace, node.labels)
    base = _tcp_tags(state, node, blackhole=blackhole)
    counters = []
    for metric, amount in TCP_METRICS.items():
        if metric in plan.disabled:
            continue
        tags = overridden_tags(plan, metric, base, lambda text: _tcp_value(text, node))
        counter: dict[str, Any] = {"stat": {"name": metric, "tags": [{"name": k, "value_format": v}
                                                                     for k, v in tags.items()]}}
        if amount is None:
            counter["value_fixed"] = 1
        else:
            counter["value_format"] = amount
        counters.append(counter)
    if not counters:
        return None
    return {"name": "envoy.access_loggers.stats",
            "typed_config": {"@type": STATS_LOGGER, "stats_scope": {"prefix": METADATA_NAMESPACE},
                             "counters": counters}}


def _tcp_proxy(cluster: str, stats: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {"@type": TCP_PROXY, "stat_prefix": cluster, "cluster": cluster}
    if stats is not None:
        config["access_log"] = [stats]
    return {"name": TCP_PROXY_NAME, "typed_config": config}


def passthrough_chains(state: MeshState, node: ProxyNode,
                       hosts: dict[str, tuple[int, ServiceEntry]]) -> list[dict[str, Any]]:
    """One filter chain per host by SNI, then BlackHoleCluster for any other TLS (REGISTRY_ONLY)."""
    telemetry = state.istio.telemetry
    chains = []
    for host, (port, _entry) in sorted(hosts.items()):
        cluster = cluster_name("outbound", port, None, host)
        chains.append({"name": cluster,
                       "filter_chain_match": {"transport_protocol": "tls", "server_names": [host]},
                       "filters": [_tcp_proxy(cluster, tcp_stats(state, node, telemetry, blackhole=False))]})
    chains.append({"name": BLACKHOLE, "filter_chain_match": {"transport_protocol": "tls"},
                   "filters": [_tcp_proxy(BLACKHOLE, tcp_stats(state, node, telemetry, blackhole=True))]})
    return chains


def with_passthrough(listener: dict[str, Any], chains: list[dict[str, Any]]) -> dict[str, Any]:
    """The sidecar's outbound listener reading the SNI: TLS chains first, the plaintext HTTP chain last."""
    listener["listener_filters"] = [TLS_INSPECTOR]
    listener["filter_chains"] = [*chains, *listener["filter_chains"]]
    return listener
