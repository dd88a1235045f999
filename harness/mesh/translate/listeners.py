"""Envoy listeners: a sidecar's mTLS inbound and plaintext outbound, the gateway's HTTP port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.mesh.translate.model import ProxyNode
from harness.mesh.translate.normalization import path_normalization
from harness.mesh.translate.rbac import rbac_filters
from harness.mesh.translate.routes import FAULT_FILTER
from harness.mesh.translate.secrets import workload_certificate
from harness.mesh.translate.telemetry import Reporter, request_stats

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
HCM_NAME = "envoy.filters.network.http_connection_manager"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
FAULT = {"name": FAULT_FILTER,
         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}}
TLS_INSPECTOR = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"},
}

ACCESS_LOG = {
    "name": "envoy.access_loggers.stdout",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"},
}

INBOUND_ROUTE = "inbound|8080"
OUTBOUND_ROUTE = "outbound|http"


def gateway_route_name(port: int) -> str:
    return f"http.{port}"


def rds_file(node: ProxyNode, route_name: str) -> Path:
    return node.xds_dir / "rds" / (route_name.replace("|", "_") + ".json")


def _hcm(node: ProxyNode, stat_prefix: str, route_name: str, filters: list[dict[str, Any]],
         reporter: Reporter, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "@type": HCM,
        "stat_prefix": stat_prefix,
        "rds": {
            "route_config_name": route_name,
            "config_source": {
                "path_config_source": {
                    "path": str(rds_file(node, route_name)),
                    "watched_directory": {"path": str(node.xds_dir / "rds")},
                },
                "resource_api_version": "V3",
            },
        },
        "http_filters": [*filters, ROUTER],
        **path_normalization(node.path_normalization),
        "generate_request_id": True,
        "preserve_external_request_id": True,
        "common_http_protocol_options": {"idle_timeout": "300s"},
    }
    config["access_log"] = [request_stats(reporter)] + ([ACCESS_LOG] if node.access_log else [])
    config.update(extra)
    return {"name": HCM_NAME, "typed_config": config}


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def _downstream_mtls(node: ProxyNode) -> dict[str, Any]:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": DOWNSTREAM_TLS,
            "require_client_certificate": True,
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": workload_certificate(node),
                "validation_context": {
                    "trusted_ca": {"filename": str(node.certs.root)},
                    "match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}
                    ],
                },
            },
        },
    }


def inbound_listener(node: ProxyNode, mtls_mode: str) -> dict[str, Any]:
    """STRICT: only mTLS chains; PERMISSIVE: mTLS or plaintext; DISABLE: plaintext only."""
    assert node.inbound_port is not None
    chains = []
    if mtls_mode in ("STRICT", "PERMISSIVE"):
        chains.append({
            "name": "inbound-mtls",
            "filter_chain_match": {"transport_protocol": "tls"},
            "transport_socket": _downstream_mtls(node),
            "filters": [_hcm(node, "inbound_8080", INBOUND_ROUTE, rbac_filters(), "destination",
                             forward_client_cert_details="SANITIZE_SET",
                             set_current_client_cert_details={"uri": True})],
        })
    if mtls_mode in ("PERMISSIVE", "DISABLE"):
        chains.append({
            "name": "inbound-plaintext",
            "filter_chain_match": {"transport_protocol": "raw_buffer"},
            "filters": [_hcm(node, "inbound_8080", INBOUND_ROUTE, rbac_filters(), "destination",
                             forward_client_cert_details="SANITIZE")],
        })
    return {
        "@type": LISTENER,
        "name": "virtualInbound",
        "address": _address(node.inbound_port),
        "listener_filters": [TLS_INSPECTOR],
        "filter_chains": chains,
    }


def outbound_listener(node: ProxyNode) -> dict[str, Any]:
    assert node.outbound_port is not None
    return {
        "@type": LISTENER,
        "name": "virtualOutbound",
        "address": _address(node.outbound_port),
        "filter_chains": [{"filters": [_hcm(node, "outbound_http", OUTBOUND_ROUTE, [FAULT], "source")]}],
    }


def gateway_listener(node: ProxyNode, server_port: int, local_port: int) -> dict[str, Any]:
    return {
        "@type": LISTENER,
        "name": f"0.0.0.0_{server_port}",
        "address": _address(local_port),
        "filter_chains": [{"filters": [_hcm(node, "ingress_http", gateway_route_name(server_port),
                                             [*rbac_filters(), FAULT],
                                             "source", use_remote_address=True)]}],
    }
