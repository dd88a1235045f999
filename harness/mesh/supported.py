"""Which Istio fields the local translator honours; any other field is an error, never dropped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UnsupportedFieldError

LEAF = None


@dataclass(frozen=True)
class MapOf:
    """A mapping with free keys (header names, label names) whose values follow `value`."""

    value: Any


_STRING_MATCH = {"exact": LEAF, "prefix": LEAF, "regex": LEAF}
_PERCENT = {"value": LEAF}
_DESTINATION = {"host": LEAF, "subset": LEAF, "port": {"number": LEAF}}

_VIRTUAL_SERVICE = {
    "hosts": LEAF,
    "gateways": LEAF,
    "http": [
        {
            "name": LEAF,
            "match": [{"name": LEAF, "headers": MapOf(_STRING_MATCH), "uri": _STRING_MATCH,
                       "method": _STRING_MATCH, "ignoreUriCase": LEAF}],
            "route": [{"destination": _DESTINATION, "weight": LEAF}],
            "timeout": LEAF,
            "retries": {"attempts": LEAF, "perTryTimeout": LEAF, "retryOn": LEAF},
            "fault": {
                "delay": {"fixedDelay": LEAF, "percentage": _PERCENT, "percent": LEAF},
                "abort": {"httpStatus": LEAF, "percentage": _PERCENT},
            },
        }
    ],
}

_TRAFFIC_POLICY = {
    "loadBalancer": {
        "simple": LEAF,
        "localityLbSetting": {"enabled": LEAF, "failover": [{"from": LEAF, "to": LEAF}]},
    },
    "connectionPool": {
        "tcp": {
            "maxConnections": LEAF,
            "connectTimeout": LEAF,
            "tcpKeepalive": {"time": LEAF, "interval": LEAF, "probes": LEAF},
        },
        "http": {
            "http1MaxPendingRequests": LEAF,
            "http2MaxRequests": LEAF,
            "maxRequestsPerConnection": LEAF,
            "maxRetries": LEAF,
            "idleTimeout": LEAF,
        },
    },
    "outlierDetection": {
        "consecutive5xxErrors": LEAF,
        "consecutiveGatewayErrors": LEAF,
        "interval": LEAF,
        "baseEjectionTime": LEAF,
        "maxEjectionPercent": LEAF,
        "minHealthPercent": LEAF,
    },
    "tls": {"mode": LEAF},
}

_DESTINATION_RULE = {
    "host": LEAF,
    "trafficPolicy": _TRAFFIC_POLICY,
    "subsets": [{"name": LEAF, "labels": LEAF, "trafficPolicy": _TRAFFIC_POLICY}],
}

_SELECTOR = {"matchLabels": LEAF}

_PEER_AUTHENTICATION = {"selector": _SELECTOR, "mtls": {"mode": LEAF}, "portLevelMtls": MapOf({"mode": LEAF})}

_AUTHORIZATION_POLICY = {
    "selector": _SELECTOR,
    "action": LEAF,
    "rules": [
        {
            "from": [{"source": {"principals": LEAF, "notPrincipals": LEAF,
                                 "namespaces": LEAF, "notNamespaces": LEAF}}],
            "to": [{"operation": {"methods": LEAF, "notMethods": LEAF,
                                  "paths": LEAF, "notPaths": LEAF}}],
        }
    ],
}

_SERVICE_ENTRY = {
    "hosts": LEAF,
    "ports": [{"number": LEAF, "name": LEAF, "protocol": LEAF, "targetPort": LEAF}],
    "location": LEAF,
    "resolution": LEAF,
}

_GATEWAY = {
    "selector": LEAF,
    "servers": [{"port": {"number": LEAF, "name": LEAF, "protocol": LEAF},
                 "hosts": LEAF, "tls": {"mode": LEAF}, "name": LEAF}],
}

# Telemetry metrics are translated into each proxy's stats access logger (translate/telemetry.py);
# tracing is still only declared (trace headers pass through the proxies).
_TELEMETRY = {
    "selector": LEAF,
    "metrics": [{"providers": LEAF, "overrides": LEAF}],
    "tracing": LEAF,
}

SUPPORTED: dict[str, Any] = {
    "Telemetry": _TELEMETRY,
    "VirtualService": _VIRTUAL_SERVICE,
    "DestinationRule": _DESTINATION_RULE,
    "PeerAuthentication": _PEER_AUTHENTICATION,
    "AuthorizationPolicy": _AUTHORIZATION_POLICY,
    "ServiceEntry": _SERVICE_ENTRY,
    "Gateway": _GATEWAY,
}


def check_supported(kind: str, name: str, spec: dict[str, Any], *, file: str | Path | None) -> None:
    """Raise UnsupportedFieldError for the first field of `spec` the translator cannot honour."""
    if kind not in SUPPORTED:
        return
    _walk(spec, SUPPORTED[kind], "spec", kind=kind, name=name, file=file)


def _walk(value: Any, shape: Any, path: str, *, kind: str, name: str, file: str | Path | None) -> None:
    if shape is LEAF:
        return
    if isinstance(shape, list):
        for index, item in enumerate(value or []):
            _walk(item, shape[0], f"{path}[{index}]", kind=kind, name=name, file=file)
        return
    if isinstance(shape, MapOf):
        for key, item in (value or {}).items():
            _walk(item, shape.value, f"{path}.{key}", kind=kind, name=name, file=file)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if key not in shape:
            raise UnsupportedFieldError(
                f"{kind} {name!r} sets {path}.{key}, which the local platform does not implement; "
                f"supported here: {', '.join(sorted(shape))}",
                file=file,
                field=f"{path}.{key}",
            )
        _walk(item, shape[key], f"{path}.{key}", kind=kind, name=name, file=file)
