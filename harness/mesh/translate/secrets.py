"""Workload certificates delivered to Envoy by file-based SDS, so that rotating them restarts nothing.

listeners.py and clusters.py point every mTLS context at the secret `default` (Istio's name for a
workload's certificate). proxy.py puts that secret, the certificate chain and key inline, into the
proxy's ProxyConfig, from MeshState.secrets. xds_files.py writes it as `sds/default.json` (mode 0600: it holds the key), and
Envoy reloads it when the file is renamed. The daemon reissues the certificates at half their lifetime,
as Istio's agent does, and pushes (platforms/local/launch.py). Trust anchors stay static files: the
root outlives any run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.mesh.translate.model import CertPaths, ProxyNode

SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
WORKLOAD_SECRET = "default"


def sds_file(node: ProxyNode, name: str = WORKLOAD_SECRET) -> Path:
    return node.xds_dir / "sds" / f"{name}.json"


def workload_certificate(node: ProxyNode) -> list[dict[str, Any]]:
    """A TLS context's `tls_certificate_sds_secret_configs`: the workload secret, from its watched file."""
    return [{
        "name": WORKLOAD_SECRET,
        "sds_config": {
            "path_config_source": {"path": str(sds_file(node)), "watched_directory": {"path": str(node.xds_dir / "sds")}},
            "resource_api_version": "V3",
        },
    }]


def workload_secret(certs: CertPaths) -> dict[str, Any]:
    """The Secret as issued now: chain and key inline, so one rename swaps both at once.

    Read when certificates are issued (MeshController.load_certificates), not on every push.
    """
    return {
        "@type": SECRET,
        "name": WORKLOAD_SECRET,
        "tls_certificate": {
            "certificate_chain": {"inline_string": certs.cert_chain.read_text()},
            "private_key": {"inline_string": certs.key.read_text()},
        },
    }
