"""Typed Istio resources parsed from validated manifests: the translator's input."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError
from harness.mesh.durations import parse_duration
from harness.mesh.supported import check_supported

NAMESPACE = "parallel-ai"
# meshConfig.rootNamespace: PeerAuthentication here is mesh-wide, AuthorizationPolicy applies to every namespace.
ROOT_NAMESPACE = "istio-system"
CLUSTER_DOMAIN = "svc.cluster.local"


@dataclass(frozen=True)
class StringMatch:
    kind: Literal["exact", "prefix", "regex"]
    value: str


@dataclass(frozen=True)
class HTTPMatch:
    headers: tuple[tuple[str, StringMatch], ...] = ()
    uri: StringMatch | None = None
    method: StringMatch | None = None


@dataclass(frozen=True)
class RouteDestination:
    host: str
    subset: str | None
    weight: int


@dataclass(frozen=True)
class Retries:
    attempts: int
    per_try_timeout_s: float | None
    retry_on: str | None


@dataclass(frozen=True)
class Fault:
    delay_s: float | None = None
    delay_percent: float = 100.0
    abort_status: int | None = None
    abort_percent: float = 100.0


@dataclass(frozen=True)
class HTTPRoute:
    name: str | None
    matches: tuple[HTTPMatch, ...]
    destinations: tuple[RouteDestination, ...]
    timeout_s: float | None
    retries: Retries | None
    fault: Fault | None


@dataclass(frozen=True)
class VirtualService:
    name: str
    namespace: str
    hosts: tuple[str, ...]
    gateways: tuple[str, ...]
    routes: tuple[HTTPRoute, ...]


@dataclass(frozen=True)
class ConnectionPool:
    max_connections: int | None = None
    connect_timeout_s: float | None = None
    keepalive_time_s: float | None = None
    keepalive_interval_s: float | None = None
    keepalive_probes: int | None = None
    http1_max_pending_requests: int | None = None
    http2_max_requests: int | None = None
    max_requests_per_connection: int | None = None
    max_retries: int | None = None
    idle_timeout_s: float | None = None


@dataclass(frozen=True)
class OutlierDetection:
    consecutive_5xx: int | None = None
    consecutive_gateway_errors: int | None = None
    interval_s: float = 10.0
    base_ejection_time_s: float = 30.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0


@dataclass(frozen=True)
class TrafficPolicy:
    lb_simple: str | None = None
    locality_enabled: bool | None = None
    failover: tuple[tuple[str, str], ...] = ()
    pool: ConnectionPool = ConnectionPool()
    outlier: OutlierDetection | None = None
    tls_mode: str | None = None


@dataclass(frozen=True)
class Subset:
    name: str
    labels: tuple[tuple[str, str], ...]
    policy: TrafficPolicy | None


@dataclass(frozen=True)
class DestinationRule:
    name: str
    namespace: str
    host: str
    policy: TrafficPolicy | None
    subsets: tuple[Subset, ...]


@dataclass(frozen=True)
class PeerAuthentication:
    name: str
    namespace: str
    selector: tuple[tuple[str, str], ...]
    mode: str  # STRICT, PERMISSIVE, DISABLE, or UNSET (no `mtls`/`mode`: inherit from the parent scope)
    port_modes: tuple[tuple[int, str], ...] = ()  # spec.portLevelMtls: container port -> mode


@dataclass(frozen=True)
class AuthzSource:
    principals: tuple[str, ...] = ()
    not_principals: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    not_namespaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthzOperation:
    methods: tuple[str, ...] = ()
    not_methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    not_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthzRule:
    sources: tuple[AuthzSource, ...]
    operations: tuple[AuthzOperation, ...]


@dataclass(frozen=True)
class AuthorizationPolicy:
    name: str
    namespace: str
    selector: tuple[tuple[str, str], ...]
    action: str
    rules: tuple[AuthzRule, ...]


@dataclass(frozen=True)
class ServiceEntryPort:
    number: int
    name: str
    protocol: str


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    namespace: str
    hosts: tuple[str, ...]
    ports: tuple[ServiceEntryPort, ...]
    location: str
    resolution: str


@dataclass(frozen=True)
class Gateway:
    name: str
    namespace: str
    selector: tuple[tuple[str, str], ...]
    ports: tuple[int, ...]


@dataclass(frozen=True)
class IstioConfig:
    """Every Istio resource the mesh currently has, in declaration order."""

    virtual_services: tuple[VirtualService, ...] = ()
    destination_rules: tuple[DestinationRule, ...] = ()
    peer_authentications: tuple[PeerAuthentication, ...] = ()
    authorization_policies: tuple[AuthorizationPolicy, ...] = ()
    service_entries: tuple[ServiceEntry, ...] = ()
    gateways: tuple[Gateway, ...] = ()
    other: tuple[str, ...] = field(default=())  # "Kind/name" accepted but not translated
    telemetry: tuple[Any, ...] = ()  # telemetry_api.TelemetryResource, in declaration order


ISTIO_KINDS = ("VirtualService", "DestinationRule", "PeerAuthentication", "AuthorizationPolicy",
               "ServiceEntry", "Gateway", "Telemetry")


def fqdn(host: str, namespace: str = NAMESPACE) -> str:
    """Istio's host normalisation: a short name is resolved in the resource's namespace."""
    if "." not in host and host != "*":
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if host.count(".") == 1 and not host.startswith("*"):
        return f"{host}.{CLUSTER_DOMAIN}"
    return host


class _Reader:
    """Converts one document's spec, naming the file and field in every error."""

    def __init__(self, doc: dict[str, Any], file: str | Path | None) -> None:
        self.doc = doc
        self.file = file
        self.kind = doc["kind"]
        self.name = doc["metadata"]["name"]
        self.namespace = doc["metadata"].get("namespace", NAMESPACE)

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.kind} {self.name!r}: {message}", file=self.file, field=path)

    def duration(self, value: Any, path: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(path, str(exc)) from exc

    def opt_duration(self, value: Any, path: str) -> float | None:
        return None if value is None else self.duration(value, path)


def parse_istio(docs: list[tuple[dict[str, Any], str | Path | None]]) -> IstioConfig:
    """Build an IstioConfig from (document, file) pairs; non-Istio kinds are skipped."""
    buckets: dict[str, list[Any]] = {kind: [] for kind in ISTIO_KINDS}
    other: list[str] = []
    for doc, file in docs:
        kind = doc.get("kind")
        if kind not in ISTIO_KINDS:
            continue
        reader = _Reader(doc, file)
        spec = doc.get("spec") or {}
        check_supported(kind, reader.name, spec, file=file)
        parser = _PARSERS.get(kind)
        if parser is None:
            other.append(f"{kind}/{reader.name}")
            continue
        buckets[kind].append(parser(reader, spec))
    if buckets["Telemetry"]:
        from harness.mesh.telemetry_api import check_one_per_namespace

        check_one_per_namespace(buckets["Telemetry"])
    return IstioConfig(
        virtual_services=tuple(buckets["VirtualService"]),
        destination_rules=tuple(buckets["DestinationRule"]),
        peer_authentications=tuple(buckets["PeerAuthentication"]),
        authorization_policies=tuple(buckets["AuthorizationPolicy"]),
        service_entries=tuple(buckets["ServiceEntry"]),
        gateways=tuple(buckets["Gateway"]),
        other=tuple(other),
        telemetry=tuple(buckets["Telemetry"]),
    )


def _string_match(reader: _Reader, value: dict[str, Any], path: str) -> StringMatch:
    if len(value) != 1:
        raise reader.error(path, "expected exactly one of exact, prefix, regex")
    (kind, text), = value.items()
    return StringMatch(kind=kind, value=str(text))


def _percent(spec: dict[str, Any]) -> float:
    if "percentage" in spec:
        return float(spec["percentage"].get("value", 0.0))
    if "percent" in spec:
        return float(spec["percent"])
    return 100.0


def _virtual_service(reader: _Reader, spec: dict[str, Any]) -> VirtualService:
    routes = []
    for i, http in enumerate(spec.get("http") or []):
        path = f"spec.http[{i}]"
        matches = tuple(
            HTTPMatch(
                headers=tuple(
                    (name.lower(), _string_match(reader, m, f"{path}.match[{j}].headers.{name}"))
                    for name, m in (match.get("headers") or {}).items()
                ),
                uri=_string_match(reader, match["uri"], f"{path}.match[{j}].uri") if "uri" in match else None,
                method=_string_match(reader, match["method"], f"{path}.match[{j}].method")
                if "method" in match else None,
            )
            for j, match in enumerate(http.get("match") or [])
        )
        destinations = tuple(
            RouteDestination(
                host=fqdn(d["destination"]["host"], reader.namespace),
                subset=d["destination"].get("subset"),
                weight=int(d.get("weight", 100 if len(http["route"]) == 1 else 0)),
            )
            for d in http.get("route") or []
        )
        if not destinations:
            raise reader.error(f"{path}.route", "expected at least one route destination")
        retries = None
        if "retries" in http:
            r = http["retries"]
            retries = Retries(
                attempts=int(r.get("attempts", 0)),
                per_try_timeout_s=reader.opt_duration(r.get("perTryTimeout"), f"{path}.retries.perTryTimeout"),
                retry_on=r.get("retryOn"),
            )
        fault = None
        if "fault" in http:
            f = http["fault"]
            delay, abort = f.get("delay"), f.get("abort")
            fault = Fault(
                delay_s=reader.duration(delay["fixedDelay"], f"{path}.fault.delay.fixedDelay") if delay else None,
                delay_percent=_percent(delay) if delay else 100.0,
                abort_status=int(abort["httpStatus"]) if abort else None,
                abort_percent=_percent(abort) if abort else 100.0,
            )
        routes.append(
            HTTPRoute(
                name=http.get("name"),
                matches=matches,
                destinations=destinations,
                timeout_s=reader.opt_duration(http.get("timeout"), f"{path}.timeout"),
                retries=retries,
                fault=fault,
            )
        )
    return VirtualService(
        name=reader.name,
        namespace=reader.namespace,
        hosts=tuple(spec.get("hosts") or ()),
        gateways=tuple(spec.get("gateways") or ("mesh",)),
        routes=tuple(routes),
    )


def _traffic_policy(reader: _Reader, spec: dict[str, Any] | None, path: str) -> TrafficPolicy | None:
    if spec is None:
        return None
    lb = spec.get("loadBalancer") or {}
    locality = lb.get("localityLbSetting") or {}
    tcp = (spec.get("connectionPool") or {}).get("tcp") or {}
    http = (spec.get("connectionPool") or {}).get("http") or {}
    keepalive = tcp.get("tcpKeepalive") or {}
    pool_path = f"{path}.connectionPool"
    pool = ConnectionPool(
        max_connections=tcp.get("maxConnections"),
        connect_timeout_s=reader.opt_duration(tcp.get("connectTimeout"), f"{pool_path}.tcp.connectTimeout"),
        keepalive_time_s=reader.opt_duration(keepalive.get("time"), f"{pool_path}.tcp.tcpKeepalive.time"),
        keepalive_interval_s=reader.opt_duration(keepalive.get("interval"),
                                                 f"{pool_path}.tcp.tcpKeepalive.interval"),
        keepalive_probes=keepalive.get("probes"),
        http1_max_pending_requests=http.get("http1MaxPendingRequests"),
        http2_max_requests=http.get("http2MaxRequests"),
        max_requests_per_connection=http.get("maxRequestsPerConnection"),
        max_retries=http.get("maxRetries"),
        idle_timeout_s=reader.opt_duration(http.get("idleTimeout"), f"{pool_path}.http.idleTimeout"),
    )
    outlier = None
    if "outlierDetection" in spec:
        o = spec["outlierDetection"]
        op = f"{path}.outlierDetection"
        outlier = OutlierDetection(
            consecutive_5xx=o.get("consecutive5xxErrors"),
            consecutive_gateway_errors=o.get("consecutiveGatewayErrors"),
            interval_s=reader.duration(o.get("interval", "10s"), f"{op}.interval"),
            base_ejection_time_s=reader.duration(o.get("baseEjectionTime", "30s"), f"{op}.baseEjectionTime"),
            max_ejection_percent=int(o.get("maxEjectionPercent", 10)),
            min_health_percent=int(o.get("minHealthPercent", 0)),
        )
    return TrafficPolicy(
        lb_simple=lb.get("simple"),
        locality_enabled=locality.get("enabled"),
        failover=tuple((f["from"], f["to"]) for f in locality.get("failover") or ()),
        pool=pool,
        outlier=outlier,
        tls_mode=(spec.get("tls") or {}).get("mode"),
    )


def _destination_rule(reader: _Reader, spec: dict[str, Any]) -> DestinationRule:
    return DestinationRule(
        name=reader.name,
        namespace=reader.namespace,
        host=spec["host"],
        policy=_traffic_policy(reader, spec.get("trafficPolicy"), "spec.trafficPolicy"),
        subsets=tuple(
            Subset(
                name=s["name"],
                labels=tuple(sorted((s.get("labels") or {}).items())),
                policy=_traffic_policy(reader, s.get("trafficPolicy"), f"spec.subsets[{i}].trafficPolicy"),
            )
            for i, s in enumerate(spec.get("subsets") or [])
        ),
    )


def _selector(spec: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(((spec.get("selector") or {}).get("matchLabels") or {}).items()))


_MTLS_MODES = ("STRICT", "PERMISSIVE", "DISABLE", "UNSET")
# Istio's pkg/config/security: a template segment is {*} or {**}; any other segment must be a literal.
_MATCH_ONE, _MATCH_ANY = "{*}", "{**}"
_VALID_LITERAL = re.compile(r"^[a-zA-Z0-9-._~%!$&'()+,;:@=]+$")


def _mtls_mode(reader: _Reader, mtls: Any, path: str) -> str:
    """UNSET when `mtls` or its `mode` is absent: the scope inherits its parent's mode."""
    mode = (mtls or {}).get("mode", "UNSET")
    if mode not in _MTLS_MODES:
        raise reader.error(f"{path}.mode", f"expected one of {', '.join(_MTLS_MODES)}, got {mode!r}")
    return str(mode)


def _peer_authentication(reader: _Reader, spec: dict[str, Any]) -> PeerAuthentication:
    selector = _selector(spec)
    ports = spec.get("portLevelMtls") or {}
    if ports and not selector:
        # Istio's validation: "mesh/namespace policy cannot have port level mTLS"
        raise reader.error("spec.portLevelMtls", "port-level mTLS needs a workload selector "
                           "(spec.selector.matchLabels), as Istio requires")
    if selector and reader.namespace == ROOT_NAMESPACE:
        raise reader.error("spec.selector", f"a workload policy in the root namespace {ROOT_NAMESPACE} selects "
                           "only workloads of that namespace, and the mesh has none there; put it in the "
                           "workload's namespace or drop the selector for a mesh-wide policy")
    port_modes = []
    for key, mtls in ports.items():
        try:
            port = int(key)
        except (TypeError, ValueError):
            port = 0
        if not 0 < port < 65536:
            raise reader.error(f"spec.portLevelMtls.{key}", f"expected a port number, got {key!r}")
        port_modes.append((port, _mtls_mode(reader, mtls, f"spec.portLevelMtls.{key}")))
    return PeerAuthentication(reader.name, reader.namespace, selector,
                              _mtls_mode(reader, spec.get("mtls"), "spec.mtls"), tuple(sorted(port_modes)))


def _check_paths(reader: _Reader, paths: tuple[str, ...], path: str) -> None:
    """Istio's CheckValidPathTemplate: {*} and {**} are whole segments, {**} the last operator."""
    for value in paths:
        if value == "":
            raise reader.error(path, "empty value not allowed")
        templated = _MATCH_ONE in value or _MATCH_ANY in value
        seen_any = False
        for segment in value.strip("/").split("/"):
            if segment in (_MATCH_ONE, _MATCH_ANY):
                if seen_any:
                    raise reader.error(path, f"invalid path {value!r}: {{**}} must be the last operator")
                seen_any = segment == _MATCH_ANY
                continue
            if "{" in segment or "}" in segment:
                raise reader.error(path, f"invalid path {value!r}: '{{' or '}}' beyond a supported path "
                                   "template ({*} or {**} as a whole segment)")
            if templated and not _VALID_LITERAL.match(segment):
                raise reader.error(path, f"invalid path {value!r}: segment {segment!r} is not a valid "
                                   "literal (RFC 3986 pchar)")


def _authorization_policy(reader: _Reader, spec: dict[str, Any]) -> AuthorizationPolicy:
    action = spec.get("action", "ALLOW")
    if action not in ("ALLOW", "DENY"):
        raise reader.error("spec.action", f"the local platform implements ALLOW and DENY, got {action!r}")
    rules = []
    for i, rule in enumerate(spec.get("rules") or []):
        operations = []
        for j, to in enumerate(rule.get("to") or []):
            operation = AuthzOperation(*(tuple(to["operation"].get(k) or ()) for k in
                                         ("methods", "notMethods", "paths", "notPaths")))
            for key, values in (("paths", operation.paths), ("notPaths", operation.not_paths)):
                _check_paths(reader, values, f"spec.rules[{i}].to[{j}].operation.{key}")
            operations.append(operation)
        sources = tuple(
            AuthzSource(*(tuple(f["source"].get(k) or ()) for k in
                          ("principals", "notPrincipals", "namespaces", "notNamespaces")))
            for f in rule.get("from") or []
        )
        rules.append(AuthzRule(sources=sources, operations=tuple(operations)))
    return AuthorizationPolicy(reader.name, reader.namespace, _selector(spec), action, tuple(rules))


def _service_entry(reader: _Reader, spec: dict[str, Any]) -> ServiceEntry:
    return ServiceEntry(
        name=reader.name,
        namespace=reader.namespace,
        hosts=tuple(spec.get("hosts") or ()),
        ports=tuple(ServiceEntryPort(int(p["number"]), p.get("name", ""), p.get("protocol", "TCP"))
                    for p in spec.get("ports") or []),
        location=spec.get("location", "MESH_EXTERNAL"),
        resolution=spec.get("resolution", "NONE"),
    )


def _gateway(reader: _Reader, spec: dict[str, Any]) -> Gateway:
    return Gateway(
        name=reader.name,
        namespace=reader.namespace,
        selector=tuple(sorted((spec.get("selector") or {}).items())),
        ports=tuple(int(s["port"]["number"]) for s in spec.get("servers") or []),
    )


def _telemetry(reader: _Reader, spec: dict[str, Any]) -> Any:
    from harness.mesh.telemetry_api import check_telemetry, check_translatable  # cel-python: only when needed

    resource = check_telemetry(reader.doc, file=reader.file)
    check_translatable(resource)
    return resource


_PARSERS = {
    "Telemetry": _telemetry,
    "VirtualService": _virtual_service,
    "DestinationRule": _destination_rule,
    "PeerAuthentication": _peer_authentication,
    "AuthorizationPolicy": _authorization_policy,
    "ServiceEntry": _service_entry,
    "Gateway": _gateway,
}
