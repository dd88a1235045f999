"""Services and pods of the mesh, derived from its Kubernetes Deployments and Services."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ManifestError
from harness.mesh.resources import CLUSTER_DOMAIN, NAMESPACE

REGION_LABEL = "istio-locality"
TRUST_DOMAIN = "cluster.local"
GATEWAY_SERVICE_ACCOUNT = "api-gateway"
GATEWAY_NAME = "istio-ingressgateway-0"  # the ingress gateway's pod, in NAMESPACE
GATEWAY_LABELS = (("app", "istio-ingressgateway"), ("istio", "ingressgateway"))


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    selector: tuple[tuple[str, str], ...]
    port: int

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.{CLUSTER_DOMAIN}"


@dataclass(frozen=True)
class Pod:
    name: str
    deployment: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    service_account: str
    env: tuple[tuple[str, str], ...]
    container_port: int

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)

    @property
    def app(self) -> str:
        return self.label("app")

    @property
    def version(self) -> str:
        return self.label("version", "unknown")

    @property
    def region(self) -> str:
        return self.label(REGION_LABEL).split(".")[0]

    @property
    def spiffe_id(self) -> str:
        return spiffe_id(self.namespace, self.service_account)


@dataclass(frozen=True)
class Topology:
    services: tuple[Service, ...]
    pods: tuple[Pod, ...]

    def service(self, name: str) -> Service:
        for service in self.services:
            if name in (service.name, service.fqdn):
                return service
        raise KeyError(name)

    def pods_of(self, service: Service) -> tuple[Pod, ...]:
        wanted = set(service.selector)
        return tuple(p for p in self.pods if wanted <= set(p.labels) and p.namespace == service.namespace)

    def services_of(self, pod: Pod) -> tuple[Service, ...]:
        return tuple(s for s in self.services if pod in self.pods_of(s))

    def pod(self, name: str) -> Pod:
        for pod in self.pods:
            if pod.name == name:
                return pod
        raise KeyError(name)

    def workloads(self) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        """(namespace, labels) of every proxy's workload: the pods and the ingress gateway (what a
        Telemetry selector can select)."""
        return [(pod.namespace, pod.labels) for pod in self.pods] + [(NAMESPACE, GATEWAY_LABELS)]


def spiffe_id(namespace: str, service_account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


def build_topology(docs: list[tuple[dict[str, Any], str | Path | None]]) -> Topology:
    """Expand Deployments into pods (`<deployment>-<index>`) and collect Services."""
    services: list[Service] = []
    pods: list[Pod] = []
    for doc, file in docs:
        kind = doc.get("kind")
        if kind == "Service":
            services.append(_service(doc, file))
        elif kind == "Deployment":
            pods.extend(_pods(doc, file))
    return Topology(services=tuple(services), pods=tuple(pods))


def _namespace(doc: dict[str, Any], file: str | Path | None) -> str:
    """Both platforms run the mesh's workloads in NAMESPACE (kind creates them there; the local CA issues
    their identities there), so a Deployment or Service elsewhere is refused rather than half-served."""
    namespace = doc["metadata"].get("namespace", NAMESPACE)
    if namespace != NAMESPACE:
        raise ManifestError(f"{doc['kind']} {doc['metadata']['name']!r} is in namespace {namespace!r}; the mesh's "
                            f"workloads run in {NAMESPACE!r}", file=file, field="metadata.namespace")
    return namespace


def _service(doc: dict[str, Any], file: str | Path | None) -> Service:
    meta, spec = doc["metadata"], doc.get("spec") or {}
    http = [p for p in spec.get("ports") or [] if p.get("name", "").startswith("http") and
            not p.get("name", "").endswith("metrics")]
    if not http:
        raise ManifestError(f"Service {meta['name']!r} has no port named 'http'", file=file, field="spec.ports")
    return Service(
        name=meta["name"],
        namespace=_namespace(doc, file),
        selector=tuple(sorted((spec.get("selector") or {}).items())),
        port=int(http[0]["port"]),
    )


def _pods(doc: dict[str, Any], file: str | Path | None) -> list[Pod]:
    meta, spec = doc["metadata"], doc.get("spec") or {}
    namespace = _namespace(doc, file)
    template = spec.get("template") or {}
    labels = tuple(sorted(((template.get("metadata") or {}).get("labels") or {}).items()))
    pod_spec = template.get("spec") or {}
    containers = pod_spec.get("containers") or []
    if not containers:
        raise ManifestError(f"Deployment {meta['name']!r} has no containers", file=file,
                            field="spec.template.spec.containers")
    container = containers[0]
    env = tuple((e["name"], str(e["value"])) for e in container.get("env") or [] if "value" in e)
    ports = container.get("ports") or [{"containerPort": 8080}]
    if REGION_LABEL not in dict(labels):
        raise ManifestError(f"Deployment {meta['name']!r}: pod template needs label {REGION_LABEL!r} "
                            "(its region, e.g. us-east)", file=file,
                            field=f"spec.template.metadata.labels.{REGION_LABEL}")
    _check_buckets(meta["name"], (template.get("metadata") or {}).get("annotations") or {}, file)
    return [
        Pod(
            name=f"{meta['name']}-{index}",
            deployment=meta["name"],
            namespace=namespace,
            labels=labels,
            service_account=pod_spec.get("serviceAccountName", "default"),
            env=env,
            container_port=int(ports[0]["containerPort"]),
        )
        for index in range(int(spec.get("replicas", 1)))
    ]


def _check_buckets(deployment: str, annotations: dict[str, Any], file: str | Path | None) -> None:
    """The local proxies use one set of request-duration buckets (translate/stats.LATENCY_BUCKETS_MS),
    which the shipped pod templates also give Istio's proxies on kind; another value of Istio's
    annotation would be honoured on kind and not here, so it is refused rather than ignored."""
    from harness.mesh.translate.stats import BUCKETS_ANNOTATION, ISTIO_LATENCY_PREFIX, LATENCY_BUCKETS_MS

    if BUCKETS_ANNOTATION not in annotations:
        return
    expected = {ISTIO_LATENCY_PREFIX: list(LATENCY_BUCKETS_MS)}
    try:
        value = json.loads(str(annotations[BUCKETS_ANNOTATION]))
    except ValueError:
        value = None
    if value != expected:
        raise ManifestError(
            f"Deployment {deployment!r}: the local platform's proxies use the request-duration buckets "
            f"{json.dumps(expected, separators=(',', ':'))}; another {BUCKETS_ANNOTATION} is not supported "
            f"(got {annotations[BUCKETS_ANNOTATION]!r})", file=file,
            field=f"spec.template.metadata.annotations.{BUCKETS_ANNOTATION}")
