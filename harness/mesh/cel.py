"""CEL expressions of Telemetry tagOverrides: parsed with cel-python, checked, translated for local Envoy.

Istio's stats plugin (istio/proxy `source/extensions/filters/http/istio_stats/istio_stats.cc`) parses
every `tagOverrides[].value` with the CEL parser and evaluates it per request against Envoy's attributes
(https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/advanced/attributes) plus what the
plugin adds itself: `node` (the proxy's Envoy Node, with Istio's node metadata) and the peer objects
`downstream_peer` / `upstream_peer` (peer metadata from the metadata exchange, read from filter state).
An expression that does not parse is dropped by the plugin and the tag disappears from every metric
(`getOrCreateExpression` returns nothing and `overrideTags` skips the tag); one that fails to evaluate
yields "unknown". Both are silent on Istio, so here they are errors before anything starts.

`check` parses an expression and rejects names the stats plugin cannot resolve: an unknown top-level
attribute, an unknown field of a fixed attribute group (`request.prot`), an unknown function.
`to_envoy_format` translates the supported subset into an Envoy 1.40 substitution format string for the
local proxies' stats access logger: literals, `node` values (constants of the proxy), peer fields (the
peer-metadata header read into dynamic metadata, or the upstream host's metadata), and any other
expression over Envoy's own attributes as Envoy's `%CEL(...)%` formatter. Anything else is refused.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping

from lark import Token, Tree

Reporter = Literal["source", "destination"]

# Envoy's attribute groups (fixed field sets), as documented for Envoy 1.40.
_ENVOY: dict[str, frozenset[str] | None] = {
    "request": frozenset({"path", "url_path", "host", "scheme", "method", "headers", "referer", "useragent",
                          "time", "id", "protocol", "query", "duration", "size", "total_size"}),
    "response": frozenset({"code", "code_details", "flags", "grpc_status", "headers", "trailers", "size",
                           "total_size", "backend_latency"}),
    "source": frozenset({"address", "port"}),
    "destination": frozenset({"address", "port"}),
    "connection": frozenset({"id", "mtls", "requested_server_name", "tls_version", "subject_local_certificate",
                             "subject_peer_certificate", "dns_san_local_certificate", "dns_san_peer_certificate",
                             "uri_san_local_certificate", "uri_san_peer_certificate",
                             "sha256_peer_certificate_digest", "transport_failure_reason", "termination_details"}),
    "upstream": frozenset({"address", "port", "tls_version", "subject_local_certificate", "subject_peer_certificate",
                           "dns_san_local_certificate", "dns_san_peer_certificate", "uri_san_local_certificate",
                           "uri_san_peer_certificate", "sha256_peer_certificate_digest", "local_address",
                           "transport_failure_reason", "request_attempt_count", "cx_pool_ready_duration",
                           "locality", "num_endpoints"}),
    "xds": frozenset({"node", "cluster_name", "cluster_metadata", "listener_direction", "listener_metadata",
                      "route_name", "route_metadata", "virtual_host_name", "virtual_host_metadata",
                      "upstream_host_metadata", "upstream_host_name", "filter_chain_name"}),
    "metadata": None,  # dynamic metadata: any namespace
    "filter_state": None,  # any filter state key
}
# What Istio's stats plugin adds: the proxy's Node, and the peers from the metadata exchange (the fields
# of the WorkloadMetadataObject of istio/proxy extensions/common/metadata_object.h, and of the older
# FlatNode of extensions/common/node_info.fbs).
_PEER = frozenset({"namespace", "cluster", "service", "revision", "app", "version", "workload", "type", "name",
                   "labels", "identity", "region", "availability_zone", "owner", "workload_name",
                   "platform_metadata", "istio_version", "mesh_id", "app_containers", "cluster_id", "instance_ips"})
_ISTIO: dict[str, frozenset[str] | None] = {
    "node": frozenset({"id", "cluster", "metadata", "locality", "user_agent_name", "user_agent_version",
                       "user_agent_build_version", "extensions", "client_features", "listening_addresses",
                       "dynamic_parameters"}),
    "downstream_peer": _PEER,
    "upstream_peer": _PEER,
}
ATTRIBUTES: dict[str, frozenset[str] | None] = {**_ENVOY, **_ISTIO}

# CEL's standard functions and macros (cel-spec langdef), which the stats plugin registers.
FUNCTIONS = frozenset({"has", "size", "string", "int", "uint", "double", "bytes", "bool", "duration",
                       "timestamp", "type", "dyn", "matches"})
METHODS = frozenset({"startsWith", "endsWith", "contains", "matches", "size", "getFullYear", "getMonth",
                     "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
                     "getSeconds", "getMilliseconds"})
MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})

_PASS_THROUGH = {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary",
                 "member", "primary", "paren_expr"}


class CelError(ValueError):
    """An expression that does not parse, names something the stats plugin lacks, or cannot be translated."""


@dataclass(frozen=True)
class Chain:
    """An attribute reference: root identifier and the fields or constant keys after it."""

    root: str
    path: tuple[str | int, ...]


@lru_cache(maxsize=1)
def _parser() -> Any:
    """cel-python's parser (celpy/celparser.py, which needs only lark), without the `celpy` package.

    `celpy.Environment().compile(text)` is `CELParser(tree_class=lark.Tree).parse(text)`, but importing
    the package also loads its evaluator (pendulum, dateutil, re2, ...), which nothing here runs: ~7 MB
    RSS more in the local daemon and in every CLI process that reads a Telemetry resource.
    """
    spec = importlib.util.find_spec("celpy")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("cel-python (celpy) is not installed")
    location = Path(list(spec.submodule_search_locations)[0]) / "celparser.py"
    module_spec = importlib.util.spec_from_file_location("harness_celpy_celparser", location)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 2500))  # what celpy.Environment() sets for CEL's depths
    return module.CELParser()


def load_parser() -> None:
    """Build cel-python's parser now: it takes a quarter of a second, once per process (a run's report
    reads the Telemetry resources again), so a thread can do it ahead of need."""
    _parser()


@lru_cache(maxsize=256)
def _parse(text: str) -> Tree:
    if not isinstance(text, str) or not text.strip():
        raise CelError("an empty expression (a CEL expression is expected, e.g. string(response.code))")
    parser = _parser()  # cel-python: only when a Telemetry resource is read
    try:
        return parser.parse(text)
    except Exception as exc:  # celpy raises CELParseError (and lark errors) with the position
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CelError(f"not a CEL expression: {text!r} ({first})") from exc


def _unwrap(node: Any) -> Any:
    while (isinstance(node, Tree) and node.data in _PASS_THROUGH and len(node.children) == 1
           and isinstance(node.children[0], Tree)):
        node = node.children[0]
    return node


def _literal(node: Any) -> Any:
    """The value of a string or int literal node, else None."""
    node = _unwrap(node)
    if isinstance(node, Tree) and node.data == "literal" and node.children:
        token = node.children[0]
        if token.type == "STRING_LIT":
            import ast
            try:
                return ast.literal_eval(str(token))
            except (ValueError, SyntaxError):
                return None
        if token.type == "INT_LIT":
            return int(str(token))
    return None


def _chain(node: Any) -> Chain | None:
    node = _unwrap(node)
    if not isinstance(node, Tree):
        return None
    if node.data == "ident":
        return Chain(str(node.children[0]), ())
    if node.data == "member_dot":
        base = _chain(node.children[0])
        return None if base is None else Chain(base.root, base.path + (str(node.children[1]),))
    if node.data == "member_index":
        base = _chain(node.children[0])
        key = _literal(node.children[1])
        return None if base is None or key is None else Chain(base.root, base.path + (key,))
    return None


def _check_chain(chain: Chain, bound: frozenset[str], text: str) -> None:
    if chain.root in bound:
        return
    if chain.root not in ATTRIBUTES:
        raise CelError(f"{text!r}: unknown attribute {chain.root!r}; Istio's stats plugin offers "
                       f"{', '.join(sorted(ATTRIBUTES))}")
    fields = ATTRIBUTES[chain.root]
    if fields is not None and chain.path and chain.path[0] not in fields:
        raise CelError(f"{text!r}: {chain.root} has no attribute {chain.path[0]!r}; expected one of "
                       f"{', '.join(sorted(fields))}")


def _walk(node: Any, bound: frozenset[str], text: str, roots: set[str], calls: set[str]) -> None:
    if not isinstance(node, Tree):
        return
    node = _unwrap(node)
    if not isinstance(node, Tree):
        return
    if node.data in ("ident", "member_dot", "member_index"):
        chain = _chain(node)
        if chain is not None:
            _check_chain(chain, bound, text)
            if chain.root not in bound:
                roots.add(chain.root)
            return
    if node.data in ("dot_ident", "dot_ident_arg"):
        raise CelError(f"{text!r}: a leading-dot name is not an attribute Istio's stats plugin offers")
    if node.data == "ident_arg":
        name = str(node.children[0])
        if name not in FUNCTIONS:
            raise CelError(f"{text!r}: unknown function {name}(); CEL offers {', '.join(sorted(FUNCTIONS))}")
        calls.add(name)
        for child in node.children[1:]:
            _walk(child, bound, text, roots, calls)
        return
    if node.data == "member_dot_arg":
        target, method = node.children[0], str(node.children[1])
        args = list(node.children[2].children) if len(node.children) > 2 else []
        _walk(target, bound, text, roots, calls)
        calls.add(method)
        if method in MACROS:
            var = _chain(args[0]) if args else None
            if var is None or var.path:
                raise CelError(f"{text!r}: {method}() needs a variable name as its first argument")
            for arg in args[1:]:
                _walk(arg, bound | {var.root}, text, roots, calls)
            return
        if method not in METHODS:
            raise CelError(f"{text!r}: unknown method .{method}(); CEL offers {', '.join(sorted(METHODS | MACROS))}")
        for arg in args:
            _walk(arg, bound, text, roots, calls)
        return
    for child in node.children:
        _walk(child, bound, text, roots, calls)


@dataclass(frozen=True)
class Expression:
    """A checked CEL expression: its text and the attribute roots and functions it uses."""

    text: str
    roots: frozenset[str]
    calls: frozenset[str]


def check(text: Any) -> Expression:
    """Parse `text` as CEL and check its names against the attributes the stats plugin offers."""
    if not isinstance(text, str):
        raise CelError(f"expected a CEL expression (a string), got {type(text).__name__} {text!r}")
    return _checked(text)


@lru_cache(maxsize=1024)
def _checked(text: str) -> Expression:
    tree = _parse(text)
    roots: set[str] = set()
    calls: set[str] = set()
    _walk(tree, frozenset(), text, roots, calls)
    return Expression(text=text, roots=frozenset(roots), calls=frozenset(calls))


# -- translation for the local proxies -------------------------------------------------------------

# Peer fields as the local mesh carries them: the caller's sidecar sends its workload's metadata in a
# header, and the receiving sidecar's inbound route that matched it (and the certificate's identity)
# carries it as route metadata (namespace PEER_METADATA_NAMESPACE), one key per field; its identity is
# the peer certificate's; the upstream endpoints carry the same keys in their `istio` host metadata.
PEER_KEYS = {"app": "app", "version": "version", "workload": "workload", "workload_name": "workload",
             "namespace": "namespace", "service": "canonical_service", "revision": "canonical_revision",
             "cluster": "cluster", "cluster_id": "cluster", "identity": "identity"}
PEER_LABEL_KEYS = {"app": "app", "version": "version", "service.istio.io/canonical-name": "canonical_service",
                   "service.istio.io/canonical-revision": "canonical_revision"}
PEER_METADATA_NAMESPACE = "istio.peer"
_STRING_CALL = re.compile(r"^\s*string\s*\((.*)\)\s*$", re.S)


def _escape(value: str) -> str:
    return value.replace("%", "%%")


def _peer_key(chain: Chain) -> str | None:
    if len(chain.path) == 1 and chain.path[0] in PEER_KEYS:
        return PEER_KEYS[str(chain.path[0])]
    if len(chain.path) == 2 and chain.path[0] == "labels" and chain.path[1] in PEER_LABEL_KEYS:
        return PEER_LABEL_KEYS[str(chain.path[1])]
    return None


# Attributes Envoy's own command operators give directly (cheaper per request than %CEL()%).
_NATIVE = {
    ("request", "protocol"): "%PROTOCOL%", ("request", "host"): "%REQ(:AUTHORITY)%",
    ("request", "method"): "%REQ(:METHOD)%", ("request", "path"): "%REQ(:PATH)%",
    ("request", "scheme"): "%REQ(:SCHEME)%", ("request", "id"): "%REQ(X-REQUEST-ID)%",
    ("request", "useragent"): "%REQ(USER-AGENT)%", ("request", "referer"): "%REQ(REFERER)%",
    ("response", "code"): "%RESPONSE_CODE%", ("response", "code_details"): "%RESPONSE_CODE_DETAILS%",
    ("response", "grpc_status"): "%GRPC_STATUS_NUMBER%",
    ("destination", "port"): "%DOWNSTREAM_LOCAL_PORT%", ("source", "port"): "%DOWNSTREAM_REMOTE_PORT%",
    ("connection", "uri_san_peer_certificate"): "%DOWNSTREAM_PEER_URI_SAN%",
    ("connection", "requested_server_name"): "%REQUESTED_SERVER_NAME%",
    ("xds", "cluster_name"): "%UPSTREAM_CLUSTER_RAW%", ("xds", "route_name"): "%ROUTE_NAME%",
}
# Istio's cluster metadata `istio.services[0]` (Pilot's); the local clusters carry its keys flat as well.
_SERVICES = ("xds", "cluster_metadata", "filter_metadata", "istio", "services", 0)


def _native(chain: Chain) -> str | None:
    key = (chain.root, *chain.path)
    if key in _NATIVE:
        return _NATIVE[key]  # type: ignore[index]
    if len(key) == 3 and key[:2] in (("request", "headers"), ("response", "headers")) and isinstance(key[2], str):
        return f"%{'REQ' if key[0] == 'request' else 'RESP'}({key[2]})%"
    if len(key) == 7 and key[:6] == _SERVICES and key[6] in ("host", "name", "namespace"):
        return f"%CLUSTER_METADATA(istio:{key[6]})%"
    if (len(key) == 5 and key[:3] == ("xds", "cluster_metadata", "filter_metadata")
            and all(isinstance(k, str) and ":" not in k and ")" not in k for k in key[3:])):
        return f"%CLUSTER_METADATA({key[3]}:{key[4]})%"
    return None


def to_envoy_format(text: str, *, reporter: Reporter, node: Mapping[str, Any]) -> str:
    """The Envoy substitution format that gives this expression's value on a local proxy.

    `node` is the proxy's Envoy Node as a mapping (id, cluster, metadata with Istio's NAME, NAMESPACE,
    WORKLOAD_NAME, CLUSTER_ID, LABELS). A peer field on the side that has no such peer is "unknown",
    as Istio's evaluation error is. Raises CelError for what cannot be translated.
    """
    if not isinstance(text, str):
        check(text)  # the error naming what was expected
    translated, node_path = _translation(text, reporter)
    if node_path is None:
        return translated
    value: Any = node
    for key in node_path:
        if not isinstance(value, Mapping) or key not in value:
            return "unknown"  # Istio: a missing key is an evaluation error, and the tag reads "unknown"
        value = value[key]
    if not isinstance(value, (str, int)):
        raise CelError(f"{text!r}: node.{'.'.join(map(str, node_path))} is not a string on the local mesh")
    return _escape(str(value))


@lru_cache(maxsize=1024)
def _translation(text: str, reporter: Reporter) -> tuple[str, tuple[Any, ...] | None]:
    """What `text` is on the local proxies, worked out once per expression and reporter (a push
    translates each override for every proxy and metric): the format, or the path into the proxy's
    own node (`node.*`, filled per proxy by to_envoy_format)."""
    expr = check(text)
    inner = text
    match = _STRING_CALL.match(text)
    if match and _chain(_parse(match.group(1))) is not None:  # string(attr): the formatter prints any value
        inner = match.group(1)
    tree = _parse(inner)
    literal = _literal(tree)
    if isinstance(literal, str):
        return _escape(literal), None
    chain = _chain(tree)
    if chain is not None and chain.root == "node":
        return "", chain.path
    return _format(text, inner, expr, chain, reporter), None


def _format(text: str, inner: str, expr: Expression, chain: Chain | None, reporter: Reporter) -> str:
    if chain is not None:
        native = _native(chain)
        if native is not None:
            return native
    if chain is not None and chain.root in ("downstream_peer", "upstream_peer"):
        key = _peer_key(chain)
        if key is None:
            raise CelError(f"{text!r}: the local mesh carries only these peer fields: "
                           f"{', '.join(sorted(PEER_KEYS))}, labels['app'|'version'|canonical labels]")
        if chain.root == "downstream_peer":
            if reporter != "destination":
                return "unknown"
            if key == "identity":  # the certificate's, which the peer metadata was checked against
                return "%DOWNSTREAM_PEER_URI_SAN%"
            return f"%METADATA(ROUTE:{PEER_METADATA_NAMESPACE}:{key})%"
        return f"%METADATA(UPSTREAM_HOST:istio:{key})%" if reporter == "source" else "unknown"
    istio_only = expr.roots & set(_ISTIO)
    if istio_only:
        raise CelError(f"{text!r}: the local mesh translates {', '.join(sorted(istio_only))} only as a whole "
                       "expression (e.g. downstream_peer.app), not inside a larger one")
    if "string" in check(inner).calls:
        raise CelError(f"{text!r}: string() is supported only around the whole expression on the local mesh")
    if "%" in inner:
        raise CelError(f"{text!r}: '%' cannot appear in an expression for Envoy's %CEL()% formatter")
    return f"%CEL({inner})%"
