"""PeerAuthentication composition, AuthorizationPolicy matchers and path normalisation, as Istio's pilot
translates them; what the local translator cannot honour is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ConfigError
from harness.mesh.resources import parse_istio
from harness.mesh.translate.authn import compose_mtls
from harness.mesh.translate.normalization import path_normalization
from harness.mesh.translate.rbac import rbac_rules

LABELS = (("app", "ai-agent"), ("version", "v1"))


def _parse(kind: str, spec: dict[str, Any], namespace: str = "parallel-ai", name: str = "p") -> Any:
    doc = {"apiVersion": "security.istio.io/v1beta1", "kind": kind,
           "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    return parse_istio([(doc, "policy.yaml")])


def _peers(*specs: tuple[str, dict[str, Any]]) -> list[Any]:
    return [_parse("PeerAuthentication", spec, ns, f"p{i}").peer_authentications[0]
            for i, (ns, spec) in enumerate(specs)]


@pytest.mark.parametrize(("policies", "mode"), [
    ([], "PERMISSIVE"),
    ([("istio-system", {"mtls": {"mode": "STRICT"}})], "STRICT"),
    ([("istio-system", {"mtls": {"mode": "STRICT"}}), ("parallel-ai", {})], "STRICT"),
    ([("istio-system", {"mtls": {"mode": "STRICT"}}), ("parallel-ai", {"mtls": {"mode": "DISABLE"}})], "DISABLE"),
    ([("parallel-ai", {"mtls": {"mode": "STRICT"}}),
      ("parallel-ai", {"selector": {"matchLabels": {"app": "ai-agent"}}})], "STRICT"),
    ([("parallel-ai", {"mtls": {"mode": "STRICT"}}),
      ("parallel-ai", {"selector": {"matchLabels": {"app": "ai-agent"}}, "mtls": {"mode": "UNSET"}})], "STRICT"),
    ([("parallel-ai", {"mtls": {"mode": "STRICT"}}),
      ("parallel-ai", {"selector": {"matchLabels": {"app": "user"}}, "mtls": {"mode": "DISABLE"}})], "STRICT"),
    ([("other", {"mtls": {"mode": "DISABLE"}})], "PERMISSIVE"),
])
def test_peer_authentication_composes_mesh_namespace_and_workload_as_pilot_does(policies: list[Any],
                                                                                 mode: str) -> None:
    """istio/istio pilot/pkg/security/authn/policy_applier.go ComposePeerAuthentication."""
    assert compose_mtls(_peers(*policies), "parallel-ai", LABELS).mode == mode


def test_an_unset_port_level_mode_inherits_the_workload_result() -> None:
    """ComposePeerAuthentication: "UNSET port-level config will be replaced with config from workload-level"."""
    peers = _peers(("istio-system", {"mtls": {"mode": "STRICT"}}),
                   ("parallel-ai", {"selector": {"matchLabels": {"app": "ai-agent"}},
                                    "portLevelMtls": {8080: {"mode": "UNSET"}, 9000: {"mode": "DISABLE"}}}))
    effective = compose_mtls(peers, "parallel-ai", LABELS)
    assert (effective.for_port(8080), effective.for_port(9000)) == ("STRICT", "DISABLE")


@pytest.mark.parametrize(("namespace", "spec", "field"), [
    ("parallel-ai", {"portLevelMtls": {8080: {"mode": "STRICT"}}}, "spec.portLevelMtls"),
    ("istio-system", {"selector": {"matchLabels": {"app": "ai-agent"}}}, "spec.selector"),
    ("parallel-ai", {"mtls": {"mode": "LOOSE"}}, "spec.mtls.mode"),
    ("parallel-ai", {"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"http": {"mode": "STRICT"}}},
     "spec.portLevelMtls.http"),
])
def test_peer_authentication_the_translator_cannot_honour_is_refused_naming_the_field(
        namespace: str, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as error:
        _parse("PeerAuthentication", spec, namespace)
    assert error.value.field == field


@pytest.mark.parametrize("path", ["/a/{**}/b/{*}", "/a/{x}", "/a/b{*}", "/a/{*}/[x]"])
def test_invalid_path_templates_are_refused_as_istio_validation_does(path: str) -> None:
    """istio/istio pkg/config/security CheckValidPathTemplate."""
    with pytest.raises(ConfigError) as error:
        _parse("AuthorizationPolicy", {"rules": [{"to": [{"operation": {"notPaths": [path]}}]}]})
    assert error.value.field == "spec.rules[0].to[0].operation.notPaths"


def _permission(path: str) -> dict[str, Any]:
    policy = _parse("AuthorizationPolicy", {"rules": [{"to": [{"operation": {"paths": [path]}}]}]})
    rules = rbac_rules(list(policy.authorization_policies), "ALLOW")
    assert rules is not None
    (envoy_policy,) = rules["policies"].values()
    return envoy_policy["permissions"][0]


def test_path_templates_become_envoy_uri_templates() -> None:
    """pilot/pkg/security/authz/matcher/template.go: {*} -> *, {**} -> **."""
    permission = _permission("/api/{*}/chat/{**}")
    assert permission["uri_template"]["typed_config"]["path_template"] == "/api/*/chat/**"


@pytest.mark.parametrize(("path", "matcher"), [
    ("/api/v1/*", {"prefix": "/api/v1/"}), ("*/chat", {"suffix": "/chat"}), ("*", {"safe_regex": {"regex": ".+"}}),
    ("/health", {"exact": "/health"}),
])
def test_plain_paths_are_string_matches_on_the_path_without_query(path: str, matcher: dict[str, Any]) -> None:
    """pilot/pkg/security/authz/matcher/string.go StringMatcher; Istio's PathMatcher is url_path."""
    assert _permission(path) == {"url_path": {"path": matcher}}


def test_source_namespace_wildcards_and_principal_suffixes_are_regexes_as_istio_generates() -> None:
    """generator.go srcNamespaceGenerator and StringMatcherWithPrefix("spiffe://")."""
    policy = _parse("AuthorizationPolicy", {"rules": [{"from": [{"source": {
        "namespaces": ["parallel-*"], "principals": ["*/sa/api-gateway"]}}]}]})
    rules = rbac_rules(list(policy.authorization_policies), "ALLOW")
    assert rules is not None
    (envoy_policy,) = rules["policies"].values()
    ids = envoy_policy["principals"][0]["and_ids"]["ids"]
    assert ids[0] == {"authenticated": {"principal_name": {"safe_regex": {"regex": "spiffe://.*/sa/api-gateway"}}}}
    assert ids[1] == {"authenticated": {"principal_name": {"safe_regex": {"regex": ".*/ns/parallel-.*/.*"}}}}


@pytest.mark.parametrize(("mode", "options"), [
    ("NONE", {"normalize_path": False, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}),
    ("BASE", {"normalize_path": True, "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}),
    ("MERGE_SLASHES", {"normalize_path": True, "merge_slashes": True,
                       "path_with_escaped_slashes_action": "KEEP_UNCHANGED"}),
    ("DECODE_AND_MERGE_SLASHES", {"normalize_path": True, "merge_slashes": True,
                                  "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD"}),
])
def test_path_normalization_sets_what_pilot_sets(mode: str, options: dict[str, Any]) -> None:
    """istio/istio pilot/pkg/networking/core/listener_builder.go buildHTTPConnectionManager."""
    assert path_normalization(mode) == options


def test_an_unknown_path_normalization_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        path_normalization("LOOSE")
    assert error.value.field == "meshConfig.pathNormalization.normalization"
