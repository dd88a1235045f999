"""Envoy route configurations from VirtualServices (Pilot's HTTP route translation)."""

from __future__ import annotations

from typing import Any, Iterable

from harness.errors import ConfigError
from harness.mesh.durations import envoy_duration
from harness.mesh.resources import (
    NAMESPACE, Fault, HTTPMatch, HTTPRoute, Retries, StringMatch, VirtualService, fqdn,
)
from harness.mesh.translate.clusters import cluster_name, parse_cluster_name
from harness.mesh.translate.policy import EffectivePolicy
from harness.mesh.translate.telemetry import BLACKHOLE, route_metadata

FAULT_FILTER = "envoy.filters.http.fault"
HTTP_FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
PREVIOUS_HOSTS = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
}
# Retries move on to the next locality priority once the local one has failed, so a retry can
# reach the failover region instead of re-selecting the only local host.
PREVIOUS_PRIORITIES = {
    "name": "envoy.retry_priorities.previous_priorities",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        "update_frequency": 1,
    },
}
# What Istio retries when a route declares no retries of its own.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


def host_domains(host: str, port: int) -> list[str]:
    """The names a client may use for a host, with and without the port, as Istio lists them."""
    full = fqdn(host)
    names = [full]
    suffix = f".{NAMESPACE}.svc.cluster.local"
    if full.endswith(suffix):
        short = full[: -len(suffix)]
        names += [short, f"{short}.{NAMESPACE}", f"{short}.{NAMESPACE}.svc"]
    return [d for name in names for d in (name, f"{name}:{port}")]


def retry_policy(retries: Retries | None) -> dict[str, Any] | None:
    if retries is None:
        return {"retry_on": DEFAULT_RETRY_ON, "num_retries": 2, "retriable_status_codes": [503],
                "retry_host_predicate": [PREVIOUS_HOSTS], "host_selection_retry_max_attempts": "5",
                "retry_priority": PREVIOUS_PRIORITIES}
    if retries.attempts <= 0:
        return None
    conditions, codes = [], []
    for item in (retries.retry_on or "connect-failure,refused-stream,unavailable,cancelled,5xx").split(","):
        item = item.strip()
        if item.isdigit():
            codes.append(int(item))
        elif item:
            conditions.append(item)
    if codes and "retriable-status-codes" not in conditions:
        conditions.append("retriable-status-codes")
    policy: dict[str, Any] = {
        "retry_on": ",".join(conditions),
        "num_retries": retries.attempts,
        "retry_host_predicate": [PREVIOUS_HOSTS],
        "host_selection_retry_max_attempts": "5",
        "retry_priority": PREVIOUS_PRIORITIES,
    }
    if codes:
        policy["retriable_status_codes"] = codes
    if retries.per_try_timeout_s:
        policy["per_try_timeout"] = envoy_duration(retries.per_try_timeout_s)
    return policy


def _percent(value: float) -> dict[str, Any]:
    return {"numerator": int(round(value * 10_000)), "denominator": "MILLION"}


def fault_config(fault: Fault) -> dict[str, Any]:
    config: dict[str, Any] = {"@type": HTTP_FAULT}
    if fault.delay_s is not None:
        config["delay"] = {"fixed_delay": envoy_duration(fault.delay_s), "percentage": _percent(fault.delay_percent)}
    if fault.abort_status is not None:
        config["abort"] = {"http_status": fault.abort_status, "percentage": _percent(fault.abort_percent)}
    return config


def _string_matcher(match: StringMatch) -> dict[str, Any]:
    if match.kind == "regex":
        return {"safe_regex": {"regex": match.value}}
    return {match.kind: match.value}


def _route_match(match: HTTPMatch | None) -> dict[str, Any]:
    result: dict[str, Any] = {"prefix": "/"}
    if match is None:
        return result
    if match.uri is not None:
        result = {"path" if match.uri.kind == "exact" else match.uri.kind: match.uri.value}
        if match.uri.kind == "regex":
            result = {"safe_regex": {"regex": match.uri.value}}
    headers = [{"name": name, "string_match": _string_matcher(m)} for name, m in match.headers]
    if match.method is not None:
        headers.append({"name": ":method", "string_match": _string_matcher(match.method)})
    if headers:
        result["headers"] = headers
    return result


def _destination_cluster(vs: VirtualService, index: int, host: str, subset: str | None,
                         ports: dict[str, int], policies: dict[str, EffectivePolicy]) -> str:
    if host not in ports:
        raise ConfigError(f"VirtualService {vs.name!r} routes to {host}, which is neither a Service "
                          "nor a ServiceEntry host of the mesh", field=f"spec.http[{index}].route")
    if subset is not None and policies[host].subset(subset) is None:
        raise ConfigError(
            f"VirtualService {vs.name!r} routes to subset {subset!r} of {host}, but no DestinationRule "
            f"for that host defines it (rules: {', '.join(policies[host].rule_names) or 'none'})",
            field=f"spec.http[{index}].route")
    return cluster_name("outbound", ports[host], subset, host)


def _route_action(vs: VirtualService, index: int, http: HTTPRoute, ports: dict[str, int],
                  policies: dict[str, EffectivePolicy]) -> dict[str, Any]:
    names = [_destination_cluster(vs, index, d.host, d.subset, ports, policies) for d in http.destinations]
    action: dict[str, Any]
    if len(names) == 1:
        action = {"cluster": names[0]}
    else:
        action = {"weighted_clusters": {"clusters": [
            {"name": name, "weight": d.weight} for name, d in zip(names, http.destinations)]}}
    action["timeout"] = envoy_duration(http.timeout_s or 0.0)
    # A fault on a route switches that route's retries off in Istio (istio#13705).
    retries = None if http.fault is not None else retry_policy(http.retries)
    if retries is not None:
        action["retry_policy"] = retries
    return action


def trace_operation(host: str, port: int, path: str = "/*") -> dict[str, Any]:
    """The route decorator Istio gives a route: its spans are named `<host>:<port><path>` (istio/istio
    pilot telemetry.TraceOperation for default and inbound routes, route.getRouteOperation otherwise)."""
    return {"operation": f"{host}:{port}{path}"}


def _route_operation(route: dict[str, Any], vs_name: str, port: int) -> dict[str, Any]:
    """getRouteOperation: the path is the match's prefix + "*", its exact path or its regex ("/*"
    without one); one destination cluster names its host and port, several the VirtualService's
    name and the listener's port."""
    match = route["match"]
    path = (match["prefix"] + "*" if "prefix" in match else match.get("path")
            or match.get("safe_regex", {}).get("regex") or "/*")
    parsed = parse_cluster_name(route["route"].get("cluster") or "")
    if parsed is not None and parsed[3]:
        return trace_operation(parsed[3], parsed[1], path)
    return trace_operation(vs_name, port, path)


def virtual_service_routes(vs: VirtualService, ports: dict[str, int],
                           policies: dict[str, EffectivePolicy], port: int = 80) -> list[dict[str, Any]]:
    """One Envoy route per match block (Istio ORs them), in declaration order; `port` is the listener's
    (the spans of a route to several clusters are named after it)."""
    routes = []
    for index, http in enumerate(vs.routes):
        action = _route_action(vs, index, http, ports, policies)
        hosts = {d.host for d in http.destinations}
        metadata = route_metadata(next(iter(hosts)) if len(hosts) == 1 else None)  # telemetry.py
        for j, match in enumerate(http.matches or (None,)):
            route: dict[str, Any] = {
                "name": f"{vs.name}.{http.name or index}.{j}",
                "match": _route_match(match),
                "route": action,
                **metadata,
            }
            route["decorator"] = _route_operation(route, vs.name, port)
            if http.fault is not None:
                route["typed_per_filter_config"] = {FAULT_FILTER: fault_config(http.fault)}
            routes.append(route)
    return routes


def default_route(host: str, port: int) -> dict[str, Any]:
    """The route Istio gives a host that no VirtualService covers."""
    return {
        "name": "default",
        "match": {"prefix": "/"},
        "route": {"cluster": cluster_name("outbound", port, None, host), "timeout": "0s",
                  "retry_policy": retry_policy(None)},
        "decorator": trace_operation(host, port),
        **route_metadata(host),
    }


def outbound_route_config(name: str, hosts: dict[str, int], services: Iterable[VirtualService],
                          policies: dict[str, EffectivePolicy], *, domains_for_vs: bool,
                          listen_port: int = 80) -> dict[str, Any]:
    """Virtual hosts for every known host; VirtualServices replace the default route.

    `hosts` maps each known host (service FQDN or ServiceEntry host) to its port. For a gateway
    (`domains_for_vs`), virtual hosts come only from the VirtualServices bound to it, and `listen_port`
    is its server's port.
    """
    virtual_hosts: dict[str, dict[str, Any]] = {}
    if not domains_for_vs:
        for host, port in hosts.items():
            virtual_hosts[host] = {"name": f"{host}:{port}", "domains": host_domains(host, port),
                                   "routes": [default_route(host, port)]}
    for vs in services:
        first = fqdn(vs.hosts[0], vs.namespace) if vs.hosts and vs.hosts[0] != "*" else ""
        routes = virtual_service_routes(vs, hosts, policies, listen_port if domains_for_vs else hosts.get(first, 80))
        for raw_host in vs.hosts:
            host = fqdn(raw_host, vs.namespace)
            port = hosts.get(host, 80)
            domains = host_domains(raw_host, port) if raw_host != "*" else ["*"]
            if domains_for_vs and raw_host != "*":
                domains = sorted(set(domains) | {raw_host, f"{raw_host}:*"})
            virtual_hosts[host] = {"name": f"{host}:{port}", "domains": domains, "routes": routes}
    config: dict[str, Any] = {
        "name": name,
        "virtual_hosts": list(virtual_hosts.values()),
        "validate_clusters": False,
    }
    if not domains_for_vs:
        # outboundTrafficPolicy REGISTRY_ONLY: hosts outside the registry go nowhere.
        config["virtual_hosts"].append({
            "name": "block_all", "domains": ["*"],
            "routes": [{"name": "block_all", "match": {"prefix": "/"}, **route_metadata(BLACKHOLE),
                        "direct_response": {"status": 502, "body": {"inline_string": "BlackHoleCluster: host not in the mesh registry\n"}}}],
        })
    return config
