"""Settings of the kind platform and the clusters they describe; every field has a HARNESS_* variable."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

PROFILES = ("dev", "prod")
REGIONS = ("us-east", "us-west", "eu-west")
CLUSTER_COUNTS = (1, 3)
NAMESPACE = "parallel-ai"
#: The one namespace besides parallel-ai the platform owns: the external AI API's stand-in, outside the mesh.
EXTERNAL_NAMESPACE = "external-ai"
PRIMARY_REGION = "us-east"  # holds the ingress gateway, Prometheus and Jaeger (README: gateway in us-east)
#: The checkout that holds kind-config/ and docker/ (they are not package data: an editable install or CI).
PROJECT_DIR = Path(__file__).resolve().parents[3]
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class ClusterSpec:
    """One kind cluster: its kube context, config file, the regions it runs and its Istio network."""

    name: str  # kind cluster name (`kind create cluster --name`)
    context: str  # kube context the harness acts on; kind names it kind-<name>
    config_file: Path  # kind's v1alpha4 Cluster config in kind-config/
    regions: tuple[str, ...]  # Deployments whose istio-locality is one of these run here
    network: str  # Istio network (values.global.network, topology.istio.io/network)
    primary: bool  # holds the ingress gateway, Prometheus and Jaeger, and the host port mappings


@dataclass(frozen=True)
class KindSettings:
    cluster_name: str = "parallel-ai"  # kind cluster name; with 3 clusters each is <name>-<region>
    clusters: int = 1  # 1: every region in one cluster; 3: us-east, us-west, eu-west, one mesh
    profile: str = "dev"  # dev: access logs, small requests; prod: holdApplicationUntilProxyStarts
    context: str | None = None  # act on this kube context instead of kind-<cluster_name> (1 cluster)
    allow_context: str | None = None  # the one non-kind context the harness may act on
    dry_run: bool = False  # print every command and API call in order; change nothing
    no_create: bool = False  # use the cluster of `context` as it is: create none, install Istio only if absent
    in_cluster: bool = False  # `run` puts Locust into the cluster as Jobs (master and --workers N workers)
    ingress_url: str | None = None  # with --no-create: where the ingress answers on 127.0.0.1 (a port-forward)
    prometheus_url: str | None = None  # with --no-create: where the harness's Prometheus answers on 127.0.0.1
    max_percent: float = 50.0  # blast radius: at most this % of a service's pods down at once (raise explicitly)
    istio_version: str = "1.30.3"  # the release of the bundled CRD schemas; istioctl should match
    kubeconfig: Path | None = None  # default: $KUBECONFIG, then ~/.kube/config (kind writes there)
    project_dir: Path = PROJECT_DIR  # where kind-config/ and docker/ are
    kind_ready_timeout_s: float = 600.0  # per `kubectl wait`; image pulls on a cold machine are slow
    node_image: str | None = None  # kindest/node image; default: the one the kind release pins
    min_memory_gib_per_cluster: float = 4.0  # Docker memory preflight; Istio's kind guide asks for 8 in all

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"expected one of {', '.join(PROFILES)}, got {self.profile!r}", field="profile")
        if self.clusters not in CLUSTER_COUNTS:
            raise ConfigError(f"expected 1 or 3 clusters, got {self.clusters}", field="clusters")
        if not 0 < self.max_percent <= 100:
            raise ConfigError(f"expected a percent above 0 and at most 100, got {self.max_percent}",
                              field="max_percent")
        if self.no_create and self.context is None:
            raise ConfigError("--no-create uses a cluster you already have: name its kube context with --context "
                              "(HARNESS_CONTEXT) and allow it with --allow-context", field="context")
        for name in ("ingress_url", "prometheus_url"):
            url = getattr(self, name)
            if url is not None and not re.fullmatch(r"http://127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d{1,5}", url):
                raise ConfigError(f"expected http://127.x.x.x:PORT (the harness talks to 127.0.0.0/8 only; "
                                  f"use kubectl port-forward), got {url!r}", field=name)
        if (self.ingress_url is None) != (self.prometheus_url is None):
            raise ConfigError("give both HARNESS_INGRESS_URL and HARNESS_PROMETHEUS_URL, or neither",
                              field="ingress_url")
        if self.context is not None and self.clusters != 1:
            raise ConfigError("a context override names one cluster; with 3 clusters the contexts are "
                              "kind-<name>-<region>", field="context")
        if self.kind_ready_timeout_s <= 0:
            raise ConfigError(f"expected a positive number of seconds, got {self.kind_ready_timeout_s}",
                              field="kind_ready_timeout_s")

    @classmethod
    def from_env(cls, **overrides: Any) -> "KindSettings":
        """Defaults, then HARNESS_<FIELD> variables, then explicit overrides (CLI flags; None = unset)."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = os.environ.get(f"HARNESS_{field.name.upper()}")
            if raw is not None:
                values[field.name] = _convert(field.name, raw, str(field.type))
        values.update({key: value for key, value in overrides.items() if value is not None})
        for key in ("kubeconfig", "project_dir"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)

    @property
    def kind_config_dir(self) -> Path:
        return self.project_dir / "kind-config"

    @property
    def dockerfile(self) -> Path:
        return self.project_dir / "docker" / "Dockerfile"

    def cluster_specs(self) -> tuple[ClusterSpec, ...]:
        """The clusters of this setting, the primary first."""
        if self.clusters == 1:
            return (ClusterSpec(name=self.cluster_name, context=self.context or f"kind-{self.cluster_name}",
                                config_file=self.kind_config_dir / "single.yaml", regions=REGIONS,
                                network="parallel-ai-network", primary=True),)
        return tuple(
            ClusterSpec(name=f"{self.cluster_name}-{region}", context=f"kind-{self.cluster_name}-{region}",
                        config_file=self.kind_config_dir / f"{region}.yaml", regions=(region,),
                        network=f"network-{region}", primary=region == PRIMARY_REGION)
            for region in REGIONS
        )

    def cluster_of_region(self, region: str) -> ClusterSpec:
        for spec in self.cluster_specs():
            if region in spec.regions:
                return spec
        raise ConfigError(f"no cluster runs region {region!r}; regions: {', '.join(REGIONS)}", field="region")


def _convert(name: str, raw: str, kind: str) -> Any:
    variable = f"HARNESS_{name.upper()}"
    if "bool" in kind:
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ConfigError(f"expected 1/true/yes or 0/false/no, got {raw!r}", field=variable)
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"expected a number, got {raw!r}", field=variable) from exc
    return (raw or None) if "None" in kind else raw
