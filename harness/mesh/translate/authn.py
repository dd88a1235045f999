"""PeerAuthentication to one workload's effective mTLS mode, composed as Istio's pilot does.

Follows istio/istio pilot/pkg/security/authn/policy_applier.go `ComposePeerAuthentication`: one
mesh-wide policy (root namespace, no selector), one namespace-wide policy (no selector) and one
workload policy (selector, not in the root namespace) apply; within a scope the first declared wins
(Istio: the oldest); UNSET (no `mtls` or no `mode`) inherits the parent scope; port-level UNSET
inherits the workload's result; nothing at all is PERMISSIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from harness.errors import ConfigError
from harness.mesh.resources import ROOT_NAMESPACE, PeerAuthentication

UNSET = "UNSET"


@dataclass(frozen=True)
class EffectiveMtls:
    """A workload's mTLS mode, and the port-level modes of its workload policy."""

    mode: str
    per_port: tuple[tuple[int, str], ...] = ()
    workload_policy: str | None = None  # the name of the workload policy that set per_port

    def for_port(self, port: int) -> str:
        return dict(self.per_port).get(port, self.mode)


def _first(policies: Iterable[PeerAuthentication]) -> PeerAuthentication | None:
    return next(iter(policies), None)


def compose_mtls(policies: Iterable[PeerAuthentication], namespace: str,
                 labels: Iterable[tuple[str, str]]) -> EffectiveMtls:
    """The effective mode of a workload in `namespace` with `labels`."""
    labels = set(labels)
    policies = list(policies)
    mesh = _first(p for p in policies if p.namespace == ROOT_NAMESPACE and not p.selector)
    space = _first(p for p in policies if p.namespace == namespace != ROOT_NAMESPACE and not p.selector)
    workload = _first(p for p in policies if p.namespace == namespace != ROOT_NAMESPACE and p.selector
                      and set(p.selector) <= labels)
    mode = "PERMISSIVE"
    for scope in (mesh, space, workload):
        if scope is not None and scope.mode != UNSET:
            mode = scope.mode
    per_port = ()
    if workload is not None:
        per_port = tuple((port, mode if port_mode == UNSET else port_mode) for port, port_mode in workload.port_modes)
    return EffectiveMtls(mode, per_port, workload.name if workload is not None else None)


def inbound_mode(policies: Iterable[PeerAuthentication], namespace: str, labels: Iterable[tuple[str, str]],
                 ports: tuple[int, ...]) -> str:
    """The mode of the sidecar's one inbound listener, which fronts the container port(s) `ports`.

    A port-level mode for a port the sidecar does not front cannot be honoured: refused, naming it."""
    effective = compose_mtls(policies, namespace, labels)
    for port, _ in effective.per_port:
        if port not in ports:
            raise ConfigError(
                f"PeerAuthentication {effective.workload_policy!r}: port {port} is not a port the local sidecar intercepts "
                f"(container ports: {', '.join(map(str, ports))})", field=f"spec.portLevelMtls.{port}")
    modes = {effective.for_port(port) for port in ports}
    if len(modes) != 1:
        raise ConfigError(f"the local sidecar has one inbound listener for ports {ports}; they need one mode, "
                          f"got {sorted(modes)}", field="spec.portLevelMtls")
    return modes.pop()
