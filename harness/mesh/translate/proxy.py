"""Translate the whole mesh state into one proxy's Envoy resources (Pilot's push for one node)."""

from __future__ import annotations

from typing import Any

from harness.mesh.resources import VirtualService, fqdn
from harness.mesh.translate.authn import inbound_mode
from harness.mesh.translate.clusters import (
    cluster_name, external_cluster, inbound_cluster, parse_cluster_name, service_clusters,
)
from harness.mesh.translate.endpoints import external_assignment, load_assignment
from harness.mesh.translate.listeners import (
    INBOUND_ROUTE, OUTBOUND_ROUTE, gateway_listener, gateway_route_name, inbound_listener,
    outbound_listener,
)
from harness.mesh.translate.metrics_port import app_metrics_listener
from harness.mesh.translate.model import CLUSTER_TYPE, MeshState, ProxyConfig, ProxyNode
from harness.mesh.translate.passthrough import (
    blackhole_cluster, check_passthrough, passthrough_chains, tls_hosts, with_passthrough,
)
from harness.mesh.translate.policy import EffectivePolicy, effective_policy
from harness.mesh.translate.rbac import applies_to, per_route_rbac
from harness.mesh.translate.routes import outbound_route_config, trace_operation
from harness.mesh.translate.secrets import WORKLOAD_SECRET
from harness.mesh.translate.telemetry import with_telemetry

ROUTE_CONFIG = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
APP_CONTAINER_PORT = 8080  # the one container port of every workload, which the sidecar's inbound fronts


def known_hosts(state: MeshState) -> dict[str, int]:
    """Every host of the registry (Services and ServiceEntry hosts) with its HTTP port."""
    hosts = {service.fqdn: service.port for service in state.topology.services}
    for entry in state.istio.service_entries:
        for host in entry.hosts:
            hosts.setdefault(host, entry.ports[0].number if entry.ports else 80)
    return hosts


def mtls_mode(state: MeshState, node: ProxyNode) -> str:
    """The sidecar's inbound mode: PeerAuthentication composed mesh -> namespace -> workload -> port."""
    return inbound_mode(state.istio.peer_authentications, node.namespace, node.labels, (APP_CONTAINER_PORT,))


def _bound_to(vs: VirtualService, gateway: str | None) -> bool:
    if gateway is None:
        return "mesh" in vs.gateways
    return any(g == gateway or g.endswith(f"/{gateway}") for g in vs.gateways)


def _gateways_for(state: MeshState, node: ProxyNode) -> list[tuple[str, int]]:
    return [(gw.name, port) for gw in state.istio.gateways
            if set(gw.selector) <= set(node.labels) for port in gw.ports]


def _clusters_and_endpoints(state: MeshState, node: ProxyNode,
                            policies: dict[str, EffectivePolicy]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    clusters: list[dict[str, Any]] = []
    assignments: dict[str, Any] = {}
    for service in state.topology.services:
        effective = policies[service.fqdn]
        pods = state.topology.pods_of(service)
        for cluster in service_clusters(node, state.topology, service, effective):
            clusters.append(cluster)
            subset_name = (parse_cluster_name(cluster["name"]) or ("", 0, None, ""))[2]
            subset = effective.subset(subset_name) if subset_name else None
            members = [p for p in pods if subset is None or set(subset.labels) <= set(p.labels)]
            assignments[cluster["name"]] = load_assignment(
                cluster["name"], members, dict(state.endpoints), effective.policy_for(subset_name), node.region)
    for entry in state.istio.service_entries:
        for host in entry.hosts:
            for port in entry.ports:
                endpoint = state.external.get(host)
                cluster = external_cluster(node, entry, host, port.number, endpoint, policies[host])
                clusters.append(cluster)
                assignments[cluster["name"]] = external_assignment(cluster["name"], endpoint)
    return clusters, assignments


def translate_proxy(state: MeshState, node: ProxyNode) -> ProxyConfig:
    """Listeners, clusters, routes and endpoints for one sidecar or gateway."""
    hosts = known_hosts(state)
    policies = {host: effective_policy(state.istio, host) for host in hosts}
    passed = tls_hosts(state)  # ServiceEntry HTTPS/TLS ports: passed through by SNI, no HTTP routes
    check_passthrough(passed, policies, state.istio.virtual_services)
    hosts = {host: port for host, port in hosts.items() if host not in passed}
    clusters, assignments = _clusters_and_endpoints(state, node, policies)
    listeners: list[dict[str, Any]] = []
    routes: dict[str, dict[str, Any]] = {}
    if node.kind == "sidecar":
        clusters += [inbound_cluster(node), blackhole_cluster()]
        listeners += [inbound_listener(node, mtls_mode(state, node)),
                      with_passthrough(outbound_listener(node), passthrough_chains(state, node, passed))]
        if node.app_socket is not None:  # the app is on a socket: Prometheus scrapes it through here
            listeners.append(app_metrics_listener(node))
        mesh_services = [vs for vs in state.istio.virtual_services if _bound_to(vs, None)]
        routes[OUTBOUND_ROUTE] = outbound_route_config(OUTBOUND_ROUTE, hosts, mesh_services, policies,
                                                       domains_for_vs=False)
        routes[INBOUND_ROUTE] = _inbound_route_config(state, node)
    else:
        for gateway, server_port in _gateways_for(state, node):
            local_port = node.gateway_ports.get(server_port)
            if local_port is None:
                continue
            name = gateway_route_name(server_port)
            bound = [vs for vs in state.istio.virtual_services if _bound_to(vs, gateway)]
            routes[name] = outbound_route_config(name, hosts, bound, policies, domains_for_vs=True,
                                                 listen_port=server_port)
            rbac = per_route_rbac(_authorization_policies(state, node))
            if rbac:  # route-configuration level: holds for every route of the gateway, through RDS
                routes[name]["typed_per_filter_config"] = rbac
            listeners.append(gateway_listener(node, server_port, local_port))
    for cluster in clusters:
        cluster["@type"] = CLUSTER_TYPE
    for route in routes.values():
        route["@type"] = ROUTE_CONFIG
    return with_telemetry(ProxyConfig(listeners=listeners, clusters=clusters, routes=routes, endpoints=assignments,
                                      secrets={WORKLOAD_SECRET: state.secrets[node.service_account]}), state, node)


def _authorization_policies(state: MeshState, node: ProxyNode) -> list[Any]:
    return [p for p in state.istio.authorization_policies if applies_to(p, node.labels, node.namespace)]


def _inbound_route_config(state: MeshState, node: ProxyNode) -> dict[str, Any]:
    policies = _authorization_policies(state, node)
    services = state.topology.services_of(state.topology.pod(node.name))
    route: dict[str, Any] = {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {"cluster": cluster_name("inbound", 8080, None, ""), "timeout": "0s"},
        # Istio's inbound route: spans named after the pod's Service (telemetry.TraceOperation)
        "decorator": trace_operation(services[0].fqdn if services else node.name, 8080),
    }
    rbac = per_route_rbac(policies)
    if rbac:
        route["typed_per_filter_config"] = rbac
    return {"name": INBOUND_ROUTE,
            "virtual_hosts": [{"name": "inbound|http|8080", "domains": ["*"], "routes": [route]}]}


__all__ = ["translate_proxy", "known_hosts", "mtls_mode", "fqdn"]
