"""Istio's standard metrics from stock Envoy: every standard label, both reporters, Telemetry honoured.

Istio's stats plugin (istio/proxy `istio_stats.cc`) counts and times every request a proxy answers,
local replies included, with 25 standard tags. Envoy 1.40's `envoy.access_loggers.stats` does the same
from an access log (which runs for every request, injected aborts, no healthy upstream, RBAC denials
and blackholed hosts included): a counter and histograms tagged with substitution formats. On
/stats/prometheus they are `envoy_istio_<metric>`; the recording rules
(platforms/local/prometheus/recording-rules.yaml) rename them to `istio_<metric>` and write "unknown"
where a value is missing, as the plugin does.

Where each label comes from, as in istio_stats.cc:
- the reporting proxy's own side (source_* for reporter="source", destination_* for "destination"):
  constants of the proxy (its Deployment, namespace, labels, SPIFFE id, cluster "Kubernetes"), and on
  "destination" its own Service. The proxy does not tag each request with them: Prometheus fills them
  when it first scrapes a series, from the proxy's target label `mesh_self` (SELF_LABEL), as it fills
  request_protocol "http" and a connection_security_policy of "unknown";
- the other side on reporter="source": the upstream endpoint's `istio` host metadata (workload, app,
  version, canonical service/revision, cluster; Istio's endpoint metadata), the upstream's certificate
  (destination_principal) and the cluster's `istio.services` metadata (destination_service*, as Pilot
  writes it); the `block_all` route of REGISTRY_ONLY gives "BlackHoleCluster";
- the other side on reporter="destination": the peer metadata the caller's sidecar sends in its
  `x-mesh-peer` request header (Istio's metadata exchange does the same with its x-envoy-peer-metadata
  header), and the peer's certificate (source_principal). The receiving sidecar trusts the header only
  from an mTLS peer: an RBAC filter denies a request whose header is not the metadata of a workload
  that runs as the SPIFFE id in the peer's certificate (checked on the value the tags read, its first,
  which set_filter_state has claimed); then set_filter_state copies the checked value into filter state
  `istio.peer`, which the tags read. The inbound route configuration removes the header before the
  app, on every chain; on a plaintext chain it is not read, so source_* is "unknown".

Telemetry `metrics` overrides (harness/mesh/telemetry_api.py) apply per proxy and reporter: a disabled
metric is not emitted, a REMOVE'd tag is emitted as REMOVED (the rules drop the label), an UPSERT sets
the tag from the CEL value translated by harness/mesh/cel.py. A tag the user adds (not one of Istio's
labels) whose value is missing reads "unknown", as istio_stats.cc writes for a CEL tag that evaluates
to nothing. Envoy's stats logger leaves such a value empty (its tag formatters omit empty values) and
Prometheus drops empty labels, while the scrape's relabeling, fixed when Prometheus starts, cannot
know the names of tags a Telemetry applied later adds. So each added tag is emitted as
`mesh_user_tag_<i>` = "<tag>=<value>" (never empty: a tag name is a label name, without "="), and the
relabeling (platforms/local/recording_rules.py) turns it back into `<tag>`, "unknown" when the value
part is empty.

The stats extension is marked work-in-progress upstream; here every peer is a local process the harness
started, which is the trust model it asks for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Iterable, Literal

from harness.errors import ConfigError
from harness.mesh import cel
from harness.mesh.telemetry_api import MetricPlan, TelemetryResource, metric_plan
from harness.mesh.resources import NAMESPACE
from harness.mesh.topology import GATEWAY_LABELS, GATEWAY_NAME, GATEWAY_SERVICE_ACCOUNT, Pod, spiffe_id
from harness.mesh.translate import tracing
from harness.mesh.translate.model import CLUSTER_TYPE, MeshState, ProxyConfig, ProxyNode

STATS_LOGGER = "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config"
HEADER_TO_METADATA = "type.googleapis.com/envoy.extensions.filters.http.header_to_metadata.v3.Config"
SET_FILTER_STATE = "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config"
RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
METADATA_NAMESPACE = "istio"
BLACKHOLE = "BlackHoleCluster"  # Istio's destination_service for REGISTRY_ONLY denials
CLUSTER_ID = "Kubernetes"  # Istio's default CLUSTER_ID
REMOVED = "REMOVED"  # a tag a Telemetry REMOVE'd: the recording rules drop the label
PEER_HEADER = "x-mesh-peer"
# The peer metadata travels as one value, these fields joined by "|" (none can contain it); the
# recording-rules module splits the `<side>_peer` tag into Istio's labels at scrape time.
# The identity is not among them: the certificate gives it (source_principal), and the RBAC filter checks
# the header against it.
PEER_FIELDS = ("workload", "namespace", "app", "version", "canonical_service", "canonical_revision", "cluster")
PEER_KEY = "peer"
# Where the receiving sidecar keeps the checked header for the tags: filter state (a string object),
# which costs less per request than header_to_metadata's dynamic metadata (bench/telemetry_tags.py).
PEER_STATE_KEY = "istio.peer"
PEER_CLAIM_KEY = "istio.peer_claim"  # the header's value before the RBAC filter has checked it
# The reporting proxy's own side is constant per proxy: the proxy does not tag each request with it. The
# scrape's relabeling fills those labels from the proxy's target label SELF_LABEL, these fields joined
# by "|" (own side of either reporter first; the destination service's three only for "destination"),
# which costs nothing per request: 8 of the 19 tags were fixed text, about 8 us of a pass here.
SELF_LABEL = "mesh_self"
SELF_FIELDS = ("workload", "workload_namespace", "principal", "app", "version", "canonical_service",
               "canonical_revision", "cluster", "service", "service_name", "service_namespace")
OWN_SIDE_FIELDS = 8  # the first ones: the own side of either reporter
# An UPSERT of one of Istio's labels is emitted with this mark first, so that a value that turns out
# empty is not taken for a label left to the relabeling: it reads "unknown", as istio_stats.cc writes.
OVERRIDE_MARK = "="
PEER_RBAC_FILTER = "istio.peer_metadata_authn"
PEER_STATE_FILTER = "istio.peer_metadata"
PEER_CLAIM_FILTER = "istio.peer_metadata_claim"
PEER_FIELDS_FILTER = "istio.peer_metadata_fields"

# A tag a Telemetry adds travels as USER_TAG<i> = "<tag>=<value>" (recording_rules.USER_TAG, MAX_USER_TAGS
# there too: the relabeling has one rule pair per slot).
USER_TAG = "mesh_user_tag_"
MAX_USER_TAGS = 8
# Istio's standard labels (istio_stats.cc) plus response_code_details: an override of one of these sets it
# in place; any other tag is one the user adds.
ISTIO_LABELS = frozenset(
    {"reporter", "request_protocol", "response_code", "response_flags", "grpc_response_status",
     "connection_security_policy", "destination_service", "destination_service_name",
     "destination_service_namespace", "response_code_details"}
    | {f"{side}_{field}" for side in ("source", "destination")
       for field in ("workload", "workload_namespace", "principal", "app", "version", "canonical_service",
                     "canonical_revision", "cluster")})

Reporter = Literal["source", "destination"]
HTTP_METRICS = ("requests_total", "request_duration_milliseconds", "request_bytes", "response_bytes")
_VALUES = {"request_duration_milliseconds": ("Milliseconds", "%DURATION%"),
           "request_bytes": ("Bytes", "%DOWNSTREAM_WIRE_BYTES_RECEIVED%"),
           "response_bytes": ("Bytes", "%DOWNSTREAM_WIRE_BYTES_SENT%")}


def request_stats(reporter: Reporter) -> dict[str, Any]:
    """A placeholder stats logger; `with_telemetry` replaces it with the proxy's own tags."""
    return {"name": "envoy.access_loggers.stats",
            "typed_config": {"@type": STATS_LOGGER, "stats_scope": {"prefix": METADATA_NAMESPACE},
                             "counters": [{"stat": {"name": "requests_total",
                                                    "tags": [{"name": "reporter", "value_format": reporter}]},
                                           "value_fixed": 1}]}}


def route_metadata(host: str | None) -> dict[str, Any]:
    """Route metadata for telemetry: only the `block_all` route names BlackHoleCluster."""
    if host != BLACKHOLE:
        return {}
    return {"metadata": {"filter_metadata": {METADATA_NAMESPACE: {"blackhole": BLACKHOLE}}}}


# -- who a proxy is ----------------------------------------------------------------------------------

def workload_name(node: ProxyNode) -> str:
    """The Deployment (pods are `<deployment>-<index>`); the gateway is Istio's istio-ingressgateway."""
    return workload_name_of(node.name)


def workload_name_of(pod_name: str) -> str:
    stem, _, index = pod_name.rpartition("-")
    return stem if stem and index.isdigit() else pod_name


def _identity(labels: dict[str, str], workload: str) -> dict[str, str]:
    app = labels.get("app", "")
    return {"app": app or "unknown", "version": labels.get("version", "unknown"),
            "canonical_service": labels.get("service.istio.io/canonical-name", app or workload),
            "canonical_revision": labels.get("service.istio.io/canonical-revision", labels.get("version", "latest"))}


def _metadata(workload: str, namespace: str, labels: Iterable[tuple[str, str]], identity: str) -> dict[str, str]:
    meta = {"workload": workload, "namespace": namespace, **_identity(dict(labels), workload),
            "cluster": CLUSTER_ID, "identity": identity}
    return {**meta, PEER_KEY: peer_value(meta)}


def pod_metadata(pod: Pod) -> dict[str, str]:
    """A pod's workload metadata, as Istio's endpoint metadata and peer metadata carry it."""
    return _metadata(pod.deployment, pod.namespace, pod.labels, pod.spiffe_id)


def gateway_metadata() -> dict[str, str]:
    """The ingress gateway's workload metadata (Istio's istio-ingressgateway)."""
    return _metadata(workload_name_of(GATEWAY_NAME), NAMESPACE, GATEWAY_LABELS,
                     spiffe_id(NAMESPACE, GATEWAY_SERVICE_ACCOUNT))


def peer_value(meta: dict[str, str]) -> str:
    """The joined peer metadata (PEER_FIELDS order): what a caller sends and the `<side>_peer` tag carries."""
    return "|".join(meta[field] for field in PEER_FIELDS)


def node_metadata(node: ProxyNode) -> dict[str, str]:
    return _metadata(workload_name(node), node.namespace, node.labels, spiffe_id(node.namespace, node.service_account))


def peer_claims(state: MeshState) -> dict[str, set[str]]:
    """SPIFFE id -> the peer metadata a proxy running as it sends: its workloads' (the gateway's too)."""
    claims: dict[str, set[str]] = {}
    for meta in [pod_metadata(pod) for pod in state.topology.pods] + [gateway_metadata()]:
        claims.setdefault(meta["identity"], set()).add(meta[PEER_KEY])
    return claims


def envoy_node(node: ProxyNode) -> dict[str, Any]:
    """The proxy's Node as Istio's CEL sees it (`node.metadata['LABELS']['app']`, ...)."""
    meta = node_metadata(node)
    return {"id": node.name, "cluster": f"{meta['workload']}.{node.namespace}",
            "metadata": {"NAME": node.name, "NAMESPACE": node.namespace, "WORKLOAD_NAME": meta["workload"],
                         "CLUSTER_ID": CLUSTER_ID, "LABELS": dict(node.labels)}}


def _node_service(state: MeshState, node: ProxyNode) -> tuple[str, str, str]:
    """(host, name, namespace) of the Service that selects this sidecar's pod."""
    labels = set(node.labels)
    for service in state.topology.services:
        if set(service.selector) <= labels and service.namespace == node.namespace:
            return service.fqdn, service.name, service.namespace
    return "unknown", "unknown", node.namespace


# -- the tags -----------------------------------------------------------------------------------------

def _escape(value: str) -> str:
    return value.replace("%", "%%")


_SELF_META = {"workload_namespace": "namespace", "principal": "identity"}  # SELF_FIELDS -> node_metadata keys


def self_value(state: MeshState, node: ProxyNode) -> str:
    """The proxy's SELF_LABEL target label: its own side's values in SELF_FIELDS order."""
    meta = node_metadata(node)
    own = [meta[_SELF_META.get(field, field)] for field in SELF_FIELDS[:OWN_SIDE_FIELDS]]
    service = _node_service(state, node) if node.kind == "sidecar" else ("unknown",) * 3
    return "|".join((*own, *service))


def standard_tags(state: MeshState, node: ProxyNode, reporter: Reporter, *, mtls: bool | None) -> dict[str, str]:
    """Tag name -> substitution format for Istio's standard tags the proxy emits per request.

    Not among them: the own side's constants and, on "destination", the destination service (the
    scrape fills them from SELF_LABEL), request_protocol "http" and a connection_security_policy of
    "unknown" (the scrape writes both); grpc_response_status is HTTP-only and empty here, as in Istio."""
    if reporter == "source":
        other = "destination"
        peer = f"%METADATA(UPSTREAM_HOST:{METADATA_NAMESPACE}:{PEER_KEY})%"
        principal = "%UPSTREAM_PEER_URI_SAN%"
        blackhole = f"%METADATA(ROUTE:{METADATA_NAMESPACE}:blackhole)%"
        service = {"destination_service": f"%CLUSTER_METADATA({METADATA_NAMESPACE}:host)%{blackhole}",
                   "destination_service_name": f"%CLUSTER_METADATA({METADATA_NAMESPACE}:name)%{blackhole}",
                   "destination_service_namespace": f"%CLUSTER_METADATA({METADATA_NAMESPACE}:namespace)%"}
        security: dict[str, str] = {}  # Istio's "unknown" for a client: the scrape writes it
    else:
        other = "source"
        peer = f"%FILTER_STATE({PEER_STATE_KEY}:PLAIN)%"
        principal = "%DOWNSTREAM_PEER_URI_SAN%"
        service = {}  # the proxy's own Service: SELF_LABEL
        security = {"connection_security_policy": "mutual_tls" if mtls else "none"}
    tags = {"reporter": reporter}
    # The other side's workload, namespace, app, version, canonical service/revision and cluster: one
    # joined value, split into those labels when Prometheus scrapes it (cheaper per request).
    tags.update({f"{other}_principal": principal, f"{other}_{PEER_KEY}": peer})
    tags.update(service)
    tags["response_flags"] = "%RESPONSE_FLAGS%"
    tags.update(security)
    tags["response_code"] = "%RESPONSE_CODE%"
    return tags


def _ordered(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value_format": value} for name, value in tags.items()]


def overridden_tags(plan: MetricPlan, metric: str, base: dict[str, str],
                    value_of: Callable[[str], str]) -> dict[str, str]:
    """One metric's tags: the proxy's own, then the Telemetry's REMOVEs and UPSERTs (`value_of` turns a
    CEL value into the logger's format). A tag that is not one of Istio's labels travels as
    `<USER_TAG><i>` = "<tag>=<value>", which the scrape's relabeling turns back ("unknown" when empty)."""
    tags = dict(base)
    for tag in plan.removed.get(metric, ()):
        tags[tag] = REMOVED
    added = 0
    for tag, override in plan.upserts.get(metric, {}).items():
        assert override.value is not None
        value = value_of(override.value)
        if tag in ISTIO_LABELS:
            tags[tag] = OVERRIDE_MARK + value
            continue
        if added == MAX_USER_TAGS:
            raise ConfigError(f"the local mesh carries at most {MAX_USER_TAGS} added tags per metric; "
                              f"{tag!r} would be the {MAX_USER_TAGS + 1}th on {metric}", field=override.field)
        tags[f"{USER_TAG}{added}"] = f"{tag}={value}"
        added += 1
    return tags


def _inbound_cluster_known(state: MeshState, node: ProxyNode, value: str) -> str:
    """A sidecar's every inbound request goes to its inbound cluster (the inbound route configuration has
    the one route), whose `istio` metadata is the sidecar's own Service: written as text here rather than
    looked up per request (the seed's destination_service override reads it on both reporters)."""
    host, name, namespace = _node_service(state, node)
    for key, known in (("host", host), ("name", name), ("namespace", namespace)):
        value = value.replace(f"%CLUSTER_METADATA({METADATA_NAMESPACE}:{key})%", _escape(known))
    return value


def request_stats_for(state: MeshState, node: ProxyNode, reporter: Reporter, *, mtls: bool | None,
                      telemetry: Iterable[TelemetryResource]) -> dict[str, Any]:
    """The stats access logger of one HCM: Istio's HTTP metrics with this proxy's tags and overrides."""
    plan = metric_plan(telemetry, reporter, node.namespace, node.labels)
    base = standard_tags(state, node, reporter, mtls=mtls)

    def value_of(text: str) -> str:
        value = cel.to_envoy_format(text, reporter=reporter, node=envoy_node(node))
        return _inbound_cluster_known(state, node, value) if reporter == "destination" else value

    counters, histograms = [], []
    for metric in HTTP_METRICS:
        if metric in plan.disabled:
            continue
        tags = overridden_tags(plan, metric, base, value_of)
        if metric == "requests_total":
            if reporter == "destination":  # names RBAC denials (the rules keep only those)
                tags["response_code_details"] = "%RESPONSE_CODE_DETAILS%"
            counters.append({"stat": {"name": metric, "tags": _ordered(tags)}, "value_fixed": 1})
        else:
            unit, value = _VALUES[metric]
            histograms.append({"stat": {"name": metric, "tags": _ordered(tags)}, "unit": unit, "value_format": value})
    config: dict[str, Any] = {"@type": STATS_LOGGER, "stats_scope": {"prefix": METADATA_NAMESPACE}}
    if counters:
        config["counters"] = counters
    if histograms:
        config["histograms"] = histograms
    return {"name": "envoy.access_loggers.stats", "typed_config": config}


# -- the peer metadata exchange ------------------------------------------------------------------------

def peer_headers(node: ProxyNode) -> list[dict[str, Any]]:
    """The request header a caller's sidecar (or the gateway) sets towards mesh services: who is calling."""
    return [{"header": {"key": PEER_HEADER, "value": _escape(node_metadata(node)[PEER_KEY])},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]


def _state_from(key: str, source: str) -> dict[str, Any]:
    """A set_filter_state entry: `key` (a string object, read by `%FILTER_STATE(key:PLAIN)%`) from the
    format `source`; nothing when that is empty."""
    return {"object_key": key, "factory_key": "envoy.string",
            "format_string": {"text_format_source": {"inline_string": source}, "omit_empty_values": True},
            "skip_if_empty": True}


def peer_metadata_filters(claims: dict[str, set[str]], fields: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The mTLS chain's peer-metadata filters, in order:
    - the caller's x-mesh-peer into filter state PEER_CLAIM_KEY (its first value, as every reader here
      takes it);
    - peer_authn_filter: 403 unless that value is the metadata of a workload running as the certificate's
      identity (`claims`, from peer_claims). It checks the value the tags will read, not the header: Envoy's
      RBAC matches each value of a repeated header on its own, so a made-up first value could pass beside
      an honest second one;
    - the checked value into PEER_STATE_KEY, which the `source_peer` tag reads, so the tags of a refused
      request never carry a claimed value;
    - the single fields a Telemetry override reads (`downstream_peer.app`) into dynamic metadata
      `istio.peer`, each its own key.
    None removes the header: the inbound route configuration does (peer_header_removal), on every chain."""
    filters = [
        {"name": PEER_CLAIM_FILTER, "typed_config": {"@type": SET_FILTER_STATE, "on_request_headers": [
            _state_from(PEER_CLAIM_KEY, f"%REQ({PEER_HEADER})%")]}},
        peer_authn_filter(claims),
        {"name": PEER_STATE_FILTER, "typed_config": {"@type": SET_FILTER_STATE, "on_request_headers": [
            _state_from(PEER_STATE_KEY, f"%FILTER_STATE({PEER_CLAIM_KEY}:PLAIN)%")]}},
    ]
    rules: list[dict[str, Any]] = []
    for field in sorted(set(fields)):
        index = PEER_FIELDS.index(field)
        rules.append({"header": PEER_HEADER, "on_header_present": {
            "metadata_namespace": cel.PEER_METADATA_NAMESPACE, "key": field, "type": "STRING",
            "regex_value_rewrite": {"pattern": {"regex": "^" + r"[^|]*\|" * index + r"([^|]*).*$"},
                                    "substitution": "\\1"}}})
    if rules:
        filters.append({"name": PEER_FIELDS_FILTER,
                        "typed_config": {"@type": HEADER_TO_METADATA, "request_rules": rules}})
    return filters


def peer_authn_filter(claims: dict[str, set[str]]) -> dict[str, Any]:
    """Deny a request that carries x-mesh-peer unless its claimed value (filter state PEER_CLAIM_KEY) is,
    whole, the metadata of a workload that runs as the mTLS peer's SPIFFE id: no field can be made up."""
    matching = [{"and_ids": {"ids": [
        {"authenticated": {"principal_name": {"exact": identity}}},
        {"or_ids": {"ids": [{"filter_state": {"key": PEER_CLAIM_KEY, "string_match": {"exact": value}}}
                            for value in sorted(values)]}},
    ]}} for identity, values in sorted(claims.items())]
    spoofed = {"and_ids": {"ids": [{"header": {"name": PEER_HEADER, "present_match": True}},
                                   {"not_id": {"or_ids": {"ids": matching}}} if matching else {"any": True}]}}
    return {"name": PEER_RBAC_FILTER, "typed_config": {
        "@type": RBAC, "rules_stat_prefix": "peer_metadata_",
        "rules": {"action": "DENY", "policies": {"peer-metadata-not-from-peer": {
            "permissions": [{"any": True}], "principals": [spoofed]}}}}}


def peer_header_removal(route_config: dict[str, Any]) -> None:
    """The inbound route configuration removes x-mesh-peer before the app (after the filters read it)."""
    route_config["request_headers_to_remove"] = [*route_config.get("request_headers_to_remove", []), PEER_HEADER]


# -- applying it to one proxy's configuration ------------------------------------------------------------


def _mesh_cluster(name: str) -> bool:
    return name.startswith("outbound|") and name.endswith(".svc.cluster.local")


def _route_clusters(route: dict[str, Any]) -> list[str]:
    action = route.get("route") or {}
    if "cluster" in action:
        return [action["cluster"]]
    return [c["name"] for c in (action.get("weighted_clusters") or {}).get("clusters", [])]


def cluster_metadata(state: MeshState, cluster_name: str) -> dict[str, Any] | None:
    """Pilot's `istio` cluster metadata (`services: [{host, name, namespace}]`), its keys also flat."""
    parts = cluster_name.split("|")
    if len(parts) != 4:
        return None
    host = parts[3]
    try:
        service = state.topology.service(host)
        entry = {"host": service.fqdn, "name": service.name, "namespace": service.namespace}
    except KeyError:
        namespace = next((se.namespace for se in state.istio.service_entries if host in se.hosts), None)
        if namespace is None:
            return None
        entry = {"host": host, "name": host, "namespace": namespace}
    return {"services": [entry], **entry}


def _peer_fields_read(access_log: list[dict[str, Any]]) -> set[str]:
    """The single peer fields the stats tags read from dynamic metadata (overrides of downstream_peer.*)."""
    marker = f"%DYNAMIC_METADATA({cel.PEER_METADATA_NAMESPACE}:"
    text = json.dumps(access_log)
    return {part.split(")", 1)[0] for part in text.split(marker)[1:]}


def _hcms(listener: dict[str, Any]) -> Iterable[tuple[dict[str, Any], dict[str, Any]]]:
    for chain in listener.get("filter_chains", []):
        for network_filter in chain.get("filters", []):
            if network_filter.get("name") == "envoy.filters.network.http_connection_manager":
                yield chain, network_filter["typed_config"]


def with_telemetry(config: ProxyConfig, state: MeshState, node: ProxyNode) -> ProxyConfig:
    """Give one proxy's resources Istio's telemetry: tags, peer metadata, cluster and endpoint metadata."""
    telemetry = state.istio.telemetry
    claims = peer_claims(state)
    traces = tracing.proxy_tracing(state, node)
    collector = state.trace_collector
    if traces is not None and collector is not None:  # proxy_tracing refuses a plan without a collector
        config.clusters.append({**tracing.collector_cluster(collector), "@type": CLUSTER_TYPE})
    for listener in config.listeners:
        inbound = listener.get("name") == "virtualInbound"
        if traces is not None and listener.get("name") != "app_metrics":
            # as Pilot sets it: spans are "ingress"/SERVER on virtualInbound, "egress"/CLIENT elsewhere
            listener.setdefault("traffic_direction", "INBOUND" if inbound else "OUTBOUND")
        for chain, hcm in _hcms(listener):
            if traces is not None and collector is not None and listener.get("name") != "app_metrics":
                hcm["tracing"] = tracing.hcm_tracing(traces, node, collector)  # not on Prometheus' scrapes
            mtls = chain.get("name") == "inbound-mtls" if inbound else None
            reporter: Reporter = "destination" if inbound else "source"
            hcm["access_log"] = [request_stats_for(state, node, reporter, mtls=mtls, telemetry=telemetry)
                                 if entry.get("typed_config", {}).get("@type") == STATS_LOGGER else entry
                                 for entry in hcm.get("access_log", [])]
            if inbound and mtls:
                fields = _peer_fields_read(hcm["access_log"])
                hcm["http_filters"] = peer_metadata_filters(claims, fields) + hcm["http_filters"]
    headers = peer_headers(node)
    for name, route_config in config.routes.items():
        if name.startswith("inbound"):
            peer_header_removal(route_config)
            continue
        for vhost in route_config.get("virtual_hosts", []):
            for route in vhost.get("routes", []):
                clusters = _route_clusters(route)
                if clusters and all(_mesh_cluster(c) for c in clusters):
                    route["request_headers_to_add"] = route.get("request_headers_to_add", []) + headers
    for cluster in config.clusters:
        if cluster["name"].startswith("inbound|"):
            host, service_name, namespace = _node_service(state, node)
            meta: dict[str, Any] | None = {"services": [{"host": host, "name": service_name, "namespace": namespace}],
                                           "host": host, "name": service_name, "namespace": namespace}
        else:
            meta = cluster_metadata(state, cluster["name"])
        if meta is not None:
            cluster.setdefault("metadata", {}).setdefault("filter_metadata", {})[METADATA_NAMESPACE] = meta
    pods = {pod.name: pod for pod in state.topology.pods}
    for assignment in config.endpoints.values():
        for locality in assignment.get("endpoints", []):
            for lb_endpoint in locality.get("lb_endpoints", []):
                pod = pods.get(lb_endpoint.get("endpoint", {}).get("hostname", ""))
                if pod is not None:
                    lb_endpoint["metadata"] = {"filter_metadata": {METADATA_NAMESPACE: pod_metadata(pod)}}
    return config
