"""Strict validation of everything the kind platform applies or hands to a tool.

Kubernetes kinds and Istio CRD kinds go to harness.mesh.schema (kubernetes-validate strict; the
bundled Istio CRDs with unknown fields rejected). Two kinds have no schema there, so they get a small
one of our own, closed (additionalProperties false) everywhere and covering only the fields we use:
- IstioOperator (install.istio.io/v1alpha1): istioctl's input, not a CRD in istio-crd-all.gen.yaml.
  The field names follow Istio's IstioOperatorSpec; a field we do not use is an error here even if
  istioctl would take it: add it to the schema when you need it.
- kind's Cluster (kind.x-k8s.io/v1alpha4), the fields of kind's v1alpha4 types that kind-config uses
  or may plausibly use; host port mappings must listen on 127.0.0.1.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema

from harness.errors import ManifestError
from harness.mesh.schema import validate_document

ISTIO_OPERATOR_API = "install.istio.io/v1alpha1"
KIND_CLUSTER_API = "kind.x-k8s.io/v1alpha4"

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_RESOURCES = _closed({"requests": _closed({"cpu": _QUANTITY, "memory": _QUANTITY}),
                      "limits": _closed({"cpu": _QUANTITY, "memory": _QUANTITY})})
_K8S = _closed({
    "resources": _RESOURCES,
    "replicaCount": {"type": "integer", "minimum": 0},
    "env": {"type": "array", "items": _closed({"name": {"type": "string"}, "value": {"type": "string"}},
                                              ("name", "value"))},
    "service": _closed({
        "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
        "ports": {"type": "array", "items": _closed({
            "name": {"type": "string"}, "port": _PORT, "targetPort": _PORT,
            "nodePort": {"type": "integer", "minimum": 30000, "maximum": 32767},
            "protocol": {"enum": ["TCP", "UDP"]},
        }, ("name", "port"))},
    }),
    "serviceAnnotations": _STRING_MAP,
    "podAnnotations": _STRING_MAP,
})
_GATEWAY = _closed({"name": {"type": "string", "pattern": _DNS_LABEL},
                    "namespace": {"type": "string", "pattern": _DNS_LABEL},
                    "enabled": {"type": "boolean"}, "label": _STRING_MAP, "k8s": _K8S}, ("name",))
_MESH_CONFIG = _closed({
    "accessLogFile": {"type": "string"},
    "enableTracing": {"type": "boolean"},
    "trustDomain": {"type": "string", "pattern": r"^[a-z0-9.-]+$"},
    "outboundTrafficPolicy": _closed({"mode": {"enum": ["REGISTRY_ONLY", "ALLOW_ANY"]}}, ("mode",)),
    "defaultConfig": _closed({
        "holdApplicationUntilProxyStarts": {"type": "boolean"},
        "proxyStatsMatcher": _closed({"inclusionRegexps": _STRINGS, "exclusionRegexps": _STRINGS,
                                      "inclusionPrefixes": _STRINGS, "inclusionSuffixes": _STRINGS}),
    }),
    "extensionProviders": {"type": "array", "items": _closed({
        "name": {"type": "string"},
        "zipkin": _closed({"service": {"type": "string"}, "port": _PORT}, ("service", "port")),
    }, ("name",))},
})
_VALUES = _closed({
    "global": _closed({
        "meshID": {"type": "string"}, "network": {"type": "string"}, "hub": {"type": "string"},
        "tag": {"type": "string"}, "trustDomain": {"type": "string"}, "caAddress": {"type": "string"},
        "multiCluster": _closed({"clusterName": {"type": "string"}}),
        "proxy": _closed({"resources": _RESOURCES}),
    }),
    "pilot": _closed({"resources": _RESOURCES, "env": _STRING_MAP}),
    "gateways": _closed({"istio-ingressgateway": _closed({"injectionTemplate": {"type": "string"}})}),
})
ISTIO_OPERATOR_SCHEMA = _closed({
    "apiVersion": {"const": ISTIO_OPERATOR_API},
    "kind": {"const": "IstioOperator"},
    "metadata": _closed({"name": {"type": "string", "pattern": _DNS_LABEL},
                         "namespace": {"const": "istio-system"}}, ("name",)),
    "spec": _closed({
        "profile": {"enum": ["default", "demo", "minimal", "remote", "empty", "preview"]},
        "hub": {"type": "string"},
        "tag": {"type": "string"},
        "meshConfig": _MESH_CONFIG,
        "values": _VALUES,
        "components": _closed({"pilot": _closed({"enabled": {"type": "boolean"}, "k8s": _K8S}),
                               "ingressGateways": {"type": "array", "items": _GATEWAY},
                               "egressGateways": {"type": "array", "items": _GATEWAY}}),
    }),
}, ("apiVersion", "kind", "metadata", "spec"))

_PORT_MAPPING = _closed({
    "containerPort": _PORT, "hostPort": _PORT,
    "listenAddress": {"const": "127.0.0.1"},  # the harness binds the host's loopback only
    "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
}, ("containerPort", "hostPort", "listenAddress"))
_MOUNT = _closed({"hostPath": {"type": "string"}, "containerPath": {"type": "string"},
                  "readOnly": {"type": "boolean"}, "selinuxRelabel": {"type": "boolean"},
                  "propagation": {"enum": ["None", "HostToContainer", "Bidirectional"]}},
                 ("hostPath", "containerPath"))
_CIDR = {"type": "string", "pattern": r"^[0-9.]+/[0-9]{1,2}$|^[0-9a-fA-F:]+/[0-9]{1,3}$"}
KIND_CLUSTER_SCHEMA = _closed({
    "kind": {"const": "Cluster"},
    "apiVersion": {"const": KIND_CLUSTER_API},
    "name": {"type": "string", "pattern": _DNS_LABEL},
    "nodes": {"type": "array", "minItems": 1, "items": _closed({
        "role": {"enum": ["control-plane", "worker"]},
        "image": {"type": "string"},
        "labels": _STRING_MAP,
        "extraPortMappings": {"type": "array", "items": _PORT_MAPPING},
        "extraMounts": {"type": "array", "items": _MOUNT},
        "kubeadmConfigPatches": _STRINGS,
    }, ("role",))},
    "networking": _closed({
        "ipFamily": {"enum": ["ipv4", "ipv6", "dual"]},
        "apiServerAddress": {"const": "127.0.0.1"},
        "apiServerPort": {"type": "integer", "minimum": 0, "maximum": 65535},
        "podSubnet": _CIDR, "serviceSubnet": _CIDR,
        "disableDefaultCNI": {"type": "boolean"},
        "kubeProxyMode": {"enum": ["iptables", "ipvs", "nftables", "none"]},
    }),
    "featureGates": {"type": "object", "additionalProperties": {"type": "boolean"}},
    "runtimeConfig": _STRING_MAP,
    "containerdConfigPatches": _STRINGS,
    "kubeadmConfigPatches": _STRINGS,
}, ("kind", "apiVersion", "nodes"))


@functools.cache
def _validator(which: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(ISTIO_OPERATOR_SCHEMA if which == "operator" else KIND_CLUSTER_SCHEMA)


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f'["{part}"]' if "." in str(part) or "/" in str(part)
                                                           else (f".{part}" if text else str(part)))
    return text or "(document)"


def _problems(which: str, doc: dict) -> list[str]:
    problems: list[str] = []
    for error in sorted(_validator(which).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        where = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = sorted(error.schema.get("properties", {}))
            problems += [f"{_path([*where, key])}: unknown field; expected one of: {', '.join(known)}"
                         for key in error.instance if key not in known]
        elif error.validator == "required" and isinstance(error.instance, dict):
            problems += [f"{_path([*where, key])}: required field is missing"
                         for key in error.validator_value if key not in error.instance]
        else:
            problems.append(f"{_path(where)}: {error.message}")
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
