"""The mesh manifests validate strictly, and strict validation rejects what real Istio would not take."""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError, ManifestError
from harness.mesh.schema import (
    ISTIO_CRD_PATH,
    MANIFESTS_DIR,
    default_manifest_paths,
    load_manifests,
    load_yaml_documents,
    validate_document,
)

DATA = Path(__file__).parent / "data"
SEED = DATA / "seed_as_written.yaml"
# The kind-only folder (IstioOperator profiles, addons, Locust) is validated by tests/kind.
ALL_FILES = sorted(p for p in MANIFESTS_DIR.rglob("*.yaml") if p.relative_to(MANIFESTS_DIR).parts[0] != "kind")
ISTIO_CRD_SHA256 = "dcb43ff6b9af2f629b80b6a82597f5a91db259c757e66cc5353ac007da28351a"


def _doc(relative: str, kind: str, name: str) -> dict:
    """A deep copy of one manifest document, safe to break in a test."""
    for doc in load_yaml_documents(MANIFESTS_DIR / relative):
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return copy.deepcopy(doc)
    raise LookupError(f"{kind}/{name} not in {relative}")


def _problems(doc: dict) -> str:
    with pytest.raises(ManifestError) as caught:
        validate_document(doc, file=Path("test.yaml"), index=0)
    return str(caught.value)


def _by_kind(kind: str, include: tuple[str, ...] = ("kubernetes", "istio")) -> list[dict]:
    return [doc for doc in load_manifests(default_manifest_paths(include)) if doc["kind"] == kind]


# --- every shipped manifest is valid -------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(MANIFESTS_DIR)))
def test_every_manifest_file_validates(path: Path) -> None:
    assert load_manifests([path])


def test_manifests_folder_has_every_file_the_architecture_names() -> None:
    names = {str(p.relative_to(MANIFESTS_DIR)) for p in ALL_FILES}
    assert names == {
        "kubernetes/namespace.yaml", "kubernetes/serviceaccounts.yaml", "kubernetes/services.yaml",
        "kubernetes/deployments.yaml", "istio/gateway.yaml", "istio/virtual-services.yaml",
        "istio/destination-rules.yaml", "istio/peer-authentication.yaml", "istio/authorization-policy.yaml",
        "istio/service-entry.yaml", "istio/telemetry.yaml", "variants/authz-seed-as-written.yaml",
        "variants/security-deny-chat-from-analytics.yaml", "variants/security-gateway-deny-admin.yaml",
        "variants/connection-pool-for-load.yaml", "variants/tracing-full-sampling.yaml", "multicluster/east-west.yaml",
    }


def test_default_manifest_paths_list_kubernetes_before_istio() -> None:
    folders = [p.parent.name for p in default_manifest_paths()]
    assert folders == sorted(folders, key=["kubernetes", "istio"].index)
    assert set(folders) == {"kubernetes", "istio"}


def test_an_unknown_manifest_folder_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(ManifestError, match="no manifest folder 'istoi'; known: istio, kind, kubernetes"):
        default_manifest_paths(("istoi",))


def test_every_namespaced_resource_is_in_parallel_ai() -> None:
    docs = load_manifests(default_manifest_paths(("kubernetes", "istio", "variants", "multicluster")))
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"parallel-ai"}


def test_warm_validation_of_all_manifests_takes_well_under_a_second() -> None:
    paths = default_manifest_paths(("kubernetes", "istio", "variants", "multicluster"))
    load_manifests(paths)
    started = time.perf_counter()
    load_manifests(paths)
    assert time.perf_counter() - started < 0.5


def test_bundled_istio_crds_are_the_pinned_release() -> None:
    assert hashlib.sha256(ISTIO_CRD_PATH.read_bytes()).hexdigest() == ISTIO_CRD_SHA256


# --- strictness: typos, types, kinds --------------------------------------------------------------


def test_a_misspelled_field_is_rejected_with_its_path_and_the_expected_names() -> None:
    vs = _doc("istio/virtual-services.yaml", "VirtualService", "ai-agent-routing")
    route = vs["spec"]["http"][2]["route"][0]
    route["weigth"] = route.pop("weight")
    message = _problems(vs)
    assert "VirtualService/ai-agent-routing" in message
    assert "spec.http[2].route[0].weigth: unknown field; expected one of: destination, headers, weight" in message


def test_a_misspelled_metadata_field_is_rejected() -> None:
    dr = _doc("istio/destination-rules.yaml", "DestinationRule", "ai-agent-destination")
    dr["metadata"]["lables"] = {"app": "ai-agent"}
    assert "metadata.lables: unknown field" in _problems(dr)


def test_a_wrong_type_names_the_expected_type() -> None:
    vs = _doc("istio/virtual-services.yaml", "VirtualService", "ai-agent-routing")
    vs["spec"]["http"][2]["route"][0]["weight"] = "ninety"
    assert "spec.http[2].route[0].weight: expected integer, got 'ninety'" in _problems(vs)


def test_mutually_exclusive_fields_are_rejected_naming_the_alternatives() -> None:
    vs = _doc("istio/virtual-services.yaml", "VirtualService", "ai-agent-routing")
    vs["spec"]["http"][0]["match"][0]["headers"]["x-user-tier"]["prefix"] = "prem"
    message = _problems(vs)
    expected = "spec.http[0].match[0].headers.x-user-tier: conflicting fields: set at most one of exact, prefix, regex"
    assert expected in message


def test_every_problem_of_a_document_is_reported_at_once() -> None:
    dr = _doc("istio/destination-rules.yaml", "DestinationRule", "ai-agent-destination")
    dr["spec"]["trafficPolicy"]["loadBalancer"]["simpel"] = "ROUND_ROBIN"
    dr["spec"]["subsets"][0]["lables"] = {"version": "v1"}
    message = _problems(dr)
    assert message.count("\n  document 0") == 2
    assert "spec.subsets[0].lables" in message and "spec.trafficPolicy.loadBalancer.simpel" in message


def test_an_unknown_istio_kind_is_an_error_listing_the_known_kinds() -> None:
    doc = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualServer", "metadata": {"name": "x"}}
    message = _problems(doc)
    assert "unknown Istio kind 'VirtualServer'" in message
    assert "networking.istio.io/VirtualService" in message and "security.istio.io/AuthorizationPolicy" in message


def test_an_unknown_istio_version_is_an_error_listing_the_known_versions() -> None:
    doc = {"apiVersion": "networking.istio.io/v2", "kind": "DestinationRule", "metadata": {"name": "x"}}
    assert ("DestinationRule has no version 'v2'; known: networking.istio.io/v1, "
            "networking.istio.io/v1alpha3, networking.istio.io/v1beta1") in _problems(doc)


def test_an_unknown_kubernetes_kind_is_an_error() -> None:
    doc = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
    assert "Kubernetes 1.33 has no kind 'Deploymnet' in 'apps/v1'" in _problems(doc)


def test_a_deployment_with_an_unknown_field_fails_kubernetes_strict_validation() -> None:
    deployment = _doc("kubernetes/deployments.yaml", "Deployment", "ai-agent-v1-us-east")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    message = _problems(deployment)
    assert "Deployment/ai-agent-v1-us-east" in message
    assert "spec.template.spec.containers[0].imagePullPolcy: unknown field" in message


def test_a_service_with_a_wrongly_typed_port_fails_kubernetes_validation() -> None:
    service = _doc("kubernetes/services.yaml", "Service", "user-service")
    service["spec"]["ports"][0]["port"] = "eighty"
    assert "spec.ports[0].port: expected integer, got 'eighty'" in _problems(service)


# --- YAML and document shape ------------------------------------------------------------------------


def test_malformed_yaml_is_rejected_naming_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n   labels: {}\n")
    with pytest.raises(ManifestError) as caught:
        load_yaml_documents(bad)
    assert str(caught.value).startswith(f"{bad}: line 5, column")
    assert caught.value.file == str(bad)


def test_a_duplicate_key_is_rejected_naming_both_lines(tmp_path: Path) -> None:
    bad = tmp_path / "dup.yaml"
    bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  name: y\n")
    expected = r"line 5, column 3: invalid YAML: duplicate key 'name' \(first at line 4\)"
    with pytest.raises(ManifestError, match=expected):
        load_yaml_documents(bad)


def test_a_document_without_kind_or_name_is_rejected_naming_its_index(tmp_path: Path) -> None:
    bad = tmp_path / "shape.yaml"
    bad.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n---\napiVersion: v1\nmetadata: {}\n")
    with pytest.raises(ManifestError) as caught:
        load_yaml_documents(bad)
    message = str(caught.value)
    assert "document 1 (line 6): kind: required, a non-empty string" in message
    assert "document 1 (line 6): metadata.name: required, a non-empty string" in message


def test_a_document_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- apiVersion: v1\n")
    with pytest.raises(ManifestError, match="document 0 .*expected a mapping with apiVersion, kind and metadata"):
        load_yaml_documents(bad)


# --- the seed as written: each deviation is caught, or shown to be beyond a schema -----------------

SEED_DEVIATIONS = [
    ("ai-agent-destination", "spec.trafficPolicy.connectionPool.http.connectTimeout"),
    ("ai-agent-destination", "spec.trafficPolicy.circuitBreaker"),
    ("connection-pool-settings", "spec.trafficPolicy.connectionPool.http.connectTimeout"),
    ("connection-pool-settings", "spec.trafficPolicy.connectionPool.tcp.keepAlive"),
    ("failover-config", "spec.trafficPolicy.failover"),
    ("circuit-breaker", "spec.trafficPolicy.circuitBreaker"),
]


@pytest.fixture(scope="module")
def seed_message() -> str:
    with pytest.raises(ManifestError) as caught:
        load_manifests([SEED])
    return str(caught.value)


@pytest.mark.parametrize(("name", "field"), SEED_DEVIATIONS, ids=lambda v: v)
def test_the_seed_as_written_is_rejected_at_each_invalid_field(seed_message: str, name: str, field: str) -> None:
    assert f"(DestinationRule/{name}): {field}: unknown field; expected one of:" in seed_message


def test_the_seed_as_written_fails_with_exactly_its_known_deviations(seed_message: str) -> None:
    assert seed_message.startswith(f"{SEED}: {len(SEED_DEVIATIONS)} problems:")


def test_the_seeds_h2_upgrade_and_client_protocol_are_valid_istio_dropped_for_the_platform(seed_message: str) -> None:
    assert "h2UpgradePolicy:" not in seed_message and "useClientProtocol:" not in seed_message


def test_the_seeds_split_telemetry_entries_pass_the_schema_so_the_mapping_doc_must_say_why_we_merge() -> None:
    telemetry = [d for d in load_yaml_documents(SEED) if d["kind"] == "Telemetry"]
    for index, doc in enumerate(telemetry):
        if doc["metadata"]["name"] == "custom-metrics":  # its values are not CEL (tests/telemetry)
            with pytest.raises(ConfigError, match=r"tagOverrides\.request_protocol\.value"):
                validate_document(doc, file=SEED, index=index)
        elif doc["metadata"]["name"] == "tracing-config":  # its sampling entry names no provider
            with pytest.raises(ConfigError, match=r"spec\.tracing\[1\]\.providers"):
                validate_document(doc, file=SEED, index=index)
        else:
            validate_document(doc, file=SEED, index=index)
    by_name = {d["metadata"]["name"]: d["spec"] for d in telemetry}
    assert len(by_name["tracing-config"]["tracing"]) == 3 and len(by_name["custom-metrics"]["metrics"]) == 2


# --- what we ship keeps the seed's intent ------------------------------------------------------------


def test_the_intended_authorization_policy_has_one_rule_with_both_from_and_to() -> None:
    (policy,) = _by_kind("AuthorizationPolicy")
    (rule,) = policy["spec"]["rules"]
    assert set(rule) == {"from", "to"}
    assert rule["from"][0]["source"]["principals"] == [
        "cluster.local/ns/parallel-ai/sa/api-gateway", "cluster.local/ns/parallel-ai/sa/analytics-service",
    ]
    assert rule["to"][0]["operation"] == {"methods": ["GET", "POST"], "paths": ["/api/v1/*"]}


def test_the_seed_authorization_variant_has_two_rules_one_from_one_to() -> None:
    (variant,) = load_manifests([MANIFESTS_DIR / "variants" / "authz-seed-as-written.yaml"])
    assert variant["metadata"]["name"] == "ai-agent-authz"
    assert [set(rule) for rule in variant["spec"]["rules"]] == [{"from"}, {"to"}]


def test_each_destination_rule_host_has_exactly_one_rule() -> None:
    hosts = [dr["spec"]["host"] for dr in _by_kind("DestinationRule")]
    assert sorted(hosts) == ["*.parallel-ai.svc.cluster.local", "ai-agent-service", "user-service"]


def test_every_locality_failover_comes_with_outlier_detection() -> None:
    for dr in _by_kind("DestinationRule"):
        policy = dr["spec"]["trafficPolicy"]
        if "localityLbSetting" in policy.get("loadBalancer", {}):
            assert policy["outlierDetection"], dr["metadata"]["name"]


def test_no_destination_rule_asks_proxies_for_http2() -> None:
    for dr in _by_kind("DestinationRule"):
        http = dr["spec"]["trafficPolicy"].get("connectionPool", {}).get("http", {})
        assert "h2UpgradePolicy" not in http and "useClientProtocol" not in http


def test_the_virtual_service_applies_at_the_ingress_gateway_and_in_the_mesh() -> None:
    (vs,) = _by_kind("VirtualService")
    assert vs["spec"]["hosts"] == ["ai-agent-service"]
    assert vs["spec"]["gateways"] == ["ai-agent-gateway", "mesh"]
    (gateway,) = _by_kind("Gateway")
    assert gateway["metadata"]["name"] == "ai-agent-gateway"


def test_the_one_namespace_wide_telemetry_keeps_metrics_and_tracing_each_in_one_entry() -> None:
    """One selector-less Telemetry per namespace: Istio applies only the oldest (pilot
    namespaceWideTelemetryConfig), so the seed's tracing-config is merged into custom-metrics."""
    (telemetry,) = _by_kind("Telemetry")
    assert telemetry["metadata"]["name"] == "custom-metrics" and "selector" not in telemetry["spec"]
    (metrics,) = telemetry["spec"]["metrics"]
    assert metrics["providers"] == [{"name": "prometheus"}] and metrics["overrides"]
    (tracing,) = telemetry["spec"]["tracing"]
    assert tracing["providers"] == [{"name": "jaeger"}] and tracing["randomSamplingPercentage"] == 1.0
    assert set(tracing["customTags"]) == {"user_id", "request_size"}


def test_there_is_one_deployment_per_app_version_and_region() -> None:
    deployments = _by_kind("Deployment")
    assert sorted(d["metadata"]["name"] for d in deployments) == [
        "ai-agent-v1-us-east", "ai-agent-v1-us-west", "ai-agent-v2-eu-west",
        "analytics-v1-us-west", "user-v1-eu-west", "user-v1-us-east",
    ]
    for d in deployments:
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert d["metadata"]["name"] == f"{labels['app']}-{labels['version']}-{labels['istio-locality']}"
        assert d["spec"]["selector"]["matchLabels"] == labels and d["spec"]["replicas"] == 1


def test_every_pod_gets_the_sample_service_environment() -> None:
    expected = ["SERVICE_NAME", "SERVICE_VERSION", "POD_NAME", "REGION", "PORT", "USER_SERVICE_HOST",
                "ANALYTICS_SERVICE_HOST", "EXTERNAL_AI_HOST", "AI_LATENCY_MS", "AI_JITTER_MS"]
    for d in _by_kind("Deployment"):
        labels = d["spec"]["template"]["metadata"]["labels"]
        (container,) = d["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
        assert list(env) == expected
        assert env["SERVICE_NAME"] == labels["app"] and env["REGION"] == labels["istio-locality"]
        assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_services_expose_http_and_metrics_on_the_app_port() -> None:
    for service in _by_kind("Service"):
        ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
        assert ports == {"http": (8080, 8080), "http-metrics": (9090, 8080)}


def test_a_workload_outside_the_mesh_namespace_is_refused_naming_its_file_and_field() -> None:
    """Both platforms run the workloads in parallel-ai: kind creates them there, and the local CA issues
    their SPIFFE identities there, so a Deployment elsewhere would fail every mTLS and peer check."""
    from harness.mesh.topology import build_topology

    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "billing-v1", "namespace": "billing"},
                  "spec": {"template": {"metadata": {"labels": {"app": "billing", "istio-locality": "us-east"}},
                                        "spec": {"containers": [{"name": "app"}]}}}}
    with pytest.raises(ManifestError) as caught:
        build_topology([(deployment, "extra.yaml")])
    assert caught.value.file == "extra.yaml" and caught.value.field == "metadata.namespace"
    assert "'billing'" in str(caught.value) and "'parallel-ai'" in str(caught.value)


def test_other_request_duration_buckets_are_refused_not_ignored() -> None:
    """kind's Istio honours sidecar.istio.io/statsHistogramBuckets; the local proxies use one set of
    buckets (the shipped annotation's). Another value would differ silently between the platforms."""
    from harness.mesh.topology import build_topology

    deployment = copy.deepcopy(_doc("kubernetes/deployments.yaml", "Deployment", "ai-agent-v1-us-east"))
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    build_topology([(deployment, "deployments.yaml")])  # the shipped value is the local one
    annotations["sidecar.istio.io/statsHistogramBuckets"] = '{"istiocustom":[1,5,10]}'
    with pytest.raises(ManifestError) as caught:
        build_topology([(deployment, "deployments.yaml")])
    assert caught.value.file == "deployments.yaml"
    assert caught.value.field == "spec.template.metadata.annotations.sidecar.istio.io/statsHistogramBuckets"
