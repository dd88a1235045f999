"""ClusterLoadAssignments: ready pods of a service or subset, prioritised by locality failover."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from harness.mesh.resources import TrafficPolicy
from harness.mesh.topology import Pod
from harness.mesh.translate.model import Endpoint, ExternalEndpoint


def locality_priority(policy: TrafficPolicy, source_region: str, region: str) -> int:
    """Istio's locality failover: own region first, then the failover target, then the rest.

    Locality load balancing only takes effect where outlier detection is configured (Istio
    needs it to notice unhealthy endpoints), and `localityLbSetting.enabled: false` turns it off.
    """
    if policy.outlier is None or policy.locality_enabled is False:
        return 0
    if region == source_region:
        return 0
    targets = [to for frm, to in policy.failover if frm == source_region]
    if targets:
        return 1 if region in targets else 2
    return 1


def load_assignment(cluster: str, pods: Iterable[Pod], endpoints: dict[str, Endpoint],
                    policy: TrafficPolicy, source_region: str) -> dict[str, Any]:
    """Group ready pods by region; priorities are renumbered to be contiguous from 0."""
    by_priority: dict[int, dict[str, list[Endpoint]]] = defaultdict(lambda: defaultdict(list))
    for pod in pods:
        endpoint = endpoints.get(pod.name)
        if endpoint is None or not endpoint.ready:
            continue
        priority = locality_priority(policy, source_region, pod.region)
        by_priority[priority][pod.region].append(endpoint)
    localities = []
    for rank, priority in enumerate(sorted(by_priority)):
        for region, members in sorted(by_priority[priority].items()):
            localities.append({
                "locality": {"region": region},
                "priority": rank,
                "lb_endpoints": [_lb_endpoint(e.address, e.port, e.pod) for e in members],
            })
    return {"cluster_name": cluster, "endpoints": localities}


def external_assignment(cluster: str, endpoint: ExternalEndpoint | None) -> dict[str, Any]:
    if endpoint is None:
        return {"cluster_name": cluster, "endpoints": []}
    return {"cluster_name": cluster,
            "endpoints": [{"lb_endpoints": [_lb_endpoint(endpoint.address, endpoint.port, endpoint.host)]}]}


def _lb_endpoint(address: str, port: int, hostname: str) -> dict[str, Any]:
    return {"endpoint": {"address": {"socket_address": {"address": address, "port_value": port}},
                         "hostname": hostname}}
