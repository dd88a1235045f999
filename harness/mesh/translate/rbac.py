"""AuthorizationPolicy to Envoy RBAC: rules ORed, fields within a rule ANDed, as in Istio."""

from __future__ import annotations

from typing import Any, Iterable

from harness.mesh.resources import ROOT_NAMESPACE, AuthorizationPolicy, AuthzOperation, AuthzSource

RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
RBAC_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
ALLOW_FILTER = "istio.rbac.allow"
DENY_FILTER = "istio.rbac.deny"
URI_TEMPLATE = "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"
ANY = {"any": True}


def applies_to(policy: AuthorizationPolicy, labels: Iterable[tuple[str, str]], namespace: str) -> bool:
    """A policy applies in its own namespace; one in the root namespace applies in every namespace
    (Istio's AuthorizationPolicy reference: "the root namespace ... applies to all namespaces")."""
    in_scope = policy.namespace in (namespace, ROOT_NAMESPACE)
    return in_scope and set(policy.selector) <= set(labels)


def _regex(regex: str) -> dict[str, Any]:
    return {"safe_regex": {"regex": regex}}


def _string(pattern: str, prefix: str = "") -> dict[str, Any]:
    """Istio's string syntax (pilot/pkg/security/authz/matcher/string.go StringMatcherWithPrefix):
    exact, `prefix*`, `*suffix`, or `*` for presence; `prefix` is ignored for `*`."""
    if pattern == "*":
        return _regex(".+")
    if pattern.startswith("*"):
        return {"suffix": pattern[1:]} if not prefix else _regex(prefix + ".*" + pattern[1:])
    if pattern.endswith("*"):
        return {"prefix": prefix + pattern[:-1]}
    return {"exact": prefix + pattern}


def _principal_name(matcher: dict[str, Any]) -> dict[str, Any]:
    return {"authenticated": {"principal_name": matcher}}


def _namespace(namespace: str) -> dict[str, Any]:
    """Istio's srcNamespaceGenerator: `*` in the value is a wildcard, anywhere in it."""
    return _principal_name(_regex(".*/ns/" + namespace.replace("*", ".*") + "/.*"))


def _or_ids(ids: list[dict[str, Any]]) -> dict[str, Any]:
    return ids[0] if len(ids) == 1 else {"or_ids": {"ids": ids}}


def _or_rules(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return rules[0] if len(rules) == 1 else {"or_rules": {"rules": rules}}


def _source(source: AuthzSource) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if source.principals:
        parts.append(_or_ids([_principal_name(_string(p, "spiffe://")) for p in source.principals]))
    if source.namespaces:
        parts.append(_or_ids([_namespace(ns) for ns in source.namespaces]))
    for p in source.not_principals:
        parts.append({"not_id": _principal_name(_string(p, "spiffe://"))})
    for ns in source.not_namespaces:
        parts.append({"not_id": _namespace(ns)})
    if not parts:
        return ANY
    return parts[0] if len(parts) == 1 else {"and_ids": {"ids": parts}}


def _method(method: str) -> dict[str, Any]:
    return {"header": {"name": ":method", "string_match": {"exact": method}}}


def _path(path: str) -> dict[str, Any]:
    """Istio's pathGenerator: a path with {*} or {**} is an Envoy URI template ({*} -> *, {**} -> **);
    any other is a string match on the path without its query."""
    if "{*}" in path or "{**}" in path:
        template = path.replace("{**}", "**").replace("{*}", "*")
        return {"uri_template": {"name": "uri-template",
                                 "typed_config": {"@type": URI_TEMPLATE, "path_template": template}}}
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
