"""AuthorizationPolicy to Envoy RBAC: rules ORed, fields within a rule ANDed, as in Istio."""

from __future__ import annotations

from typing import Any, Iterable

from harness.mesh.resources import AuthorizationPolicy, AuthzOperation, AuthzSource
from harness.mesh.topology import TRUST_DOMAIN

RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
ALLOW_FILTER = "istio.rbac.allow"
DENY_FILTER = "istio.rbac.deny"
ANY = {"any": True}


def applies_to(policy: AuthorizationPolicy, labels: Iterable[tuple[str, str]], namespace: str) -> bool:
    return policy.namespace == namespace and set(policy.selector) <= set(labels)


def _string(pattern: str, prefix: str = "") -> dict[str, Any]:
    """Istio's string syntax: exact, `prefix*`, `*suffix`, or `*` for presence."""
    if pattern == "*":
        return {"safe_regex": {"regex": ".+"}}
    if pattern.endswith("*"):
        return {"prefix": prefix + pattern[:-1]}
    if pattern.startswith("*"):
        return {"suffix": pattern[1:]}
    return {"exact": prefix + pattern}


def _principal_name(matcher: dict[str, Any]) -> dict[str, Any]:
    return {"authenticated": {"principal_name": matcher}}


def _or_ids(ids: list[dict[str, Any]]) -> dict[str, Any]:
    return ids[0] if len(ids) == 1 else {"or_ids": {"ids": ids}}


def _or_rules(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return rules[0] if len(rules) == 1 else {"or_rules": {"rules": rules}}


def _source(source: AuthzSource) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if source.principals:
        parts.append(_or_ids([_principal_name(_string(p, "spiffe://")) for p in source.principals]))
    if source.namespaces:
        parts.append(_or_ids([_principal_name({"prefix": f"spiffe://{TRUST_DOMAIN}/ns/{ns}/"})
                              for ns in source.namespaces]))
    for p in source.not_principals:
        parts.append({"not_id": _principal_name(_string(p, "spiffe://"))})
    for ns in source.not_namespaces:
        parts.append({"not_id": _principal_name({"prefix": f"spiffe://{TRUST_DOMAIN}/ns/{ns}/"})})
    if not parts:
        return ANY
    return parts[0] if len(parts) == 1 else {"and_ids": {"ids": parts}}


def _method(method: str) -> dict[str, Any]:
    return {"header": {"name": ":method", "string_match": {"exact": method}}}


def _path(path: str) -> dict[str, Any]:
    if path == "*":
        return ANY
    return {"url_path": {"path": _string(path)}}


def _operation(operation: AuthzOperation) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if operation.methods:
        parts.append(_or_rules([_method(m) for m in operation.methods]))
    if operation.paths:
        parts.append(_or_rules([_path(p) for p in operation.paths]))
    parts += [{"not_rule": _method(m)} for m in operation.not_methods]
    parts += [{"not_rule": _path(p)} for p in operation.not_paths]
    if not parts:
        return ANY
    return parts[0] if len(parts) == 1 else {"and_rules": {"rules": parts}}


def rbac_rules(policies: list[AuthorizationPolicy], action: str) -> dict[str, Any] | None:
    """One Envoy RBAC rule set for all policies of one action; None when there are none."""
    chosen = [p for p in policies if p.action == action]
    if not chosen:
        return None
    envoy_policies: dict[str, Any] = {}
    for policy in chosen:
        for index, rule in enumerate(policy.rules):
            envoy_policies[f"ns[{policy.namespace}]-policy[{policy.name}]-rule[{index}]"] = {
                "permissions": [_operation(op) for op in rule.operations] or [ANY],
                "principals": [_source(src) for src in rule.sources] or [ANY],
            }
    return {"action": action, "policies": envoy_policies}


def per_route_rbac(policies: list[AuthorizationPolicy]) -> dict[str, Any]:
    """typed_per_filter_config entries for the inbound route: DENY first, then ALLOW."""
    config: dict[str, Any] = {}
    for filter_name, action in ((DENY_FILTER, "DENY"), (ALLOW_FILTER, "ALLOW")):
        rules = rbac_rules(policies, action)
        if rules is not None:
            config[filter_name] = {"@type": RBAC_PER_ROUTE, "rbac": {"rules": rules}}
    return config


def rbac_filters() -> list[dict[str, Any]]:
    """The inbound HTTP filters; empty base configs enforce nothing until a route overrides them."""
    return [{"name": name, "typed_config": {"@type": RBAC}} for name in (DENY_FILTER, ALLOW_FILTER)]
