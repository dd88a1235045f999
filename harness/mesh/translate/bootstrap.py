"""Envoy bootstrap for a local proxy: admin, stats tags, and file-based dynamic resources."""

from __future__ import annotations

from typing import Any

from harness.mesh.translate.model import ProxyNode

# Istio's bootstrap tag for cluster names: dots inside the service name would otherwise
# break Envoy's default tag extraction (see LOCAL-MESH-NOTES, Metrics).
CLUSTER_NAME_TAG = {"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"}


def stats_config() -> dict[str, Any]:
    return {"use_all_default_tags": True, "stats_tags": [CLUSTER_NAME_TAG]}


def _file_source(node: ProxyNode, name: str) -> dict[str, Any]:
    return {
        "path_config_source": {"path": str(node.xds_dir / name), "watched_directory": {"path": str(node.xds_dir)}},
        "resource_api_version": "V3",
    }


def bootstrap(node: ProxyNode) -> dict[str, Any]:
    """The static part of a proxy's config; everything else comes from watched xDS files."""
    role = "sidecar" if node.kind == "sidecar" else "router"
    return {
        "node": {
            "id": f"{role}~127.0.0.1~{node.name}.{node.namespace}~{node.namespace}.svc.cluster.local",
            "cluster": f"{dict(node.labels).get('app', node.name)}.{node.namespace}",
            "locality": {"region": node.region},
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": node.admin_port}}},
        "stats_config": stats_config(),
        "dynamic_resources": {"lds_config": _file_source(node, "lds.json"),
                              "cds_config": _file_source(node, "cds.json")},
    }
