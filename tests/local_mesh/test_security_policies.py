"""PeerAuthentication inheritance, gateway authorization, path templates and path normalisation,
each checked with real requests through real Envoy against what Istio documents or implements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.chaos.security import REFUSED, Target, attempt, mesh_ca, plaintext_attempt, sidecar, tls_context
from harness.errors import ConfigError
from harness.platforms.local.platform import LocalPlatform
from tests.local_mesh.meshkit import Mesh, free_base, settings_for

AI_AGENT = "ai-agent-v1-us-east-0"
ALLOWED = "analytics-service"  # named by the shipped ai-agent-authz policy


def _doc(kind: str, name: str, spec: dict[str, Any], namespace: str = "parallel-ai") -> dict[str, Any]:
    group = "security.istio.io/v1beta1"
    return {"apiVersion": group, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _peer(name: str, spec: dict[str, Any], namespace: str = "parallel-ai") -> dict[str, Any]:
    return _doc("PeerAuthentication", name, spec, namespace)


def _deny(name: str, rule: dict[str, Any], selector: dict[str, str] | None = None,
          namespace: str = "parallel-ai") -> dict[str, Any]:
    return _doc("AuthorizationPolicy", name, {"selector": {"matchLabels": selector or {"app": "ai-agent"}},
                                               "action": "DENY", "rules": [rule]}, namespace)


def _plaintext(mesh: Mesh, pod: str = AI_AGENT) -> str:
    return plaintext_attempt(sidecar(mesh.platform.status(), pod))


def _as(mesh: Mesh, tmp_path: Path, paths: list[str], principal: str = ALLOWED,
        pod: str = AI_AGENT) -> dict[str, str]:
    """What each POST to `paths` on the pod's sidecar answers, as the mesh identity `principal`."""
    target: Target = sidecar(mesh.platform.status(), pod)
    ca = mesh_ca(target.state_dir, tmp_path / "issued")
    context = tls_context(ca.issue_workload("parallel-ai", principal), ca.root_cert_path)
    return {path: attempt(context, target, path) for path in paths}


# --- 1. PeerAuthentication inheritance -------------------------------------------------------------

@pytest.mark.parametrize("mtls", [None, {"mode": "UNSET"}], ids=["no-mtls-field", "mode-unset"])
def test_a_workload_policy_without_a_mode_inherits_the_namespace_strict(clean_mesh: Mesh,
                                                                       mtls: dict[str, str] | None) -> None:
    """istio/istio pilot/pkg/security/authn/policy_applier.go ComposePeerAuthentication: "UNSET in
    workload-level config will be replaced with one in namespace-level"; the namespace is STRICT."""
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "ai-agent"}}}
    if mtls is not None:
        spec["mtls"] = mtls
    clean_mesh.platform.apply_documents([_peer("ai-agent-unset", spec)])
    assert _plaintext(clean_mesh) == REFUSED


def test_a_mesh_wide_policy_in_the_root_namespace_applies_when_the_namespace_leaves_the_mode_unset(
        clean_mesh: Mesh) -> None:
    """ComposePeerAuthentication: a policy without selector in the root namespace (istio-system) is the
    mesh-wide policy; the namespace policy's UNSET inherits it. PeerAuthentication reference: "mesh-wide"."""
    clean_mesh.platform.apply_documents([_peer("default", {"mtls": {"mode": "DISABLE"}}, "istio-system"),
                                         _peer("default", {})])
    assert _plaintext(clean_mesh) != REFUSED  # DISABLE: plaintext reaches the sidecar's HTTP filters
    clean_mesh.platform.apply_documents([_peer("default", {"mtls": {"mode": "STRICT"}}, "istio-system")])
    assert _plaintext(clean_mesh) == REFUSED


def test_port_level_mtls_overrides_the_workload_and_inherits_when_unset(clean_mesh: Mesh) -> None:
    """ComposePeerAuthentication: port-level modes win for their port; "UNSET port-level config will be
    replaced with config from workload-level"."""
    selector = {"matchLabels": {"app": "ai-agent"}}
    clean_mesh.platform.apply_documents([_peer("ai-agent-ports", {
        "selector": selector, "mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {8080: {"mode": "STRICT"}}})])
    assert _plaintext(clean_mesh) == REFUSED
    clean_mesh.platform.apply_documents([_peer("ai-agent-ports", {
        "selector": selector, "mtls": {"mode": "DISABLE"}, "portLevelMtls": {8080: {"mode": "UNSET"}}})])
    assert _plaintext(clean_mesh) != REFUSED


def test_port_level_mtls_on_a_port_the_sidecar_does_not_front_is_refused_naming_the_field(
        clean_mesh: Mesh) -> None:
    """Never accepted and ignored: the local sidecar fronts container port 8080 only."""
    with pytest.raises(ConfigError) as error:
        clean_mesh.platform.apply_documents([_peer("ai-agent-ports", {
            "selector": {"matchLabels": {"app": "ai-agent"}}, "portLevelMtls": {9999: {"mode": "DISABLE"}}})])
    assert "portLevelMtls.9999" in str(error.value) or error.value.field == "spec.portLevelMtls.9999"
    assert _plaintext(clean_mesh) == REFUSED, "nothing was applied"


# --- 2. AuthorizationPolicy on the ingress gateway ---------------------------------------------------

def test_a_deny_policy_on_the_ingress_gateway_holds(clean_mesh: Mesh) -> None:
    """Istio's ingress access-control task (security/authorization/authz-ingress): a policy with
    `selector: {istio: ingressgateway}` is enforced by the gateway's RBAC filter."""
    assert clean_mesh.chat().status_code == 200
    clean_mesh.platform.apply_documents([_deny("ingress-deny-chat", {"to": [{"operation": {"paths": ["/api/v1/chat"]}}]},
                                               {"istio": "ingressgateway"})])
    response = clean_mesh.chat()
    assert response.status_code == 403
    assert "RBAC" in response.text


def test_a_policy_in_the_root_namespace_applies_to_workloads_of_every_namespace(clean_mesh: Mesh,
                                                                                tmp_path: Path) -> None:
    """AuthorizationPolicy reference: a policy in the root namespace applies to all namespaces."""
    assert _as(clean_mesh, tmp_path, ["/api/v1/chat"]) == {"/api/v1/chat": "200"}
    clean_mesh.platform.apply_documents([_deny("root-deny", {"to": [{"operation": {"paths": ["/api/v1/chat"]}}]},
                                               namespace="istio-system")])
    assert _as(clean_mesh, tmp_path, ["/api/v1/chat"]) == {"/api/v1/chat": "403"}


# --- 3. Path templates, wildcards, namespace wildcards -----------------------------------------------

@pytest.mark.parametrize("pattern", ["/api/{*}/chat", "/api/{**}", "*/chat", "/api/v1/c*"])
def test_path_templates_and_wildcards_match_as_istio_does(clean_mesh: Mesh, tmp_path: Path, pattern: str) -> None:
    """istio/istio pilot/pkg/security/authz/model/generator.go pathGenerator: a path with {*}/{**} becomes
    an Envoy URI template (matcher/template.go), others a prefix/suffix/exact match (matcher/string.go)."""
    clean_mesh.platform.apply_documents([_deny("deny-pattern", {"to": [{"operation": {"paths": [pattern]}}]})])
    assert _as(clean_mesh, tmp_path, ["/api/v1/chat"]) == {"/api/v1/chat": "403"}


def test_a_path_template_does_not_match_beyond_its_segments(clean_mesh: Mesh, tmp_path: Path) -> None:
    """{*} is exactly one segment (Envoy uri_template): /api/{*}/chat does not match /api/v1/x/chat,
    so that request is not denied and reaches the app (which has no such route: 404)."""
    clean_mesh.platform.apply_documents([_deny("deny-template", {"to": [{"operation": {"paths": ["/api/{*}/chat"]}}]})])
    assert _as(clean_mesh, tmp_path, ["/api/v1/x/chat", "/api/v1/chat"]) == {"/api/v1/x/chat": "404",
                                                                             "/api/v1/chat": "403"}


def test_a_namespace_wildcard_in_source_namespaces_matches(clean_mesh: Mesh, tmp_path: Path) -> None:
    """generator.go srcNamespaceGenerator: `*` in source.namespaces is a wildcard (regex .*/ns/parallel-.*/.*)."""
    clean_mesh.platform.apply_documents([_deny("deny-ns", {"from": [{"source": {"namespaces": ["parallel-*"]}}]})])
    assert _as(clean_mesh, tmp_path, ["/api/v1/chat"]) == {"/api/v1/chat": "403"}


def test_an_invalid_path_template_is_refused_naming_the_field(clean_mesh: Mesh) -> None:
    """istio/istio pkg/config/security CheckValidPathTemplate: {**} must be the last operator."""
    with pytest.raises(ConfigError) as error:
        clean_mesh.platform.apply_documents([_deny("bad", {"to": [{"operation": {"paths": ["/a/{**}/b/{*}"]}}]})])
    assert error.value.field == "spec.rules[0].to[0].operation.paths"


# --- 4. Path normalisation (meshConfig.pathNormalization BASE) ----------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/./chat", "/api/v1/x/../chat", "/api/v1/%63hat", "/api/v1/%2E/chat"])
def test_a_deny_on_a_path_holds_against_its_normalisable_spellings(clean_mesh: Mesh, tmp_path: Path,
                                                                   path: str) -> None:
    """Istio security best practices, "path normalization in authorization policy": with BASE (Istio's
    default; pilot listener_builder.go sets normalize_path) `.`/`..` segments and unreserved %-escapes
    are normalised before the RBAC filter sees the path. Each spelling is inside the shipped ALLOW's
    /api/v1/* for this principal, so only the DENY can refuse it."""
    clean_mesh.platform.apply_documents([_deny("deny-chat", {"to": [{"operation": {"paths": ["/api/v1/chat"]}}]})])
    assert _as(clean_mesh, tmp_path, [path]) == {path: "403"}


def test_base_normalisation_keeps_double_slashes_and_escaped_slashes_as_istio_does(clean_mesh: Mesh,
                                                                                   tmp_path: Path) -> None:
    """Istio's BASE does not merge `//` (that is MERGE_SLASHES) and keeps %2F (KEEP_UNCHANGED): a DENY on
    /api/v1/chat does not match /api/v1//chat; the app has no such route (404). The best-practices page
    tells users to pick MERGE_SLASHES or write ALLOW policies for this reason."""
    clean_mesh.platform.apply_documents([_deny("deny-chat", {"to": [{"operation": {"paths": ["/api/v1/chat"]}}]})])
    assert _as(clean_mesh, tmp_path, ["/api/v1//chat"]) == {"/api/v1//chat": "404"}


def test_merge_slashes_normalisation_denies_the_double_slash_spelling(tmp_path: Path) -> None:
    """meshConfig.pathNormalization MERGE_SLASHES (HARNESS_PATH_NORMALIZATION): pilot's listener_builder.go
    adds merge_slashes, so /api/v1//chat meets the DENY on /api/v1/chat (Istio security best practices)."""
    platform = LocalPlatform(settings_for(tmp_path / "state", free_base(), path_normalization="MERGE_SLASHES"))
    status = platform.up()
    try:
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            mesh = Mesh(platform, status, client)
            mesh.platform.apply_documents([_deny("deny-chat", {"to": [{"operation": {"paths": ["/api/v1/chat"]}}]})])
            assert _as(mesh, tmp_path, ["/api/v1//chat", "/api/v1/users/u1"]) == {"/api/v1//chat": "403",
                                                                                  "/api/v1/users/u1": "404"}
    finally:
        platform.down()
