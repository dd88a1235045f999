"""Which DestinationRule applies to a host, with Istio's precedence and merging rules."""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.mesh.resources import DestinationRule, IstioConfig, Subset, TrafficPolicy, fqdn


@dataclass(frozen=True)
class EffectivePolicy:
    """The DestinationRule view of one host: top-level policy and subsets."""

    rule_names: tuple[str, ...]
    policy: TrafficPolicy
    subsets: tuple[Subset, ...]

    def subset(self, name: str) -> Subset | None:
        return next((s for s in self.subsets if s.name == name), None)

    def policy_for(self, subset: str | None) -> TrafficPolicy:
        """A subset's policy overrides the host's section by section, as in Istio."""
        found = self.subset(subset) if subset else None
        if found is None or found.policy is None:
            return self.policy
        own = found.policy
        return replace(
            self.policy,
            lb_simple=own.lb_simple or self.policy.lb_simple,
            locality_enabled=own.locality_enabled if own.locality_enabled is not None
            else self.policy.locality_enabled,
            failover=own.failover or self.policy.failover,
            pool=own.pool if own.pool != type(own.pool)() else self.policy.pool,
            outlier=own.outlier or self.policy.outlier,
            tls_mode=own.tls_mode or self.policy.tls_mode,
        )


def host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def effective_policy(istio: IstioConfig, host: str) -> EffectivePolicy:
    """Most specific host wins; rules with the same host merge subsets, first policy wins."""
    target = fqdn(host)
    candidates: dict[str, list[DestinationRule]] = {}
    for rule in istio.destination_rules:
        pattern = fqdn(rule.host, rule.namespace)
        if host_matches(pattern, target):
            candidates.setdefault(pattern, []).append(rule)
    if not candidates:
        return EffectivePolicy(rule_names=(), policy=TrafficPolicy(), subsets=())
    best = max(candidates, key=lambda p: (not p.startswith("*"), len(p)))
    rules = candidates[best]
    policy = next((r.policy for r in rules if r.policy is not None), TrafficPolicy())
    subsets: list[Subset] = []
    for rule in rules:
        subsets.extend(s for s in rule.subsets if all(s.name != have.name for have in subsets))
    return EffectivePolicy(rule_names=tuple(r.name for r in rules), policy=policy, subsets=tuple(subsets))
