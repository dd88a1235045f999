"""Inputs and outputs of the translation from Istio resources to Envoy configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from harness.mesh.resources import IstioConfig
from harness.mesh.topology import Topology

CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"  # a CDS resource's @type


@dataclass(frozen=True)
class CertPaths:
    """PEM files of one workload identity, as issued by the mesh CA."""

    cert_chain: Path
    key: Path
    root: Path


@dataclass(frozen=True)
class StatsInclusion:
    """ProxyConfig.proxyStatsMatcher's inclusion matchers (istio/api mesh/v1alpha1/proxy.proto), added to
    the stats Istio always includes (translate/stats.ISTIO_INCLUSION)."""

    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    regexps: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProxyNode:
    """One Envoy: a pod's sidecar or the ingress gateway."""

    name: str
    kind: Literal["sidecar", "gateway"]
    namespace: str
    labels: tuple[tuple[str, str], ...]
    region: str
    service_account: str
    certs: CertPaths
    xds_dir: Path
    admin_port: int
    inbound_port: int | None = None  # sidecar: mTLS listener in front of the app
    app_port: int | None = None  # sidecar: the app's /metrics for Prometheus, served by the sidecar
    app_socket: Path | None = None  # sidecar: the Unix socket the app listens on (folder 0700)
    outbound_port: int | None = None  # sidecar: the app sends requests (plain HTTP, or its TLS by SNI) here
    gateway_ports: Mapping[int, int] = field(default_factory=dict)  # gateway: server port -> local port
    access_log: bool = False  # meshConfig.accessLogFile: /dev/stdout (the dev profile)
    stats_inclusion: StatsInclusion = StatsInclusion()  # meshConfig.defaultConfig.proxyStatsMatcher
    path_normalization: str = "BASE"  # meshConfig.pathNormalization.normalization (Istio's default)


@dataclass(frozen=True)
class Endpoint:
    """Where a pod's sidecar accepts mesh traffic, and whether the pod is ready."""

    pod: str
    address: str
    port: int
    ready: bool


@dataclass(frozen=True)
class ExternalEndpoint:
    """The local stand-in for a MESH_EXTERNAL host (ServiceEntry): address and its TLS trust."""

    host: str
    address: str
    port: int
    ca_file: Path | None  # trust anchor for TLS origination; None means plaintext


@dataclass(frozen=True)
class TraceCollector:
    """The OTLP/HTTP endpoint every proxy's tracer sends spans to (127.0.0.0/8 only)."""

    host: str
    port: int
    path: str = "/v1/traces"


@dataclass(frozen=True)
class MeshState:
    """Everything the translator needs: declared config plus live endpoints."""

    istio: IstioConfig
    topology: Topology
    endpoints: Mapping[str, Endpoint]  # pod name -> endpoint
    external: Mapping[str, ExternalEndpoint] = field(default_factory=dict)  # host -> endpoint
    # service account -> its workload Secret (secrets.workload_secret), loaded once per issuance
    secrets: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    trace_collector: TraceCollector | None = None  # None: a Telemetry asking for traces is refused


@dataclass(frozen=True)
class ProxyConfig:
    """Envoy v3 resources for one proxy, as JSON-ready dicts."""

    listeners: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    routes: dict[str, dict[str, Any]]  # route config name -> RouteConfiguration
    endpoints: dict[str, dict[str, Any]]  # cluster name -> ClusterLoadAssignment
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)  # SDS name -> Secret (secrets.py)
