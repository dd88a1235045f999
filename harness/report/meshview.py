"""Look-ups into the declared mesh for advice: which VirtualService route and DestinationRule govern a service.

Istio's precedence is followed where it matters: for a host, the DestinationRule with the exact host
wins over a wildcard one, and only that rule's trafficPolicy applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from typing import TYPE_CHECKING

from harness import environment
from harness.mesh.resources import DestinationRule, HTTPRoute, VirtualService, fqdn

if TYPE_CHECKING:
    from harness.mesh.loader import MeshModel


@dataclass(frozen=True)
class RouteRef:
    """One http route of a VirtualService with its field path."""

    service: VirtualService
    index: int
    route: HTTPRoute
    file: str | None

    @property
    def resource(self) -> str:
        return f"VirtualService/{self.service.name}"

    @property
    def path(self) -> str:
        return f"spec.http[{self.index}]"

    @property
    def description(self) -> str:
        """e.g. "spec.http[0] (x-user-tier=premium -> v2)" or "spec.http[2] (default -> v1 90%, v2 10%)"."""
        matches = [f"{name}={m.value}" for match in self.route.matches for name, m in match.headers]
        matches += [f"uri {match.uri.kind} {match.uri.value}" for match in self.route.matches if match.uri]
        destinations = ", ".join(f"{d.subset or d.host.split('.')[0]}"
                                 + (f" {d.weight}%" if len(self.route.destinations) > 1 else "")
                                 for d in self.route.destinations)
        return f"{self.path} ({' and '.join(matches) or 'default'} -> {destinations})"


class MeshView:
    """The declared mesh, asked about services by short name or FQDN."""

    def __init__(self, model: MeshModel) -> None:
        self.model = model
        self._files = {(doc["kind"], doc["metadata"]["name"]): _shown(file) for doc, file in model.documents}

    def file_of(self, kind: str, name: str) -> str | None:
        return self._files.get((kind, name))

    def routes_to(self, service: str) -> list[RouteRef]:
        """Every http route of the VirtualServices whose hosts include the service."""
        host = fqdn(service)
        return [RouteRef(vs, i, route, self.file_of("VirtualService", vs.name))
                for vs in self.model.istio.virtual_services if host in {fqdn(h, vs.namespace) for h in vs.hosts}
                for i, route in enumerate(vs.routes)]

    def routes_for_tier(self, service: str, tier: str | None) -> list[RouteRef]:
        """The routes a tier's requests take: a route matching a header on the tier, else the default one."""
        routes = self.routes_to(service)
        if tier is None:
            return routes
        matching = [r for r in routes if any(tier == m.value or tier in name
                                             for match in r.route.matches for name, m in match.headers)]
        return matching or [r for r in routes if not r.route.matches][:1]

    def destination_rule(self, service: str) -> DestinationRule | None:
        """The rule Istio applies to the service: exact host first, then the longest matching wildcard."""
        host = fqdn(service)
        exact = [dr for dr in self.model.istio.destination_rules if fqdn(dr.host, dr.namespace) == host]
        if exact:
            return exact[0]
        wild = [dr for dr in self.model.istio.destination_rules
                if dr.host.startswith("*") and host.endswith(dr.host[1:])]
        return max(wild, key=lambda dr: len(dr.host), default=None)

    def service_of(self, target: str) -> str:
        """The short service name of a pod name, an app label, a service name or a host."""
        topology = self.model.topology
        for pod in topology.pods:
            if pod.name == target:
                services = topology.services_of(pod)
                return services[0].name if services else pod.app
        for service in topology.services:
            if ("app", target) in service.selector:
                return service.name
        return target.split(".")[0]

    def dependencies(self, service: str) -> list[str]:
        """The other mesh services the service's pods are configured to call (their `*_SERVICE_HOST`
        variables, from which the apps take each upstream's host: harness/services/config.py), in
        declaration order. The seed gives every app the same variables, so this holds for a service that
        calls upstreams at all (the ingress service, ai-agent), not for a leaf such as user."""
        topology = self.model.topology
        try:
            pods = topology.pods_of(topology.service(self.service_of(service)))
        except KeyError:
            return []
        names = [s.name for s in topology.services]
        called = {value.split(".")[0] for pod in pods for key, value in pod.env if key.endswith("_SERVICE_HOST")}
        return [name for name in names if name in called and name != self.service_of(service)]

    def services_in(self, region: str) -> list[str]:
        """Services with a pod in the region, in declaration order."""
        topology = self.model.topology
        return [s.name for s in topology.services if any(p.region == region for p in topology.pods_of(s))]

    def regions_of(self, service: str) -> list[str]:
        topology = self.model.topology
        try:
            pods = topology.pods_of(topology.service(service))
        except KeyError:
            return []
        return sorted({p.region for p in pods})

    def subset_regions(self, service: str, subset: str) -> list[str]:
        """Regions of the service's pods that the subset's labels select (from its DestinationRule)."""
        rule = self.destination_rule(service)
        labels = next((set(s.labels) for s in (rule.subsets if rule else ()) if s.name == subset), None)
        topology = self.model.topology
        try:
            pods = topology.pods_of(topology.service(service))
        except KeyError:
            return []
        return sorted({p.region for p in pods if labels is not None and labels <= set(p.labels)})

    def ingress_service(self) -> str | None:
        """The service behind the ingress gateway: the host of the first VirtualService bound to a gateway."""
        for vs in self.model.istio.virtual_services:
            if any(g != "mesh" for g in vs.gateways) and vs.hosts:
                return vs.hosts[0].split(".")[0]
        return None


def _shown(file: str) -> str:
    """A manifest path relative to the working directory when it is below it, as a user would type it."""
    try:
        return str(Path(file).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(file)


def declared_view() -> MeshView:
    """The shipped mesh, or the files under HARNESS_MANIFESTS_DIR when set (as the local platform does)."""
    return _view(environment.get("HARNESS_MANIFESTS_DIR"))


@lru_cache(maxsize=4)
def _view(directory: str | None) -> MeshView:
    from harness.mesh.loader import declared_model  # validating every manifest takes a second: only when asked

    paths = None
    if directory is not None:
        paths = sorted(p for p in Path(directory).rglob("*") if p.suffix in (".yaml", ".yml"))
    return MeshView(declared_model(paths))
