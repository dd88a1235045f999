"""The documents the kind platform applies, rendered from harness/mesh/manifests (kind/ and the mesh).

Every function returns plain documents; `up` validates all of them (schemas.validate_kind_document)
before the first command runs, and the tests validate them the same way.
"""

from __future__ import annotations

import base64
import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError, ManifestError
from harness.mesh.loader import load_documents
from harness.mesh.profiles import with_harness_stats
from harness.mesh.schema import MANIFESTS_DIR, default_manifest_paths, load_yaml_documents
from harness.mesh.topology import REGION_LABEL
from harness.platforms.kind.settings import EXTERNAL_NAMESPACE, NAMESPACE, ClusterSpec

KIND_MANIFESTS = MANIFESTS_DIR / "kind"
SERVICE_ENTRY_OVERLAY = "external/service-entry.yaml"  # the external AI API's ServiceEntry on kind
CACERTS_FILES = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")  # Istio's plug-in CA layout
#: What the cacerts Secret carries when no CA is made (dry runs, tests): obviously not key material.
PLACEHOLDER_PEM = (b"-----BEGIN PLACEHOLDER-----\nmade by the harness at `up`, never committed\n"
                   b"-----END PLACEHOLDER-----\n")
EXTERNAL_AI_HOST = "api.openai.com"  # the ServiceEntry's host; the stand-in's certificate names it
EXTERNAL_AI_DEPLOYMENT = "external-ai-api"  # the stand-in, in namespace external-ai (kind/external/)
EXTERNAL_AI_TLS_SECRET = "external-ai-api-tls"  # ../../mesh/manifests/kind/external/external-ai-api.yaml
EXTERNAL_AI_CA_CONFIGMAP = "external-ai-ca"  # in parallel-ai: the external CA's root, which ai-agent trusts
EXTERNAL_AI_CA_DIR = "/etc/external-ai-ca"  # where ai-agent's app container mounts that ConfigMap
EXTERNAL_AI_CA_KEY = "root-cert.pem"
#: Deployments whose app calls https://api.openai.com itself on kind (harness.services.context.CALLING_SERVICES).
EXTERNAL_AI_CALLERS = frozenset({"ai-agent"})
INGRESS_NODE_PORT = 30080  # ../../mesh/manifests/kind/gateway/ingress-gateway.yaml
EASTWEST_NODE_PORT = 31443  # ../../mesh/manifests/kind/istio/eastwest-gateway.yaml (tls, 15443)
#: The namespaces the harness creates and owns; on a cluster it did not create (--no-create) it applies
#: nothing elsewhere (Istio itself excepted, and only when the cluster has none).
HARNESS_NAMESPACES = (NAMESPACE, EXTERNAL_NAMESPACE)
PROMETHEUS_NODE_PORT = 30090  # ../../mesh/manifests/kind/addons/prometheus.yaml
# One `kubectl apply` goes in document order: what others live in or refer to comes first.
_APPLY_ORDER = ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret",
                "ConfigMap", "Service", "Deployment")


def merge(base: Any, overlay: Any) -> Any:
    """Deep merge as IstioOperator overlays work: mappings merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = {key: copy.deepcopy(value) for key, value in base.items()}
        for key, value in overlay.items():
            merged[key] = merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    return copy.deepcopy(overlay)


@functools.cache
def _template(relative: str) -> tuple[dict, ...]:
    return tuple(load_yaml_documents(KIND_MANIFESTS / relative))


def template(relative: str) -> list[dict]:
    """The documents of manifests/kind/<relative>, deep-copied (safe to change)."""
    return copy.deepcopy(list(_template(relative)))


def mesh_networks(clusters: tuple[ClusterSpec, ...], node_addresses: Mapping[str, str]) -> dict:
    """values.global.meshNetworks of a multi-network mesh on kind: each network's endpoints come from its
    cluster's registry, and its gateway is the east-west gateway's node port on the cluster's node address
    on the shared `kind` Docker network, which every other cluster's pods reach. istiod would otherwise
    take a NodePort gateway's address only from a node's ExternalIP (pilot serviceregistry/kube/
    controller), which kind nodes lack, and hand sidecars unroutable remote pod IPs."""
    return {spec.network: {"endpoints": [{"fromRegistry": spec.name}],
                           "gateways": [{"address": node_addresses[spec.name], "port": EASTWEST_NODE_PORT}]}
            for spec in clusters}


def istio_operator(profile: str, cluster: ClusterSpec, istio_version: str,
                   networks: Mapping[str, Any] | None = None) -> dict:
    """The control plane for one cluster: control-plane.yaml, its cluster's values, the profile on top
    (and, with three clusters, every network's gateway address: `mesh_networks`)."""
    (base,) = template("istio/control-plane.yaml")
    (overlay,) = template(f"istio/profile-{profile}.yaml")
    operator = with_harness_stats(merge(base, {"spec": overlay["spec"]}))  # the run's ejection gauge too
    values = operator["spec"]["values"]
    values["global"].update(tag=istio_version, network=cluster.network)
    values["global"]["multiCluster"] = {"clusterName": cluster.name}
    if networks:
        values["global"]["meshNetworks"] = copy.deepcopy(dict(networks))
    # components.pilot.k8s wins over values.pilot in an IstioOperator: the profile's istiod sizing is the
    # more specific statement, so it is carried over (the seed's 100m/128Mi would silently win otherwise).
    operator["spec"]["components"]["pilot"]["k8s"]["resources"] = copy.deepcopy(values["pilot"]["resources"])
    operator["metadata"]["name"] = f"control-plane-{profile}"
    return operator


def eastwest_operator(cluster: ClusterSpec) -> dict:
    """The east-west gateway of one cluster of the three-cluster mesh, on its network."""
    (operator,) = template("istio/eastwest-gateway.yaml")
    (gateway,) = operator["spec"]["components"]["ingressGateways"]
    gateway["label"]["topology.istio.io/network"] = cluster.network
    gateway["k8s"]["env"] = [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": cluster.network}]
    operator["spec"]["values"]["global"]["network"] = cluster.network
    return operator


def istio_system_namespace(cluster: ClusterSpec) -> dict:
    """istio-system, labelled with the cluster's network (Istio's multi-network convention)."""
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "istio-system", "labels": {"topology.istio.io/network": cluster.network}}}


def cacerts_secret(files: Mapping[str, bytes] | None = None) -> dict:
    """Istio's plug-in CA Secret (seed: "Certificate Management"); placeholders when `files` is None."""
    if files is not None:
        missing = [name for name in CACERTS_FILES if name not in files]
        if missing:
            raise ConfigError(f"the plug-in CA needs {', '.join(CACERTS_FILES)}; missing {', '.join(missing)}",
                              field="cacerts")
    data = {name: base64.b64encode(files[name] if files is not None else PLACEHOLDER_PEM).decode("ascii")
            for name in CACERTS_FILES}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "cacerts", "namespace": "istio-system"}, "data": data}


@dataclass(frozen=True)
class ExternalAiTls:
    """The stand-in's server certificate for api.openai.com, its key, and the root of the CA that signed
    it: PEM, made at `up` by a separate MeshCA (the local platform's "external" CA), never the mesh CA."""

    cert_chain: bytes  # leaf, then the CA's chain (tls.crt)
    key: bytes  # the leaf's private key (tls.key)
    root: bytes  # the CA's root (EXTERNAL_AI_CA_FILE of the callers)


def external_ai_tls_secret(tls: ExternalAiTls | None = None) -> dict:
    """The stand-in's kubernetes.io/tls Secret in external-ai; placeholders when `tls` is None (dry runs)."""
    crt, key = (tls.cert_chain, tls.key) if tls is not None else (PLACEHOLDER_PEM, PLACEHOLDER_PEM)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": EXTERNAL_AI_TLS_SECRET, "namespace": EXTERNAL_NAMESPACE},
            "data": {"tls.crt": base64.b64encode(crt).decode("ascii"),
                     "tls.key": base64.b64encode(key).decode("ascii")}}


def external_ai_documents(tls: ExternalAiTls | None = None) -> list[dict]:
    """The external AI API's stand-in: namespace external-ai (no sidecar), its TLS Secret, Service and
    Deployment. Every cluster gets one, as every region reaches the same public API."""
    return in_apply_order(template("external/external-ai-api.yaml") + [external_ai_tls_secret(tls)])


def external_ai_ca_configmap(root: bytes | None = None) -> dict:
    """The external CA's root in parallel-ai, for the callers to mount; a placeholder when `root` is None.
    A ConfigMap, not a Secret: a root certificate is public (Istio's istio-ca-root-cert is one too)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": EXTERNAL_AI_CA_CONFIGMAP, "namespace": NAMESPACE},
            "data": {EXTERNAL_AI_CA_KEY: (root if root is not None else PLACEHOLDER_PEM).decode("ascii")}}


def trust_external_ai_ca(deployment: dict) -> dict:
    """A caller's Deployment whose app container trusts the external CA's root besides the public CAs
    (EXTERNAL_AI_CA_FILE, the ConfigMap mounted read-only); anything else is returned unchanged."""
    if deployment["kind"] != "Deployment":
        return deployment
    if (deployment["spec"]["template"]["metadata"].get("labels") or {}).get("app") not in EXTERNAL_AI_CALLERS:
        return deployment
    patched = copy.deepcopy(deployment)
    pod = patched["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]

    def put(items: list[dict], item: dict) -> list[dict]:  # by name, so patching twice changes nothing
        return [existing for existing in items if existing["name"] != item["name"]] + [item]

    app["env"] = put(app.get("env", []), {"name": "EXTERNAL_AI_CA_FILE",
                                           "value": f"{EXTERNAL_AI_CA_DIR}/{EXTERNAL_AI_CA_KEY}"})
    app["volumeMounts"] = put(app.get("volumeMounts", []), {"name": EXTERNAL_AI_CA_CONFIGMAP,
                                                            "mountPath": EXTERNAL_AI_CA_DIR, "readOnly": True})
    pod["volumes"] = put(pod.get("volumes", []), {"name": EXTERNAL_AI_CA_CONFIGMAP,
                                                  "configMap": {"name": EXTERNAL_AI_CA_CONFIGMAP}})
    return patched


def addon_documents() -> list[dict]:
    """Prometheus and Jaeger, in istio-system (primary cluster only)."""
    return template("addons/prometheus.yaml") + template("addons/jaeger.yaml")


def harness_namespace_addons() -> list[dict]:
    """Prometheus for a cluster the harness did not create (--no-create): in parallel-ai, with a Role
    instead of the ClusterRole (it discovers pods of parallel-ai only), nothing cluster-wide."""
    docs = []
    for doc in template("addons/prometheus.yaml"):
        if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            doc["kind"] = doc["kind"].removeprefix("Cluster")
        if doc["kind"] == "Role":
            doc["rules"] = [{**rule, "resources": [r for r in rule["resources"] if r != "nodes"]}
                            for rule in doc["rules"]]
        if doc["kind"] == "RoleBinding":
            doc["roleRef"]["kind"] = "Role"
            for subject in doc["subjects"]:
                subject["namespace"] = NAMESPACE
        doc["metadata"]["namespace"] = NAMESPACE
        docs.append(doc)
    return in_apply_order(docs)


def kill_ready(deployment: dict) -> dict:
    """A Deployment whose pod shares one PID namespace (shareProcessNamespace): the pause container is
    PID 1, so the app is an ordinary process that `kubectl exec` can SIGKILL, as an OOM kill does; in
    its own PID namespace the app is PID 1, which the kernel shields from SIGKILL sent from inside."""
    if deployment["kind"] != "Deployment":
        return deployment
    patched = copy.deepcopy(deployment)
    patched["spec"]["template"]["spec"]["shareProcessNamespace"] = True
    return patched


def ingress_gateway_documents() -> list[dict]:
    return template("gateway/ingress-gateway.yaml")


def _mesh(folder: str) -> list[dict]:
    return [copy.deepcopy(doc) for doc, _ in load_documents(default_manifest_paths((folder,)))]


def mesh_kubernetes_documents() -> list[dict]:
    """harness/mesh/manifests/kubernetes, validated: the same workloads the local platform runs."""
    return _mesh("kubernetes")


def workload_documents(cluster: ClusterSpec, external_ai_root: bytes | None = None) -> list[dict]:
    """The mesh's Kubernetes manifests for one cluster: everything but the other regions' Deployments,
    the callers of the external AI API trusting its CA (root in a ConfigMap; a placeholder when
    `external_ai_root` is None), and the ingress gateway on the primary."""
    docs = [kill_ready(trust_external_ai_ca(doc)) for doc in _mesh("kubernetes") if doc["kind"] != "Deployment"
            or _region(doc) in cluster.regions]
    docs.append(external_ai_ca_configmap(external_ai_root))
    return in_apply_order(docs + (ingress_gateway_documents() if cluster.primary else []))


def in_apply_order(docs: list[dict]) -> list[dict]:
    """Namespaces, then accounts and config, then Services, then Deployments; stable within a kind."""
    rank = {kind: index for index, kind in enumerate(_APPLY_ORDER)}
    return sorted(docs, key=lambda doc: rank.get(doc["kind"], len(rank)))


#: The Istio kinds with `exportTo` (VirtualService, DestinationRule, ServiceEntry in the bundled CRDs).
EXPORTABLE_KINDS = frozenset({"VirtualService", "DestinationRule", "ServiceEntry"})
LOCAL_EXPORT = ["."]


def exported_here(doc: dict, *, source: str | Path = "the harness", index: int = 0) -> dict:
    """The document with `exportTo: ["."]`: what the harness applies in parallel-ai is seen by the proxies
    of parallel-ai only, never by another namespace's (hosts of other namespaces included). A document
    that exports further is refused, naming the field."""
    if doc.get("kind") not in EXPORTABLE_KINDS:
        return doc
    spec = doc.get("spec") or {}
    if "exportTo" in spec and spec["exportTo"] != LOCAL_EXPORT:
        raise ConfigError(f"document {index} ({doc['kind']}/{(doc.get('metadata') or {}).get('name')}): the harness "
                          f"keeps what it applies to namespace {NAMESPACE}; expected exportTo [\".\"] or none, got "
                          f"{spec['exportTo']!r}", file=str(source), field="spec.exportTo")
    return {**doc, "spec": {**spec, "exportTo": list(LOCAL_EXPORT)}}


#: The label only the harness's own gateway pods carry; every Gateway it applies selects it too.
GATEWAY_LABEL = "harness.parallel-ai/gateway"
OWN_GATEWAYS = {"ingressgateway": "ingress", "eastwestgateway": "eastwest"}  # `istio` label -> GATEWAY_LABEL


def own_gateway(doc: dict, *, source: str | Path = "the harness", index: int = 0) -> dict:
    """A Gateway that selects only the harness's gateway pods. Istio applies a Gateway to matching gateway
    workloads in every namespace (unless PILOT_SCOPE_GATEWAY_TO_NAMESPACE), so `istio: ingressgateway`
    alone would also configure a cluster's own istio-system ingress gateway; the harness's pods carry
    GATEWAY_LABEL and the selector is narrowed to it. Any other selector is refused, naming the field."""
    if doc.get("kind") != "Gateway":
        return doc
    spec = doc.get("spec") or {}
    selector = spec.get("selector") or {}
    which = OWN_GATEWAYS.get(str(selector.get("istio")))
    if which is None or selector.get(GATEWAY_LABEL, which) != which:
        raise ConfigError(f"document {index} (Gateway/{(doc.get('metadata') or {}).get('name')}): the harness "
                          f"configures only its own gateways, selected by istio: {' or '.join(OWN_GATEWAYS)}; got "
                          f"{selector!r}", file=str(source), field="spec.selector")
    return {**doc, "spec": {**spec, "selector": {**selector, GATEWAY_LABEL: which}}}


def istio_documents() -> list[dict]:
    """The declared Istio resources (harness/mesh/manifests/istio) as kind runs them, which `reset`
    restores: each kind overlay (external/service-entry.yaml) in place of the shipped resource it names,
    and every exportable one exported to parallel-ai only (exported_here)."""
    overlays = {_key(doc): doc for doc in template(SERVICE_ENTRY_OVERLAY)}
    shipped = _mesh("istio")
    unmatched = sorted(set(overlays) - {_key(doc) for doc in shipped})
    if unmatched:
        raise ManifestError(f"the overlay names no shipped Istio resource: {unmatched}",
                            file=KIND_MANIFESTS / SERVICE_ENTRY_OVERLAY)
    return [own_gateway(exported_here(overlays.get(_key(doc), doc), source=MANIFESTS_DIR / "istio"),
                        source=MANIFESTS_DIR / "istio") for doc in shipped]


def _key(doc: dict) -> tuple[str, str, str]:
    return doc["kind"], namespaced(doc), doc["metadata"]["name"]


def multicluster_documents() -> list[dict]:
    return [own_gateway(doc, source=MANIFESTS_DIR / "multicluster") for doc in _mesh("multicluster")]


def sample_image() -> str:
    """The one image every mesh Deployment runs (deployments.yaml); `up` builds it under this name."""
    images = {container["image"] for doc in _mesh("kubernetes") if doc["kind"] == "Deployment"
              for container in doc["spec"]["template"]["spec"]["containers"]}
    if len(images) != 1:
        raise ManifestError(f"expected every mesh Deployment to run one image, found {sorted(images)}",
                            file=MANIFESTS_DIR / "kubernetes" / "deployments.yaml",
                            field="spec.template.spec.containers[0].image")
    return images.pop()


def _region(doc: dict) -> str:
    return doc["spec"]["template"]["metadata"]["labels"][REGION_LABEL].split(".")[0]


def kind_config(path: Path) -> dict:
    """A kind-config file as a document (validated by the caller)."""
    try:
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the kind cluster config: {exc}", file=path) from exc
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ManifestError("expected exactly one kind Cluster document", file=path)
    return docs[0]


def host_port(config: dict, node_port: int) -> int | None:
    """The 127.0.0.1 host port a kind config maps to `node_port` on its nodes, if any."""
    for node in config.get("nodes") or []:
        for mapping in node.get("extraPortMappings") or []:
            if mapping.get("containerPort") == node_port:
                return int(mapping["hostPort"])
    return None


def namespaced(doc: dict) -> str:
    """The namespace a document applies to (mesh resources default to parallel-ai)."""
    return (doc.get("metadata") or {}).get("namespace", NAMESPACE)


def describe(docs: list[dict]) -> str:
    """`Namespace/istio-system, Secret istio-system/cacerts`: what a stdin apply carries, for the plan."""
    parts = []
    for doc in docs:
        meta = doc.get("metadata") or {}
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        parts.append(f"{doc['kind']} {where}{meta.get('name')}")
    return ", ".join(parts)


def to_yaml(docs: list[dict]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)
