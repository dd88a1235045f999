"""What the translator gives each proxy for Istio's telemetry: tags, peer metadata headers and routes, metadata.

Followed: istio/proxy `istio_stats.cc` (tag sources per reporter), Istio's metadata exchange (the caller's
proxy sends its workload metadata in a request header, the receiving proxy reads it and removes it),
Envoy 1.40's HCM `early_header_mutation_extensions` (envoy.http.early_header_mutation.header_mutation:
applied before the route is chosen; `%REQ(h)%` renders a repeated header's first value, and
header_mutation.cc adds nothing for an empty value), route `match.headers` (`string_match`,
`present_match: false` for an absent header; on Envoy 1.40 a repeated header matches when any one of its
values does), route metadata read by
`%METADATA(ROUTE:namespace:key)%`, RBACPerRoute, and route configuration `request_headers_to_add` /
`request_headers_to_remove`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.errors import UnsupportedFieldError
from harness.mesh import cel
from harness.mesh.loader import build_model, declared_model, load_documents
from harness.mesh.schema import default_manifest_paths
from harness.mesh.translate.model import CertPaths, Endpoint, MeshState, ProxyNode, TraceCollector
from harness.mesh.translate.proxy import translate_proxy
from harness.mesh.translate.telemetry import (
    PEER_FIELDS, PEER_HEADER, PEER_IDENTITY_HEADER, PEER_REFUSED, peer_checked_routes, peer_claims, peer_headers,
    pod_metadata, standard_tags,
)
from harness.mesh.topology import GATEWAY_LABELS, GATEWAY_NAME, GATEWAY_SERVICE_ACCOUNT

MODEL = declared_model()
NOWHERE = Path("/nonexistent")


def _node(pod: str) -> ProxyNode:
    found = MODEL.topology.pod(pod)
    return ProxyNode(name=found.name, kind="sidecar", namespace=found.namespace, labels=found.labels,
                     region=found.region, service_account=found.service_account,
                     certs=CertPaths(NOWHERE, NOWHERE, NOWHERE), xds_dir=NOWHERE, admin_port=1,
                     inbound_port=2, app_port=3, outbound_port=4)


def _state() -> MeshState:
    endpoints = {p.name: Endpoint(pod=p.name, address="127.0.0.1", port=10000 + i, ready=True)
                 for i, p in enumerate(MODEL.topology.pods)}
    secrets = {p.service_account: {"name": "default"} for p in MODEL.topology.pods}
    return MeshState(istio=MODEL.istio, topology=MODEL.topology, endpoints=endpoints, secrets=secrets,
                     trace_collector=TraceCollector("127.0.0.1", 4318))


def _hcms(config, listener_name: str):
    (listener,) = [item for item in config.listeners if item["name"] == listener_name]
    return {chain.get("name"): f["typed_config"] for chain in listener["filter_chains"] for f in chain["filters"]}


def test_the_caller_sends_its_metadata_only_on_routes_to_mesh_services() -> None:
    config = translate_proxy(_state(), _node("ai-agent-v1-us-east-0"))
    with_headers, without = set(), set()
    for route_config in config.routes.values():
        for vhost in route_config["virtual_hosts"]:
            for route in vhost["routes"]:
                added = {h["header"]["key"]: h["header"]["value"] for h in route.get("request_headers_to_add", [])}
                (with_headers if PEER_HEADER in added else without).add(vhost["name"])
                if added:
                    assert added[PEER_HEADER] == "ai-agent-v1-us-east|parallel-ai|ai-agent|v1|ai-agent|v1|Kubernetes"
    assert any("user-service" in name for name in with_headers)
    assert "block_all" in without
    # api.openai.com's port is HTTPS: passed through by SNI (translate/passthrough.py), no HTTP virtual host
    assert not any("api.openai.com" in name for name in with_headers | without)


def test_the_receiver_trusts_peer_metadata_only_over_mtls_and_always_strips_it() -> None:
    state = _state()
    # Istio's default without a PeerAuthentication, PERMISSIVE: an mTLS chain and a plaintext one
    state = dataclasses.replace(state, istio=dataclasses.replace(state.istio, peer_authentications=()))
    config = translate_proxy(state, _node("user-v1-us-east-0"))
    # the route configuration both chains use removes both peer headers before the app
    (inbound_route,) = [r for name, r in config.routes.items() if name.startswith("inbound")]
    assert inbound_route["request_headers_to_remove"] == [PEER_HEADER, PEER_IDENTITY_HEADER]
    chains = _hcms(config, "virtualInbound")
    assert set(chains) == {"inbound-mtls", "inbound-plaintext"}
    for chain, hcm in chains.items():
        assert hcm["rds"]["route_config_name"] == inbound_route["name"]
        assert not any(f["name"].startswith("istio.peer") for f in hcm["http_filters"])  # no filter: routes check
        (mutation,) = hcm["early_header_mutation_extensions"]
        mutations = mutation["typed_config"]["mutations"]
        if chain == "inbound-mtls":
            # before routing: x-mesh-peer one value, its first, and the identity header the certificate's,
            # whatever the caller sent
            assert mutations == [
                {"append": {"header": {"key": PEER_HEADER, "value": f"%REQ({PEER_HEADER})%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}},
                {"remove": PEER_IDENTITY_HEADER},
                {"append": {"header": {"key": PEER_IDENTITY_HEADER, "value": "%DOWNSTREAM_PEER_URI_SAN%"},
                            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}]
        else:  # no certificate: both headers gone before routing, so the request takes the no-claim route
            assert mutations == [{"remove": PEER_HEADER}, {"remove": PEER_IDENTITY_HEADER}]


def test_only_a_claim_of_the_certificates_identity_reaches_a_route_that_carries_it() -> None:
    claims = peer_claims(_state())
    routes = _inbound_routes(translate_proxy(_state(), _node("user-v1-us-east-0")))
    pairs = [(identity, value) for identity, values in sorted(claims.items()) for value in sorted(values)]
    empty, *checked, absent, refused = routes
    # an empty first value is not reduced to one value (the mutation adds nothing for it), and a route
    # accepts a repeated header when any value matches: a header with an empty value is refused first
    assert empty["name"] == PEER_REFUSED and empty["match"]["headers"] == [
        {"name": PEER_HEADER, "string_match": {"exact": ""}}]
    assert {k: v for k, v in empty.items() if k != "match"} == {k: v for k, v in refused.items() if k != "match"}
    assert len(checked) == len(pairs) == 7  # ai-agent 3, analytics 1, user 2, the gateway 1
    for route, (identity, value) in zip(checked, pairs):
        # both headers exact: the value whole, and the identity the early mutation wrote from the certificate
        assert route["match"]["headers"] == [{"name": PEER_HEADER, "string_match": {"exact": value}},
                                             {"name": PEER_IDENTITY_HEADER, "string_match": {"exact": identity}}]
        meta = route["metadata"]["filter_metadata"]
        assert meta["istio"] == {"peer": value}  # the source_peer tag's
        assert meta[cel.PEER_METADATA_NAMESPACE] == dict(zip(PEER_FIELDS, value.split("|")))
        assert route["route"] == absent["route"]  # the same destination as any other request
    assert absent["match"]["headers"] == [{"name": PEER_HEADER, "present_match": False}]
    assert "metadata" not in absent and "metadata" not in refused  # no claim in the tags
    # the rest is refused by the authorization DENY filter, under a policy named for it
    assert refused["name"] == PEER_REFUSED and refused["match"] == {"prefix": "/"}
    assert refused["direct_response"]["status"] == 403
    rules = refused["typed_per_filter_config"]["istio.rbac.deny"]["rbac"]["rules"]
    assert rules == {"action": "DENY", "policies": {PEER_REFUSED: {"permissions": [{"any": True}],
                                                                   "principals": [{"any": True}]}}}


def test_an_authorization_policy_holds_on_every_route_a_request_may_take() -> None:
    """ai-agent has the seed's ai-agent-authz: every checked and unchecked route keeps its per-route RBAC."""
    routes = _inbound_routes(translate_proxy(_state(), _node("ai-agent-v1-us-east-0")))
    empty, *accepted, refused = routes
    allow = {json.dumps(route["typed_per_filter_config"], sort_keys=True) for route in accepted}
    assert len(allow) == 1 and "ai-agent-authz" in allow.pop()
    assert set(refused["typed_per_filter_config"]) == set(empty["typed_per_filter_config"]) == {"istio.rbac.deny"}
    assert peer_checked_routes([], {"spiffe://x": {"a|b"}}) == [empty, refused]  # no route: only the refusals


def _inbound_routes(config) -> list[dict]:
    (inbound_route,) = [r for name, r in config.routes.items() if name.startswith("inbound")]
    (vhost,) = inbound_route["virtual_hosts"]
    return vhost["routes"]


def _gateway_node() -> ProxyNode:
    return ProxyNode(name=GATEWAY_NAME, kind="gateway", namespace="parallel-ai", labels=GATEWAY_LABELS,
                     region="us-east", service_account=GATEWAY_SERVICE_ACCOUNT,
                     certs=CertPaths(NOWHERE, NOWHERE, NOWHERE), xds_dir=NOWHERE, admin_port=1)


def test_every_proxy_may_send_exactly_its_own_workloads_peer_metadata() -> None:
    """The inbound routes admit a header only as one of the values peer_claims lists for the certificate's
    SPIFFE id: each proxy's own header must be among them, and no other identity's."""
    claims = peer_claims(_state())
    nodes = [_node(pod.name) for pod in MODEL.topology.pods] + [_gateway_node()]
    for node in nodes:
        (header,) = peer_headers(node)
        identity = f"spiffe://cluster.local/ns/{node.namespace}/sa/{node.service_account}"
        assert header["header"]["value"] in claims[identity], node.name
        assert not any(header["header"]["value"] in values for other, values in claims.items() if other != identity)
    assert claims["spiffe://cluster.local/ns/parallel-ai/sa/api-gateway"] == {
        "istio-ingressgateway|parallel-ai|istio-ingressgateway|unknown|istio-ingressgateway|latest|Kubernetes"}


def test_each_reporter_takes_the_other_side_from_where_istio_does() -> None:
    state = _state()
    source = standard_tags(state, _node("ai-agent-v1-us-east-0"), "source", mtls=None)
    assert source["destination_peer"] == "%METADATA(UPSTREAM_HOST:istio:peer)%"  # split at scrape time
    assert source["destination_principal"] == "%UPSTREAM_PEER_URI_SAN%"
    # Constant per proxy, so not tagged per request: the scrape fills the own side from the target label
    # mesh_self, request_protocol "http" and connection_security_policy "unknown" by rule.
    assert not {"source_workload", "source_app", "request_protocol", "connection_security_policy"} & set(source)
    destination = standard_tags(state, _node("user-v1-us-east-0"), "destination", mtls=True)
    assert not {"destination_workload", "destination_service", "destination_service_name"} & set(destination)
    assert destination["source_peer"] == "%METADATA(ROUTE:istio:peer)%"  # the route that checked the claim
    assert destination["source_principal"] == "%DOWNSTREAM_PEER_URI_SAN%"
    assert destination["connection_security_policy"] == "mutual_tls"
    assert standard_tags(state, _node("user-v1-us-east-0"), "destination", mtls=False)["connection_security_policy"] == "none"


def test_the_inbound_clusters_metadata_is_written_as_text_on_reporter_destination() -> None:
    """The seed's destination_service override reads xds.cluster_metadata (Istio: the cluster the request
    went to). Every inbound request goes to the sidecar's one inbound cluster, whose metadata is its own
    Service, so on reporter=destination the value is known when translating; on "source" it is looked up."""
    from harness.mesh.translate.telemetry import request_stats_for

    def tags(pod: str, reporter: str) -> dict[str, str]:
        logger = request_stats_for(_state(), _node(pod), reporter, mtls=True, telemetry=MODEL.istio.telemetry)
        (counter,) = logger["typed_config"]["counters"]
        return {t["name"]: t["value_format"] for t in counter["stat"]["tags"]}

    assert tags("user-v1-us-east-0", "destination")["destination_service"] == "=user-service"
    assert tags("ai-agent-v1-us-east-0", "destination")["destination_service"] == "=ai-agent-service"
    assert tags("ai-agent-v1-us-east-0", "source")["destination_service"] == "=%CLUSTER_METADATA(istio:name)%"
    config = translate_proxy(_state(), _node("user-v1-us-east-0"))
    (inbound_route,) = [r for name, r in config.routes.items() if name.startswith("inbound")]
    # every route that forwards goes to the one inbound cluster; the peer-metadata refusal forwards nowhere
    routes = [route for vhost in inbound_route["virtual_hosts"] for route in vhost["routes"]]
    assert {route["route"]["cluster"] for route in routes if "route" in route} == {"inbound|8080||"}
    assert [route["name"] for route in routes if "route" not in route] == [PEER_REFUSED, PEER_REFUSED]
    (inbound_cluster,) = [c for c in config.clusters if c["name"] == "inbound|8080||"]
    assert inbound_cluster["metadata"]["filter_metadata"]["istio"]["name"] == "user-service"


def test_each_proxys_own_side_is_its_target_label_in_the_order_the_relabeling_splits() -> None:
    from harness.mesh.translate.telemetry import self_value
    from harness.platforms.local import recording_rules

    state = _state()
    assert self_value(state, _node("user-v1-us-east-0")).split("|") == [
        "user-v1-us-east", "parallel-ai", "spiffe://cluster.local/ns/parallel-ai/sa/user-service", "user", "v1",
        "user", "v1", "Kubernetes", "user-service.parallel-ai.svc.cluster.local", "user-service", "parallel-ai"]
    rules = {c["target_label"]: c for c in recording_rules.metric_relabel_configs()
             if c.get("source_labels", [None])[1:] == ["reporter", "mesh_self"]}
    # the own side of either reporter, and the destination service only on reporter="destination"
    assert rules["source_app"]["regex"] == r";source;[^|]*\|[^|]*\|[^|]*\|([^|]*).*"
    assert rules["destination_service_name"]["regex"].startswith(";destination;")
    assert "source_service_name" not in rules and len(rules) == 8 + 11


def test_clusters_and_endpoints_carry_istios_metadata() -> None:
    config = translate_proxy(_state(), _node("ai-agent-v1-us-east-0"))
    clusters = {c["name"]: c for c in config.clusters}
    user = clusters["outbound|8080||user-service.parallel-ai.svc.cluster.local"]["metadata"]["filter_metadata"]["istio"]
    assert user["services"] == [{"host": "user-service.parallel-ai.svc.cluster.local", "name": "user-service",
                                 "namespace": "parallel-ai"}]
    external = clusters["outbound|443||api.openai.com"]["metadata"]["filter_metadata"]["istio"]
    assert external["name"] == "api.openai.com" and external["namespace"] == "parallel-ai"
    hosts = [e for loc in config.endpoints["outbound|8080||user-service.parallel-ai.svc.cluster.local"]["endpoints"]
             for e in loc["lb_endpoints"]]
    assert {e["metadata"]["filter_metadata"]["istio"]["workload"] for e in hosts} == {"user-v1-us-east", "user-v1-eu-west"}


@pytest.mark.parametrize(("value", "reporter", "expected"), [
    ("string(response.code)", "source", "%RESPONSE_CODE%"),
    ("request.host", "destination", "%REQ(:AUTHORITY)%"),
    ("request.headers['x-user-id']", "source", "%REQ(x-user-id)%"),
    ("xds.cluster_metadata.filter_metadata['istio']['services'][0]['name']", "source", "%CLUSTER_METADATA(istio:name)%"),
    ("node.metadata['LABELS']['app']", "source", "ai-agent"),
    ("node.metadata['LABELS']['team']", "source", "unknown"),
    ("downstream_peer.app", "destination", "%METADATA(ROUTE:istio.peer:app)%"),
    ("downstream_peer.app", "source", "unknown"),
    ("upstream_peer.labels['version']", "source", "%METADATA(UPSTREAM_HOST:istio:version)%"),
    ("request.url_path.startsWith('/api') ? 'api' : 'other'", "source",
     "%CEL(request.url_path.startsWith('/api') ? 'api' : 'other')%"),
    ("'fixed'", "source", "fixed"),
])
def test_cel_values_become_envoy_formats(value: str, reporter: str, expected: str) -> None:
    from harness.mesh.translate.telemetry import envoy_node

    assert cel.to_envoy_format(value, reporter=reporter, node=envoy_node(_node("ai-agent-v1-us-east-0"))) == expected


def test_a_value_the_local_proxies_cannot_emit_is_refused_when_the_manifests_load(tmp_path: Path) -> None:
    bad = tmp_path / "telemetry.yaml"
    bad.write_text("""apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mixed, namespace: parallel-ai}
spec:
  metrics:
  - overrides:
    - tagOverrides:
        caller: {value: "downstream_peer.app + '-' + string(request.size)"}
""", encoding="utf-8")
    with pytest.raises(UnsupportedFieldError) as caught:
        build_model(load_documents([*default_manifest_paths(), bad]))
    assert caught.value.field == "spec.metrics[0].overrides[0].tagOverrides.caller.value"
    assert caught.value.file == str(bad)


def test_envoy_accepts_every_format_the_cel_translation_produces(tmp_path: Path) -> None:
    import json
    import subprocess

    from harness.mesh.translate.telemetry import request_stats_for
    from harness.platforms.local.launch import envoy_binary

    formats = sorted(set(cel._NATIVE.values())) + ["%CEL(request.url_path.startsWith('/api') ? 'api' : 'other')%"]
    logger = request_stats_for(_state(), _node("user-v1-us-east-0"), "destination", mtls=True, telemetry=())
    logger["typed_config"]["counters"][0]["stat"]["tags"] += [{"name": f"t{i}", "value_format": f}
                                                               for i, f in enumerate(formats)]
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "t", "access_log": [logger],
           "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"],
                                               "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    bootstrap = {"static_resources": {"listeners": [{
        "name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}]}}
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(bootstrap), encoding="utf-8")
    result = subprocess.run([envoy_binary(), "-c", str(path), "--mode", "validate", "--disable-hot-restart"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_a_peer_field_an_override_reads_is_a_key_of_the_checked_routes_metadata() -> None:
    value = "|".join(f"v-{field}" for field in PEER_FIELDS)
    (_, route, _, _) = peer_checked_routes(
        [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "c"},
          "metadata": {"filter_metadata": {"istio": {"other": "kept"}}}}],
        {"spiffe://cluster.local/ns/n/sa/s": {value}})
    assert route["metadata"]["filter_metadata"]["istio"] == {"other": "kept", "peer": value}  # merged per key
    fields = route["metadata"]["filter_metadata"][cel.PEER_METADATA_NAMESPACE]
    for field in PEER_FIELDS:
        assert fields[field] == f"v-{field}"
    for key in cel.PEER_KEYS.values():  # every field CEL's downstream_peer may read is there (identity aside)
        assert key == "identity" or key in fields
    # The identity is the certificate's, which the header was checked against
    assert cel.to_envoy_format("downstream_peer.identity", reporter="destination", node={}) == "%DOWNSTREAM_PEER_URI_SAN%"
    pod = _state().topology.pod("user-v1-us-east-0")
    assert pod_metadata(pod)["peer"] == "user-v1-us-east|parallel-ai|user|v1|user|v1|Kubernetes"


def _added_tags_telemetry(tags: dict[str, str]) -> dict:
    return {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
            "metadata": {"name": "added", "namespace": "parallel-ai"},
            "spec": {"metrics": [{"providers": [{"name": "prometheus"}], "overrides": [
                {"match": {"metric": "REQUEST_COUNT"}, "tagOverrides": {t: {"value": v} for t, v in tags.items()}}]}]}}


def test_an_added_tag_travels_with_its_name_so_a_missing_value_reads_unknown() -> None:
    """istio/proxy istio_stats.cc writes "unknown" for a CEL tag that evaluates to nothing; Envoy's stats
    logger omits an empty value and Prometheus drops an empty label. So an added tag (not one of Istio's
    labels) is emitted as mesh_user_tag_<i> = "<tag>=<value>", never empty, and the scrape's relabeling
    (recording_rules.metric_relabel_configs, fixed when Prometheus starts) restores <tag>, "unknown" when
    the value part is empty. An override of one of Istio's own labels stays in place, marked with a leading
"=" that the relabeling takes off after it has filled what the proxy leaves to it."""
    from harness.mesh.telemetry_api import check_telemetry
    from harness.mesh.translate.telemetry import MAX_USER_TAGS, USER_TAG, request_stats_for
    from harness.platforms.local import recording_rules

    resource = check_telemetry(_added_tags_telemetry({"user_tier": "request.headers['x-missing']",
                                                      "request_protocol": "request.protocol"}))
    logger = request_stats_for(_state(), _node("user-v1-us-east-0"), "destination", mtls=True, telemetry=[resource])
    (counter,) = logger["typed_config"]["counters"]
    tags = {t["name"]: t["value_format"] for t in counter["stat"]["tags"]}
    assert tags[USER_TAG + "0"] == "user_tier=%REQ(x-missing)%"
    assert "user_tier" not in tags
    assert tags["request_protocol"] == "=%PROTOCOL%"  # marked: an empty value must read "unknown", not "http"
    assert (USER_TAG, MAX_USER_TAGS) == (recording_rules.USER_TAG, recording_rules.MAX_USER_TAGS)
    relabel = [c for c in recording_rules.metric_relabel_configs() if c.get("source_labels") == [USER_TAG + "0"]]
    assert [(c["regex"], c["target_label"], c["replacement"]) for c in relabel] == [
        ("([a-zA-Z_][a-zA-Z0-9_]*)=(.+)", "$1", "$2"), ("([a-zA-Z_][a-zA-Z0-9_]*)=", "$1", "unknown")]
    assert {"action": "labeldrop", "regex": USER_TAG + "[0-9]+"} in recording_rules.metric_relabel_configs()


def test_more_added_tags_than_the_relabeling_has_slots_are_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    import yaml

    from harness.mesh.translate.telemetry import MAX_USER_TAGS

    path = tmp_path / "telemetry.yaml"
    tags = {f"t{i}": "request.method" for i in range(MAX_USER_TAGS + 1)}
    path.write_text(yaml.safe_dump(_added_tags_telemetry(tags)), encoding="utf-8")
    with pytest.raises(UnsupportedFieldError) as caught:
        build_model(load_documents([*default_manifest_paths(), path]))
    assert caught.value.file == str(path)
    assert caught.value.field == f"spec.metrics[0].overrides[0].tagOverrides.t{MAX_USER_TAGS}"
