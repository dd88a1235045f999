"""Telemetry resources are checked as Istio's stats plugin would need them, on both platforms, before anything starts.

Followed: istio/proxy source/extensions/filters/http/istio_stats/istio_stats.cc (a tag value that does
not parse as CEL is dropped: `getOrCreateExpression` returns nothing and `overrideTags` skips the tag;
REMOVE of a non-standard tag logs "Tag is not standard" and is ignored; the standard tags are
`all_tags_`), Istio's "Customizing Istio Metrics" task (values such as `string(destination.port)`,
`request.host`), the Telemetry API reference (metric selectors, match modes, providers) and Envoy's
attribute list (arch_overview/advanced/attributes).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import ConfigError
from harness.mesh import cel
from harness.mesh.loader import load_documents
from harness.mesh.schema import MANIFESTS_DIR, default_manifest_paths, load_yaml_documents
from harness.mesh.telemetry_api import STANDARD_TAGS, check_telemetry, mesh_providers, metric_plan

ROOT = Path(__file__).parents[2]
SHIPPED = MANIFESTS_DIR / "istio" / "telemetry.yaml"
SEED = ROOT / "tests" / "mesh" / "data" / "seed_as_written.yaml"


def _custom_metrics() -> dict[str, Any]:
    (doc,) = [d for d in load_yaml_documents(SHIPPED) if d["metadata"]["name"] == "custom-metrics"]
    return doc


def _with_override(tag: str, spec: dict[str, Any], **match: str) -> dict[str, Any]:
    doc = copy.deepcopy(_custom_metrics())
    doc["spec"]["metrics"][0]["overrides"] = [{"match": {"metric": "ALL_METRICS", **match}, "tagOverrides": {tag: spec}}]
    return doc


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "telemetry.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


# --- the shipped manifests, as each platform loads them ----------------------------------------------


def test_the_shipped_telemetry_values_are_cel_the_stats_plugin_accepts_on_the_local_platform() -> None:
    documents = load_documents(default_manifest_paths())  # the local platform's loader, validated
    telemetry = [check_telemetry(doc, file=file) for doc, file in documents if doc["kind"] == "Telemetry"]
    tags = {t.tag: t.value for r in telemetry for o in r.overrides for t in o.tags}
    assert tags == {"response_code": "string(response.code)",
                    "destination_service": "xds.cluster_metadata.filter_metadata['istio']['services'][0]['name']",
                    "source_app": "node.metadata['LABELS']['app']"}
    for value in tags.values():
        assert "%" not in value and cel.check(value).roots


def test_the_kind_manifest_set_passes_the_same_telemetry_check() -> None:
    from harness.platforms.kind import render
    from harness.platforms.kind.validation import validate_kind_document

    documents = [d for d in render.istio_documents() if d["kind"] == "Telemetry"]
    assert {d["metadata"]["name"] for d in documents} == {"custom-metrics"}  # metrics and tracing in one
    for index, doc in enumerate(documents):
        validate_kind_document(doc, source="harness/mesh/manifests/istio (kind)", index=index)  # no raise
        resource = check_telemetry(doc, file="kind")
        assert all(t.value is None or cel.check(t.value) for o in resource.overrides for t in o.tags)


def test_the_kind_validator_refuses_a_telemetry_whose_value_is_not_cel() -> None:
    from harness.platforms.kind.validation import validate_kind_document

    doc = _with_override("response_code", {"value": "%{RESPONSE_CODE}"})
    with pytest.raises(ConfigError) as caught:
        validate_kind_document(doc, source="harness/mesh/manifests/istio (kind)")
    assert caught.value.field == "spec.metrics[0].overrides[0].tagOverrides.response_code.value"
    assert caught.value.file == "harness/mesh/manifests/istio (kind)"


def test_the_seeds_values_as_written_are_refused_naming_the_file_and_field() -> None:
    (doc,) = [d for d in load_yaml_documents(SEED) if d["metadata"]["name"] == "custom-metrics"]
    with pytest.raises(ConfigError) as caught:
        check_telemetry(doc, file=SEED)
    assert caught.value.file == str(SEED)
    assert caught.value.field == "spec.metrics[1].overrides[0].tagOverrides.request_protocol.value"
    assert "not a CEL expression" in caught.value.message and "%{REQUEST_PROTOCOL}" in caught.value.message


def test_harness_apply_exits_2_on_a_value_that_is_not_cel_before_contacting_any_mesh(tmp_path: Path) -> None:
    path = _write(tmp_path, _with_override("response_code", {"value": "%{RESPONSE_CODE}"}))
    result = subprocess.run([sys.executable, "-m", "harness.cli", "apply", "-f", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HARNESS_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and "tagOverrides.response_code.value" in result.stderr
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").rglob("*.pid"))


# --- values: parsed as CEL, names checked against the stats plugin's attributes -----------------------


@pytest.mark.parametrize("value", [
    "string(destination.port)", "request.host", "request.headers['x-user-id']", "string(response.code)",
    "xds.cluster_metadata.filter_metadata['istio']['services'][0]['name']", "node.metadata['LABELS']['app']",
    "downstream_peer.app", "upstream_peer.labels['version']", "request.url_path.startsWith('/api') ? 'api' : 'other'",
    "has(request.headers.foo) ? request.headers.foo : 'none'", "connection.mtls ? 'mutual_tls' : 'none'",
    "filter_state['wasm.upstream_peer']", "'literal'",
])
def test_cel_values_as_istio_documents_them_are_accepted(value: str) -> None:
    check_telemetry(_with_override("extra_tag", {"value": value}), file="t.yaml")


@pytest.mark.parametrize(("value", "expected"), [
    ("%{RESPONSE_CODE}", "not a CEL expression"),
    ("response.code ==", "not a CEL expression"),
    ("", "an empty expression"),
    ("requst.path", "unknown attribute 'requst'"),
    ("request.prot", "request has no attribute 'prot'"),
    ("upstream_peer.appp", "upstream_peer has no attribute 'appp'"),
    ("lower(request.host)", "unknown function lower()"),
    ("request.host.toLower()", "unknown method .toLower()"),
])
def test_a_value_the_stats_plugin_would_drop_is_an_error_naming_the_field(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_telemetry(_with_override("response_code", {"value": value}), file="t.yaml")
    assert caught.value.field == "spec.metrics[0].overrides[0].tagOverrides.response_code.value"
    assert expected in caught.value.message


def test_an_unknown_metric_name_is_an_error_naming_the_field() -> None:
    doc = _with_override("response_code", {"value": "string(response.code)"})
    doc["spec"]["metrics"][0]["overrides"][0]["match"] = {"customMetric": "my_requests"}
    with pytest.raises(ConfigError) as caught:
        check_telemetry(doc, file="t.yaml")
    assert caught.value.field == "spec.metrics[0].overrides[0].match.customMetric"
    doc["spec"]["metrics"][0]["overrides"][0]["match"] = {"metric": "REQUESTS"}
    with pytest.raises(ConfigError) as caught:
        check_telemetry(doc, file="t.yaml")
    assert caught.value.field == "spec.metrics[0].overrides[0].match.metric" and "REQUEST_COUNT" in caught.value.message


def test_removing_a_tag_that_is_not_standard_is_an_error_naming_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        check_telemetry(_with_override("request_host", {"operation": "REMOVE"}), file="t.yaml")
    assert caught.value.field == "spec.metrics[0].overrides[0].tagOverrides.request_host.operation"
    check_telemetry(_with_override("source_principal", {"operation": "REMOVE"}), file="t.yaml")  # standard: fine


def test_a_tag_name_prometheus_cannot_carry_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        check_telemetry(_with_override("request-host", {"value": "request.host"}), file="t.yaml")
    assert caught.value.field == "spec.metrics[0].overrides[0].tagOverrides.request-host"


def test_an_unknown_provider_is_an_error_naming_the_field() -> None:
    doc = copy.deepcopy(_custom_metrics())
    doc["spec"]["metrics"][0]["providers"] = [{"name": "prometheus"}, {"name": "datadog"}]
    with pytest.raises(ConfigError) as caught:
        check_telemetry(doc, file="t.yaml")
    assert caught.value.field == "spec.metrics[0].providers[1].name" and "prometheus" in caught.value.message
    tracing = {"apiVersion": "telemetry.istio.io/v1alpha1", "kind": "Telemetry",
               "metadata": {"name": "t", "namespace": "parallel-ai"},
               "spec": {"tracing": [{"providers": [{"name": "zipkin-typo"}]}]}}
    with pytest.raises(ConfigError) as caught:
        check_telemetry(tracing, file="t.yaml")
    assert caught.value.field == "spec.tracing[0].providers[0].name" and "jaeger" in caught.value.message


def test_the_mesh_providers_are_istios_builtins_and_the_control_planes_extension_providers() -> None:
    providers = mesh_providers()
    assert providers["metrics"] == {"prometheus"} and "jaeger" in providers["tracing"]


def test_the_standard_tags_are_the_stats_plugins_25() -> None:
    assert len(STANDARD_TAGS) == len(set(STANDARD_TAGS)) == 25


# --- which overrides a proxy gets -----------------------------------------------------------------------


def test_overrides_apply_by_mode_and_later_resources_win_tag_by_tag() -> None:
    shipped = check_telemetry(_custom_metrics(), file=SHIPPED)
    client = metric_plan([shipped], "source", "parallel-ai", [("app", "ai-agent")])
    server = metric_plan([shipped], "destination", "parallel-ai", [("app", "ai-agent")])
    assert set(client.upserts["requests_total"]) == {"response_code", "destination_service", "source_app"}
    assert set(server.upserts["requests_total"]) == {"response_code", "destination_service"}
    workload = _with_override("source_app", {"operation": "REMOVE"})
    workload["spec"]["selector"] = {"matchLabels": {"app": "ai-agent"}}
    workload["spec"]["metrics"][0]["overrides"][0]["disabled"] = True
    narrowed = check_telemetry(workload, file="t.yaml")
    plan = metric_plan([narrowed, shipped], "source", "parallel-ai", [("app", "ai-agent"), ("version", "v1")])
    assert "source_app" not in plan.upserts["requests_total"] and "source_app" in plan.removed["requests_total"]
    assert "requests_total" in plan.disabled
    other = metric_plan([narrowed, shipped], "source", "parallel-ai", [("app", "user")])
    assert "source_app" in other.upserts["requests_total"] and not other.disabled


# -- one Telemetry per level, as Istio allows them ------------------------------------------------------
# pilot/pkg/model/telemetry.go: namespaceWideTelemetryConfig returns the oldest selector-less Telemetry of
# a namespace (an empty matchLabels counts as none) and ignores the others; the Telemetry API allows one
# resource selecting a workload (istioctl IST0159); a selector in the root namespace is ignored. The
# local mesh refuses each, naming the file and spec.selector.

def _telemetry_doc(name: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"metrics": [{"providers": [{"name": "prometheus"}], "overrides": [
        {"match": {"metric": "REQUEST_COUNT"}, "tagOverrides": {"request_host": {"value": "request.host"}}}]}]}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    return {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
            "metadata": {"name": name, "namespace": "parallel-ai"}, "spec": spec}


def test_a_second_telemetry_without_a_selector_in_a_namespace_is_refused_naming_it() -> None:
    from harness.mesh.loader import build_model

    shipped = load_documents(default_manifest_paths())
    with pytest.raises(ConfigError) as caught:
        build_model([*shipped, (_telemetry_doc("extra"), "extra.yaml")])
    assert caught.value.file == "extra.yaml" and caught.value.field == "spec.selector"
    assert "'custom-metrics'" in caught.value.message and "only the oldest" in caught.value.message
    build_model([*shipped, (_telemetry_doc("for-user", {"app": "user"}), "user.yaml")])  # a selector: fine


def test_two_telemetries_selecting_one_workload_are_refused_when_the_resources_load() -> None:
    from harness.mesh.loader import build_model

    shipped = load_documents(default_manifest_paths())
    with pytest.raises(ConfigError) as caught:  # user pods carry app=user and version=v1: both select them
        build_model([*shipped, (_telemetry_doc("a", {"app": "user"}), "a.yaml"),
                     (_telemetry_doc("b", {"app": "user", "version": "v1"}), "b.yaml")])
    assert caught.value.file == "b.yaml" and caught.value.field == "spec.selector" and "'a'" in caught.value.message
    assert "IST0159" in caught.value.message
    build_model([*shipped, (_telemetry_doc("a", {"app": "user"}), "a.yaml"),
                 (_telemetry_doc("b", {"app": "analytics"}), "b.yaml")])  # disjoint: fine


def test_an_empty_match_labels_is_namespace_wide_and_a_root_namespace_selector_is_refused() -> None:
    from harness.mesh.loader import build_model

    shipped = load_documents(default_manifest_paths())
    empty = _telemetry_doc("empty")
    empty["spec"]["selector"] = {"matchLabels": {}}
    with pytest.raises(ConfigError, match="already has a Telemetry without a selector, 'custom-metrics'"):
        build_model([*shipped, (empty, "empty.yaml")])
    rooted = _telemetry_doc("rooted", {"app": "user"})
    rooted["metadata"]["namespace"] = "istio-system"
    with pytest.raises(ConfigError) as caught:
        build_model([*shipped, (rooted, "rooted.yaml")])
    assert caught.value.file == "rooted.yaml" and caught.value.field == "spec.selector"
    mesh_wide = _telemetry_doc("mesh-wide")
    mesh_wide["metadata"]["namespace"] = "istio-system"
    model = build_model([*shipped, (mesh_wide, "mesh-wide.yaml")])  # the root namespace's own one: fine
    plan = metric_plan(model.istio.telemetry, "destination", "parallel-ai", (("app", "user"),))
    assert "request_host" in plan.upserts["requests_total"]  # mesh-wide, under the namespace's


def test_the_full_sampling_variant_is_the_shipped_telemetry_but_for_its_sampling() -> None:
    """It replaces the shipped resource for a run: anything else in it would change the proxies' metrics."""
    (shipped,) = [d for d in load_yaml_documents(SHIPPED) if d["kind"] == "Telemetry"]
    (variant,) = load_yaml_documents(MANIFESTS_DIR / "variants" / "tracing-full-sampling.yaml")
    assert variant["spec"]["tracing"][0].pop("randomSamplingPercentage") == 100.0
    assert shipped["spec"]["tracing"][0].pop("randomSamplingPercentage") == 1.0
    assert variant == shipped
