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
  from an mTLS peer, and only when it is, whole, the metadata of a workload that runs as the SPIFFE id
  in the peer's certificate. The check costs no HTTP filter (peer_checked_routes): before routing, the
  mTLS chain writes the certificate's URI SAN into its own request header (an early header mutation,
  over any value the caller sent), and the inbound route configuration has one route per (identity,
  metadata) pair that matches both headers and carries that metadata as route metadata, which the tags
  read; then a route for requests without the header, and last a route that refuses the rest with 403
  through the authorization DENY filter. The inbound route configuration removes both headers before
  the app; a plaintext chain removes them before routing, so there source_* is "unknown".

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

import copy
import json
from collections.abc import Callable
from typing import Any, Iterable, Literal

from harness.errors import ConfigError
from harness.mesh import cel
from harness.mesh.telemetry_api import MetricPlan, TelemetryResource, metric_plan
from harness.mesh.resources import NAMESPACE
from harness.mesh.topology import GATEWAY_LABELS, GATEWAY_NAME, GATEWAY_SERVICE_ACCOUNT, Pod, spiffe_id
from harness.mesh.translate import tracing
from harness.mesh.translate.clusters import parse_cluster_name
from harness.mesh.translate.model import CLUSTER_TYPE, MeshState, ProxyConfig, ProxyNode
from harness.mesh.translate.rbac import DENY_FILTER, RBAC_PER_ROUTE

STATS_LOGGER = "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config"
METADATA_NAMESPACE = "istio"
BLACKHOLE = "BlackHoleCluster"  # Istio's destination_service for REGISTRY_ONLY denials
CLUSTER_ID = "Kubernetes"  # Istio's default CLUSTER_ID
REMOVED = "REMOVED"  # a tag a Telemetry REMOVE'd: the recording rules drop the label
PEER_HEADER = "x-mesh-peer"
# The peer metadata travels as one value, these fields joined by "|" (none can contain it); the
# recording-rules module splits the `<side>_peer` tag into Istio's labels at scrape time.
# The identity is not among them: the certificate gives it (source_principal), and the inbound routes check
# the header against it (peer_checked_routes).
PEER_FIELDS = ("workload", "namespace", "app", "version", "canonical_service", "canonical_revision", "cluster")
PEER_KEY = "peer"
# The receiving sidecar's own header: the mTLS peer's URI SAN, written before routing (over any value the
# caller sent), which the inbound routes match beside x-mesh-peer. Removed before the app, like x-mesh-peer.
PEER_IDENTITY_HEADER = "x-mesh-peer-identity"
# A request whose x-mesh-peer is not the metadata of a workload running as its certificate's identity
# takes this route: the authorization DENY filter refuses it with 403, under a policy of the same name.
PEER_REFUSED = "peer-metadata-not-from-peer"
EARLY_HEADER_MUTATION = ("type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3."
                         "HeaderMutation")
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
        peer = f"%METADATA(ROUTE:{METADATA_NAMESPACE}:{PEER_KEY})%"  # the checked claim: peer_checked_routes
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
    for tag in plan.removed_by.get(metric, ()):
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
    """A sidecar's every inbound request is for its inbound cluster (every inbound route forwards there,
    but the peer-metadata refusal, which answers for it), whose `istio` metadata is the sidecar's own
    Service: written as text here rather than looked up per request (the seed's destination_service
    override reads it on both reporters)."""
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


def stats_definitions(config: ProxyConfig) -> dict[str, str]:
    """Every stat a proxy's stats loggers define, by where it sits (listener, filter chain, metric): its
    tags, as JSON. The controller compares them between pushes (platforms/local/controller.py).

    Envoy keeps one counter per stat name (tags included) across listener updates, so a counter whose
    definition is unchanged keeps counting. A changed definition (a Telemetry override added, removed or
    changed) gives new stat names: the new stats count from 0, while the old ones live until the old
    filter chain has drained. Both can relabel to the same Prometheus series (an override of a label
    and the label's default give the same labels), so that series restarts, and can even climb back
    to its old value before a scrape notices the reset."""
    found: dict[str, str] = {}
    for listener in config.listeners:
        for index, chain in enumerate(listener.get("filter_chains", [])):
            where = f"{listener.get('name')}/{chain.get('name', index)}"
            for network_filter in chain.get("filters", []):
                typed = network_filter.get("typed_config", {})
                for entry in typed.get("access_log", []):
                    logger = entry.get("typed_config", {})
                    if logger.get("@type") != STATS_LOGGER:
                        continue
                    for stat in [*logger.get("counters", []), *logger.get("histograms", [])]:
                        key = f"{where}/{network_filter.get('name')}/{stat['stat']['name']}"
                        found[key] = json.dumps(stat, sort_keys=True)
    return found


# -- the peer metadata exchange ------------------------------------------------------------------------

def peer_headers(node: ProxyNode) -> list[dict[str, Any]]:
    """The request header a caller's sidecar (or the gateway) sets towards mesh services: who is calling."""
    return [{"header": {"key": PEER_HEADER, "value": _escape(node_metadata(node)[PEER_KEY])},
             "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]


def peer_identity_mutation(mtls: bool) -> dict[str, Any]:
    """The inbound HCM's early header mutation, applied before the route is chosen
    (envoy/http/early_header_mutation.h: "before routing, tracing or any filter processing").

    Over mTLS: x-mesh-peer reduced to one value, its first (`%REQ(h)%` renders the first value; Envoy
    1.40's route header matching accepts a repeated header when any one value matches, so the routes
    must see only the value they carry to the tags); PEER_IDENTITY_HEADER removed, then written from the
    peer certificate's URI SAN. An absent x-mesh-peer stays absent, and an empty first value leaves the
    header as it came (header_mutation.cc adds nothing for an empty value): peer_checked_routes refuses
    a header with an empty value. In plaintext, both peer headers removed, so that no route reads a
    claim nobody can vouch for."""
    if mtls:
        mutations: list[dict[str, Any]] = [
            {"append": {"header": {"key": PEER_HEADER, "value": f"%REQ({PEER_HEADER})%"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}},
            {"remove": PEER_IDENTITY_HEADER},
            {"append": {"header": {"key": PEER_IDENTITY_HEADER, "value": "%DOWNSTREAM_PEER_URI_SAN%"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}]
    else:
        mutations = [{"remove": PEER_HEADER}, {"remove": PEER_IDENTITY_HEADER}]
    return {"name": "envoy.http.early_header_mutation.header_mutation",
            "typed_config": {"@type": EARLY_HEADER_MUTATION, "mutations": mutations}}


def _with_match(route: dict[str, Any], headers: list[dict[str, Any]]) -> dict[str, Any]:
    matched = copy.deepcopy(route)
    matched["match"]["headers"] = [*matched["match"].get("headers", []), *headers]
    return matched


def peer_checked_routes(routes: list[dict[str, Any]], claims: dict[str, set[str]]) -> list[dict[str, Any]]:
    """An inbound virtual host's routes with the peer-metadata check in front, in order:
    - PEER_REFUSED for a header with an empty value (one the early mutation could not reduce to one
      value: the routes after it would accept it if any value matched);
    - for every identity and every metadata a workload running as it sends (`claims`, from peer_claims),
      each route matching x-mesh-peer exactly that value and PEER_IDENTITY_HEADER exactly that identity,
      with the metadata as route metadata: `istio.peer` (the joined value, which the `source_peer` tag
      reads) and namespace `istio.peer`, one key per field (what a Telemetry override of
      `downstream_peer.<field>` reads);
    - each route for requests without x-mesh-peer;
    - PEER_REFUSED for the rest, refused with 403 by the authorization DENY filter's per-route policy of
      that name (response_code_details `rbac_access_denied_matched_policy[peer-metadata-not-from-peer]`).
    The early header mutation (peer_identity_mutation) has left x-mesh-peer one value, its first, so a
    made-up first value beside an honest one is refused. The tags of a refused request carry no claimed
    value: its route has no metadata."""
    deny_all = {"action": "DENY", "policies": {PEER_REFUSED: {"permissions": [{"any": True}],
                                                              "principals": [{"any": True}]}}}
    refused = {"name": PEER_REFUSED, "match": {"prefix": "/"},
               "direct_response": {"status": 403, "body": {"inline_string": "RBAC: access denied"}},
               "typed_per_filter_config": {DENY_FILTER: {"@type": RBAC_PER_ROUTE, "rbac": {"rules": deny_all}}}}
    checked = [_with_match(refused, [{"name": PEER_HEADER, "string_match": {"exact": ""}}])]
    for identity, values in sorted(claims.items()):
        for value in sorted(values):
            metadata = {METADATA_NAMESPACE: {PEER_KEY: value},
                        cel.PEER_METADATA_NAMESPACE: dict(zip(PEER_FIELDS, value.split("|")))}
            for route in routes:
                matched = _with_match(route, [{"name": PEER_HEADER, "string_match": {"exact": value}},
                                              {"name": PEER_IDENTITY_HEADER, "string_match": {"exact": identity}}])
                filter_metadata = matched.setdefault("metadata", {}).setdefault("filter_metadata", {})
                for namespace, keys in metadata.items():
                    filter_metadata.setdefault(namespace, {}).update(keys)
                checked.append(matched)
    checked += [_with_match(route, [{"name": PEER_HEADER, "present_match": False}]) for route in routes]
    checked.append(refused)
    return checked


def peer_header_removal(route_config: dict[str, Any]) -> None:
    """The inbound route configuration removes both peer headers before the app (after routing read them)."""
    route_config["request_headers_to_remove"] = [*route_config.get("request_headers_to_remove", []),
                                                 PEER_HEADER, PEER_IDENTITY_HEADER]


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
    parsed = parse_cluster_name(cluster_name)
    if parsed is None:
        return None
    host = parsed[3]
    try:
        service = state.topology.service(host)
        entry = {"host": service.fqdn, "name": service.name, "namespace": service.namespace}
    except KeyError:
        namespace = next((se.namespace for se in state.istio.service_entries if host in se.hosts), None)
        if namespace is None:
            return None
        entry = {"host": host, "name": host, "namespace": namespace}
    return {"services": [entry], **entry}


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
            if inbound:
                hcm["early_header_mutation_extensions"] = [peer_identity_mutation(bool(mtls))]
    headers = peer_headers(node)
    for name, route_config in config.routes.items():
        if name.startswith("inbound"):
            for vhost in route_config.get("virtual_hosts", []):
                vhost["routes"] = peer_checked_routes(vhost.get("routes", []), claims)
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
