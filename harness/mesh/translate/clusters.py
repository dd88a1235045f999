"""Envoy clusters for services and ServiceEntries, shaped by DestinationRules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UnsupportedFieldError
from harness.mesh.durations import envoy_duration
from harness.mesh.resources import ServiceEntry, TrafficPolicy
from harness.mesh.topology import Service, Topology
from harness.mesh.translate.model import ExternalEndpoint, ProxyNode
from harness.mesh.translate.policy import EffectivePolicy
from harness.mesh.translate.secrets import workload_certificate

TLS_SOCKET = "envoy.transport_sockets.tls"
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
MAX = 4294967295  # Istio's "unlimited" for circuit breaker thresholds

LB_POLICIES = {"LEAST_CONN": "LEAST_REQUEST", "LEAST_REQUEST": "LEAST_REQUEST",
               "ROUND_ROBIN": "ROUND_ROBIN", "RANDOM": "RANDOM"}


def cluster_name(direction: str, port: int, subset: str | None, host: str) -> str:
    return f"{direction}|{port}|{subset or ''}|{host}"


def parse_cluster_name(name: str) -> tuple[str, int, str | None, str] | None:
    """cluster_name's parts back (pilot's ParseSubsetKey): direction, port, subset (None: all), host; None
    for a name of another form (BlackHoleCluster, otel-collector)."""
    parts = name.split("|")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    direction, port, subset, host = parts
    return direction, int(port), subset or None, host


def eds_file(node: ProxyNode, name: str) -> Path:
    return node.xds_dir / "eds" / (name.replace("|", "_").replace("*", "any") + ".json")


def _eds_config(node: ProxyNode, name: str) -> dict[str, Any]:
    return {
        "eds_config": {
            "path_config_source": {
                "path": str(eds_file(node, name)),
                "watched_directory": {"path": str(node.xds_dir / "eds")},
            },
            "resource_api_version": "V3",
        },
        "service_name": name,
    }


def _http_options(policy: TrafficPolicy) -> dict[str, Any]:
    common: dict[str, Any] = {}
    if policy.pool.max_requests_per_connection:
        common["max_requests_per_connection"] = policy.pool.max_requests_per_connection
    if policy.pool.idle_timeout_s is not None:
        common["idle_timeout"] = envoy_duration(policy.pool.idle_timeout_s)
    options: dict[str, Any] = {
        "@type": f"type.googleapis.com/{HTTP_OPTIONS}",
        "explicit_http_config": {"http_protocol_options": {}},
    }
    if common:
        options["common_http_protocol_options"] = common
    return {HTTP_OPTIONS: options}


def _circuit_breakers(policy: TrafficPolicy) -> dict[str, Any]:
    pool = policy.pool
    return {
        "thresholds": [{
            "max_connections": pool.max_connections or MAX,
            "max_pending_requests": pool.http1_max_pending_requests or MAX,
            "max_requests": pool.http2_max_requests or MAX,
            "max_retries": pool.max_retries or MAX,
            "track_remaining": True,
        }]
    }


def _outlier_detection(policy: TrafficPolicy) -> dict[str, Any] | None:
    outlier = policy.outlier
    if outlier is None:
        return None
    config: dict[str, Any] = {
        "interval": envoy_duration(outlier.interval_s),
        "base_ejection_time": envoy_duration(outlier.base_ejection_time_s),
        "max_ejection_percent": outlier.max_ejection_percent,
        "enforcing_success_rate": 0,
    }
    consecutive_5xx = 5 if outlier.consecutive_5xx is None else outlier.consecutive_5xx
    if consecutive_5xx > 0:
        config["consecutive_5xx"] = consecutive_5xx
        config["enforcing_consecutive_5xx"] = 100
    else:
        config["enforcing_consecutive_5xx"] = 0
    if outlier.consecutive_gateway_errors:
        config["consecutive_gateway_failure"] = outlier.consecutive_gateway_errors
        config["enforcing_consecutive_gateway_failure"] = 100
    return config


def _upstream_mtls(node: ProxyNode, peer_ids: list[str]) -> dict[str, Any]:
    validation: dict[str, Any] = {"trusted_ca": {"filename": str(node.certs.root)}}
    if peer_ids:
        validation["match_typed_subject_alt_names"] = [
            {"san_type": "URI", "matcher": {"exact": peer}} for peer in sorted(set(peer_ids))
        ]
    return {
        "name": TLS_SOCKET,
        "typed_config": {
            "@type": UPSTREAM_TLS,
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": workload_certificate(node),
                "validation_context": validation,
            },
        },
    }


def _lb_policy(policy: TrafficPolicy, name: str) -> str:
    simple = policy.lb_simple or "LEAST_REQUEST"
    if simple not in LB_POLICIES:
        raise UnsupportedFieldError(
            f"cluster {name}: loadBalancer.simple {simple!r} is not implemented locally; "
            f"expected one of {', '.join(sorted(LB_POLICIES))}",
            field="spec.trafficPolicy.loadBalancer.simple",
        )
    return LB_POLICIES[simple]


def _base_cluster(node: ProxyNode, name: str, policy: TrafficPolicy) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "EDS",
        "eds_cluster_config": _eds_config(node, name),
        "connect_timeout": envoy_duration(policy.pool.connect_timeout_s or 10.0),
        "lb_policy": _lb_policy(policy, name),
        "circuit_breakers": _circuit_breakers(policy),
        "ignore_health_on_host_removal": True,
        "typed_extension_protocol_options": _http_options(policy),
    }
    outlier = _outlier_detection(policy)
    if outlier is not None:
        cluster["outlier_detection"] = outlier
        if policy.outlier is not None:
            cluster["common_lb_config"] = {
                "healthy_panic_threshold": {"value": float(policy.outlier.min_health_percent)}
            }
    keepalive = {
        key: int(value)
        for key, value in (
            ("keepalive_time", policy.pool.keepalive_time_s),
            ("keepalive_interval", policy.pool.keepalive_interval_s),
            ("keepalive_probes", policy.pool.keepalive_probes),
        )
        if value is not None
    }
    if keepalive:
        cluster["upstream_connection_options"] = {"tcp_keepalive": keepalive}
    return cluster


def service_clusters(node: ProxyNode, topology: Topology, service: Service,
                     effective: EffectivePolicy) -> list[dict[str, Any]]:
    """The default cluster plus one per subset, with mTLS to the service's identities."""
    peer_ids = [pod.spiffe_id for pod in topology.pods_of(service)]
    clusters = []
    for subset in (None, *(s.name for s in effective.subsets)):
        policy = effective.policy_for(subset)
        if policy.tls_mode not in (None, "ISTIO_MUTUAL"):
            raise UnsupportedFieldError(
                f"DestinationRule for {service.fqdn}: tls.mode {policy.tls_mode!r} is not implemented "
                "locally; the mesh always uses ISTIO_MUTUAL between sidecars",
                field="spec.trafficPolicy.tls.mode",
            )
        name = cluster_name("outbound", service.port, subset, service.fqdn)
        cluster = _base_cluster(node, name, policy)
        cluster["transport_socket"] = _upstream_mtls(node, peer_ids)
        clusters.append(cluster)
    return clusters


def external_cluster(node: ProxyNode, entry: ServiceEntry, host: str, port: int,
                     endpoint: ExternalEndpoint | None, effective: EffectivePolicy) -> dict[str, Any]:
    """A MESH_EXTERNAL host's HTTPS/TLS port: the app's own TLS passes through to the endpoint
    (translate/passthrough.py), so the cluster carries bytes only: no TLS origination, no HTTP options."""
    name = cluster_name("outbound", port, None, host)
    cluster = _base_cluster(node, name, effective.policy)
    cluster.pop("typed_extension_protocol_options", None)
    return cluster


def inbound_cluster(node: ProxyNode) -> dict[str, Any]:
    """The sidecar's cluster for its own app: its Unix socket (only the sidecar and the harness can
    open it), or plaintext on 127.0.0.1:app_port when the node has no socket."""
    name = cluster_name("inbound", 8080, None, "")
    if node.app_socket is not None:
        address: dict[str, Any] = {"pipe": {"path": str(node.app_socket)}}
    else:
        assert node.app_port is not None
        address = {"socket_address": {"address": "127.0.0.1", "port_value": node.app_port}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "10s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
        "circuit_breakers": _circuit_breakers(TrafficPolicy()),
        "typed_extension_protocol_options": _http_options(TrafficPolicy()),
    }
