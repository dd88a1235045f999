"""The IstioOperator and kind Cluster schemas are derived from the tools' own sources, and refuse what
the tools refuse (issue 11, point 1).

`istioctl install` decodes `spec.values` with a protobuf JSON unmarshaler that rejects unknown fields
(istio/istio 1.30.3 operator/pkg/apis/values_types.proto; /work/shared/schemas/istio-operator-1.30.3/README.md
says so), and meshConfig likewise (istio/api mesh/v1alpha1/config.proto, proxy.proto); kind decodes its
v1alpha4 config strictly (kubernetes-sigs/kind pkg/apis/config/v1alpha4/types.go).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from harness.errors import ManifestError
from harness.platforms.kind import render
from harness.platforms.kind.settings import KindSettings
from harness.platforms.kind.sourceschema import SourceSchemaError, go_definitions, lower_camel, proto_definitions
from harness.platforms.kind.validation import UPSTREAM, istio_operator_schema, kind_cluster_schema, \
    validate_kind_document

ONE = KindSettings().cluster_specs()[0]
# The reference copies beside the checkout (CI lays shared/ next to its clone, as for the developers).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "istio-operator-1.30.3"


def _problems(doc: dict) -> str:
    with pytest.raises(ManifestError) as caught:
        validate_kind_document(doc, source="test.yaml")
    return str(caught.value)


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_values_global_trust_domain_which_istioctl_refuses_is_refused_and_not_shipped(profile: str) -> None:
    operator = render.istio_operator(profile, ONE, "1.30.3")
    assert "trustDomain" not in operator["spec"]["values"]["global"]
    assert operator["spec"]["meshConfig"]["trustDomain"] == "cluster.local"
    operator["spec"]["values"]["global"]["trustDomain"] = "cluster.local"
    assert "spec.values.global.trustDomain: unknown field; expected one of: " in _problems(operator)


def test_proxy_stats_matcher_has_no_exclusion_so_the_seeds_prod_exclusion_is_refused() -> None:
    operator = render.istio_operator("prod", ONE, "1.30.3")
    operator["spec"]["meshConfig"]["defaultConfig"]["proxyStatsMatcher"] = {"exclusionRegexps": [".*_bucket"]}
    assert ("spec.meshConfig.defaultConfig.proxyStatsMatcher.exclusionRegexps: unknown field; expected one of: "
            "inclusionPrefixes, inclusionRegexps, inclusionSuffixes") in _problems(operator)


def test_no_operator_pulls_from_the_gcr_mirror_istio_stopped_pushing_to() -> None:
    """Istio 1.30's default hub is registry.istio.io (profile-default.yaml of 1.30.3 names
    registry.istio.io/testing, which release builds replace): the harness leaves `hub` to istioctl."""
    for spec in (ONE, *KindSettings(clusters=3).cluster_specs()):
        for operator in (render.istio_operator("prod", spec, "1.30.3"), render.eastwest_operator(spec)):
            assert "gcr.io" not in repr(operator)
            assert "hub" not in operator["spec"] and "hub" not in operator["spec"]["values"].get("global", {})


def test_every_field_of_the_values_proto_is_a_field_of_the_schema_under_both_json_names() -> None:
    text = (UPSTREAM / "values_types.proto").read_text()
    body = re.search(r"^message GlobalConfig \{(.*?)^\}", text, re.S | re.M).group(1)
    names = re.findall(r"^\s+(?:repeated\s+)?[\w.]+(?:<[^>]+>)?\s+(\w+)\s*=\s*\d+", re.sub(r"//[^\n]*", "", body),
                       re.M)
    schema = istio_operator_schema()["$defs"]["istio.operator.v1alpha1.GlobalConfig"]
    assert len(names) > 40
    for name in names:
        assert name in schema["properties"]
    assert "proxy_init" in schema["properties"]  # json_name = "proxy_init" in the proto
    assert "trustDomain" not in schema["properties"]


def test_the_copies_of_the_istio_sources_are_the_shared_reference_files_unchanged() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not on this machine; upstream/README.md records the checksums")
    for name in ("values_types.proto", "types.go"):
        assert (UPSTREAM / name).read_bytes() == (SHARED / name).read_bytes()
    readme = (UPSTREAM / "README.md").read_text()
    for name in ("values_types.proto", "types.go"):
        assert hashlib.sha256((UPSTREAM / name).read_bytes()).hexdigest() in readme


def test_components_k8s_uses_kubernetes_own_service_spec() -> None:
    operator = render.eastwest_operator(ONE)
    gateway = operator["spec"]["components"]["ingressGateways"][0]
    gateway["k8s"]["service"]["typ"] = "NodePort"
    gateway["k8s"]["replicas"] = 2
    problems = _problems(operator)
    assert "spec.components.ingressGateways[0].k8s.service.typ: unknown field" in problems
    assert "spec.components.ingressGateways[0].k8s.replicas: unknown field; expected one of: affinity" in problems


def test_kind_cluster_schema_takes_kinds_enums_and_refuses_a_role_kind_does_not_know() -> None:
    config = render.kind_config(ONE.config_file)
    config["nodes"][0]["role"] = "master"
    config["networking"] = {"kubeProxyMode": "iptables", "dnsSearch": ["example.internal"]}
    problems = _problems(config)
    assert "nodes[0].role: 'master' is not one of ['control-plane', 'worker']" in problems
    assert "networking" not in problems
    assert set(kind_cluster_schema()["$defs"]["kind.Node"]["properties"]) == {
        "role", "image", "labels", "extraMounts", "extraPortMappings", "gpus", "kubeadmConfigPatches",
        "kubeadmConfigPatchesJSON6902"}


def test_the_proto_reader_maps_names_enums_maps_repeated_oneofs_and_well_known_types() -> None:
    defs = proto_definitions(['''syntax = "proto3"; package p;
        message M { string some_name = 1 [json_name = "custom"]; repeated int32 counts = 2;
          map<string, N> by_name = 3; google.protobuf.BoolValue flag = 4; E mode = 5;
          oneof choice { string a_one = 6; string b_two = 7; }
          message N { bool on = 1; } enum E { X = 0; Y = 1; } }'''], {})
    message = defs["p.M"]
    assert message["x-json-names"] == ["aOne", "bTwo", "byName", "counts", "custom", "flag", "mode"]
    assert {"some_name", "custom", "by_name", "byName"} <= set(message["properties"])
    assert message["properties"]["byName"]["additionalProperties"] == {"$ref": "#/$defs/p.M.N"}
    assert message["properties"]["flag"] == {"type": "boolean"}
    assert defs["p.M.E"]["anyOf"][0] == {"enum": ["X", "Y"]}
    assert {"required": ["aOne", "bTwo"]} in message["not"]["anyOf"]
    assert lower_camel("enable_64bit_trace_id") == "enable64bitTraceId"
    with pytest.raises(SourceSchemaError, match="Unknown"):
        proto_definitions(['package p; message M { Unknown x = 1; }'], {})


def test_the_go_reader_inlines_embedded_structs_names_tagged_ones_and_skips_dashes() -> None:
    defs = go_definitions('''package x
type A struct {
	B `json:",inline"`
	C `json:"c,omitempty"`
	Hidden string `json:"-"`
	Mode Mode `json:"mode"`
}
type B struct {
	Inner *[]string `json:"inner,omitempty"`
}
type C struct {
	Flag bool `json:"flag"`
}
type Mode string
const (
	One Mode = "one"
)
''', "x", {})
    assert set(defs["x.A"]["properties"]) == {"inner", "c", "mode"}
    assert defs["x.A"]["properties"]["mode"] == {"enum": ["one"]}
    assert defs["x.A"]["properties"]["c"] == {"$ref": "#/$defs/x.C"}
