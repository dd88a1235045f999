"""Istio resources to Envoy v3 configuration: the local control plane's Pilot."""

from harness.mesh.translate.bootstrap import bootstrap
from harness.mesh.translate.model import (
    CertPaths, Endpoint, ExternalEndpoint, MeshState, ProxyConfig, ProxyNode,
)
from harness.mesh.translate.proxy import translate_proxy
from harness.mesh.translate.xds_files import XdsWriter

__all__ = [
    "CertPaths", "Endpoint", "ExternalEndpoint", "MeshState", "ProxyConfig", "ProxyNode",
    "XdsWriter", "bootstrap", "translate_proxy",
]
