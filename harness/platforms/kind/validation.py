"""Strict validation of everything the kind platform applies or hands to a tool.

Kubernetes kinds and Istio CRD kinds go to harness.mesh.schema (kubernetes-validate strict; the
bundled Istio CRDs with unknown fields rejected). The two inputs that have no schema there are checked
against schemas derived from the very sources the tools decode them with (sourceschema.py; the sources
are in ./upstream):
- IstioOperator (install.istio.io/v1alpha1), `istioctl install`'s input: the spec's Go types
  (upstream/types.go), `spec.values` from upstream/values_types.proto and `spec.meshConfig` from
  upstream/mesh_config.proto, all closed as istioctl's strict decoding is (so `values.global.trustDomain`,
  which istioctl refuses, is refused here). Kubernetes types inside `components.*.k8s` are
  kubernetes-validate's own definitions; Istio networking types inside meshConfig are the bundled CRDs'.
- kind's Cluster (kind.x-k8s.io/v1alpha4), from upstream/kind_v1alpha4_types.go (kind decodes strictly).
On top, the harness's own rules, kept apart and named as such: host ports and the API server listen on
127.0.0.1 only.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

from harness.errors import ManifestError
from harness.mesh import schema as mesh_schema
from harness.mesh.schema import KUBERNETES_VERSION, validate_document
from harness.platforms.kind.sourceschema import Schema, go_definitions, proto_definitions, ref

ISTIO_OPERATOR_API = "install.istio.io/v1alpha1"
KIND_CLUSTER_API = "kind.x-k8s.io/v1alpha4"
UPSTREAM = Path(__file__).parent / "upstream"
LOOPBACK = "127.0.0.1"
# Go packages of types.go -> the Kubernetes OpenAPI definition prefix (k8s.io/api ... as imported there).
_GO_PACKAGES = {"corev1": "io.k8s.api.core.v1", "appsv1": "io.k8s.api.apps.v1",
                "autoscaling": "io.k8s.api.autoscaling.v2", "policy": "io.k8s.api.policy.v1",
                "metav1": "io.k8s.apimachinery.pkg.apis.meta.v1"}
# istio/api types that meshConfig uses from other packages: where the same message sits in a bundled CRD.
_ISTIO_TYPES = {
    "istio.networking.v1alpha3.ClientTLSSettings": ("DestinationRule", ("trafficPolicy", "tls")),
    "istio.networking.v1alpha3.LocalityLoadBalancerSetting": (
        "DestinationRule", ("trafficPolicy", "loadBalancer", "localityLbSetting")),
    "istio.networking.v1alpha3.ConnectionPoolSettings.TCPSettings.TcpKeepalive": (
        "DestinationRule", ("trafficPolicy", "connectionPool", "tcp", "tcpKeepalive")),
    "istio.networking.v1alpha3.HTTPRetry": ("VirtualService", ("http", "[]", "retries")),
    "istio.networking.v1alpha3.ReadinessProbe": ("WorkloadGroup", ("probe",)),
    "istio.networking.v1beta1.ProxyImage": ("ProxyConfig", ("image",)),
}


def _crd_subschema(kind: str, path: tuple[str, ...]) -> Schema:
    versions = mesh_schema._istio_crds()[("networking.istio.io", kind)]  # noqa: SLF001 -- the one CRD reader
    node = mesh_schema._strict(next(iter(versions.values())))["properties"]["spec"]  # noqa: SLF001
    for step in path:
        node = node["items"] if step == "[]" else node["properties"][step]
    return node


@functools.cache
def _kubernetes_defs() -> dict[str, Schema]:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    with (base / f"v{KUBERNETES_VERSION}.0-local-strict" / "_definitions.json").open(encoding="utf-8") as stream:
        return json.load(stream)["$defs"]


@functools.cache
def istio_operator_schema() -> Schema:
    """The IstioOperator as istioctl 1.30.3 decodes it, derived from upstream/ (see the module docstring)."""
    go_text = (UPSTREAM / "types.go").read_text(encoding="utf-8")
    externals: dict[str, Schema] = {
        f"{alias}.{name}": ref(f"{_GO_PACKAGES[alias]}.{name}")
        for alias, name in re.findall(r"\b(corev1|appsv1|autoscaling|policy|metav1)\.(\w+)", go_text)}
    # TypeMeta is inlined (`json:",inline"`); BoolValue decodes from a JSON bool (its UnmarshalJSON).
    externals["metav1.TypeMeta"] = {"properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}}
    externals["BoolValue"] = {"type": "boolean"}
    proto_externals: dict[str, Schema] = {name: _crd_subschema(*where) for name, where in _ISTIO_TYPES.items()}
    proto_externals["k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelector"] = ref(
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
    # values_types.proto's IntOrString is decoded from a JSON number or string (Istio's own UnmarshalJSON).
    proto_externals["istio.operator.v1alpha1.IntOrString"] = {"type": ["integer", "string"]}
    defs = proto_definitions([(UPSTREAM / "values_types.proto").read_text(encoding="utf-8"),
                              (UPSTREAM / "mesh_config.proto").read_text(encoding="utf-8")], proto_externals)
    defs |= go_definitions(go_text, "operator", externals, overrides={
        ("IstioOperatorSpec", "meshConfig"): ref("istio.mesh.v1alpha1.MeshConfig"),
        ("IstioOperatorSpec", "values"): ref("istio.operator.v1alpha1.Values")})
    return {"$defs": {**_kubernetes_defs(), **defs},
            "allOf": [ref("operator.IstioOperator"),
                      {"properties": {"apiVersion": {"const": ISTIO_OPERATOR_API}, "kind": {"const": "IstioOperator"}},
                       "required": ["apiVersion", "kind", "metadata", "spec"]}]}


@functools.cache
def kind_cluster_schema() -> Schema:
    """kind's v1alpha4 Cluster config, derived from upstream/kind_v1alpha4_types.go."""
    defs = go_definitions((UPSTREAM / "kind_v1alpha4_types.go").read_text(encoding="utf-8"), "kind", {})
    return {"$defs": defs, "allOf": [ref("kind.Cluster"), {
        "properties": {"apiVersion": {"const": KIND_CLUSTER_API}, "kind": {"const": "Cluster"}},
        "required": ["apiVersion", "kind"]}]}


@functools.cache
def _validator(which: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(istio_operator_schema() if which == "operator" else kind_cluster_schema())


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f'["{part}"]' if "." in str(part) or "/" in str(part)
                                                           else (f".{part}" if text else str(part)))
    return text or "(document)"


def _describe(error: jsonschema.ValidationError) -> list[str]:
    where = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        expected = error.schema.get("x-json-names") or sorted(known)
        return [f"{_path([*where, key])}: unknown field; expected one of: {', '.join(expected)}"
                for key in error.instance if key not in known]
    if error.validator == "required" and isinstance(error.instance, dict):
        return [f"{_path([*where, key])}: required field is missing"
                for key in error.validator_value if key not in error.instance]
    if error.validator == "anyOf":
        names = [value for option in error.validator_value for value in option.get("enum", [])]
        if names:
            return [f"{_path(where)}: expected one of {', '.join(map(str, names))} (or its number), "
                    f"got {error.instance!r}"]
    if error.validator == "not" and isinstance(error.instance, dict):
        return [f"{_path(where)}: at most one of a oneof's fields may be set, got {sorted(error.instance)}"]
    return [f"{_path(where)}: {error.message}"]


def _problems(which: str, doc: dict) -> list[str]:
    problems: list[str] = []
    for error in sorted(_validator(which).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        problems += _describe(error)
    if which == "cluster":
        problems += _loopback_only(doc)
    return problems


def _loopback_only(doc: dict) -> list[str]:
    """The harness's rule, not kind's: nothing it creates listens beyond the host's loopback."""
    problems = []
    nodes = doc.get("nodes") if isinstance(doc.get("nodes"), list) else []
    for n, node in enumerate(node for node in nodes if isinstance(node, dict)):
        mappings = node.get("extraPortMappings") if isinstance(node.get("extraPortMappings"), list) else []
        for m, mapping in enumerate(mapping for mapping in mappings if isinstance(mapping, dict)):
            if mapping.get("listenAddress") != LOOPBACK:
                problems.append(f"nodes[{n}].extraPortMappings[{m}].listenAddress: the harness maps host ports on "
                                f"{LOOPBACK} only, got {mapping.get('listenAddress')!r}")
    networking = doc.get("networking") if isinstance(doc.get("networking"), dict) else {}
    address = networking.get("apiServerAddress")
    if address not in (None, LOOPBACK):
        problems.append(f"networking.apiServerAddress: the harness keeps the API server on {LOOPBACK}, got {address!r}")
    return problems


def validate_kind_document(doc: Any, *, source: str | Path, index: int = 0) -> None:
    """Validate one document the kind platform uses; ManifestError names the source and each field."""
    api_version = doc.get("apiVersion") if isinstance(doc, dict) else None
    if api_version == ISTIO_OPERATOR_API or (isinstance(doc, dict) and doc.get("kind") == "IstioOperator"):
        problems = _problems("operator", doc)
    elif api_version == KIND_CLUSTER_API or (isinstance(doc, dict) and doc.get("kind") == "Cluster"
                                             and "kind.x-k8s.io" in str(api_version)):
        problems = _problems("cluster", doc)
    else:
        validate_document(doc, file=Path(source), index=index)
        return
    if problems:
        label = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name') or doc.get('name') or '?'}"
        raise ManifestError(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:\n  "
                            + "\n  ".join(f"document {index} ({label}): {p}" for p in problems), file=source)
