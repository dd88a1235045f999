"""Envoy bootstrap for a local proxy: admin, stats tags, and file-based dynamic resources."""

from __future__ import annotations

from typing import Any, Sequence

from harness.mesh.translate.model import ProxyNode
from harness.mesh.translate.stats import envoy_stats_bootstrap


def _file_source(node: ProxyNode, name: str) -> dict[str, Any]:
    return {
        "path_config_source": {"path": str(node.xds_dir / name), "watched_directory": {"path": str(node.xds_dir)}},
        "resource_api_version": "V3",
    }


def bootstrap(node: ProxyNode, external_hosts: Sequence[str] = ()) -> dict[str, Any]:
    """The static part of a proxy's config; everything else comes from watched xDS files.

    `external_hosts` (ServiceEntry hosts known at start) keep their whole name in metric tags.
    """
    role = "sidecar" if node.kind == "sidecar" else "router"
    return {
        "node": {
            "id": f"{role}~127.0.0.1~{node.name}.{node.namespace}~{node.namespace}.svc.cluster.local",
            "cluster": f"{dict(node.labels).get('app', node.name)}.{node.namespace}",
            "locality": {"region": node.region},
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": node.admin_port}}},
        **envoy_stats_bootstrap(external_hosts=external_hosts, inclusion=node.stats_inclusion),
        "dynamic_resources": {"lds_config": _file_source(node, "lds.json"),
                              "cds_config": _file_source(node, "cds.json")},
    }
