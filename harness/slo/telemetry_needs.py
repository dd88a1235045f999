"""What the run's SLO queries need from the mesh's Telemetry, checked before anything starts.

Istio's Telemetry API may REMOVE a standard tag or disable a metric (spec.metrics[].overrides[]); the
proxies then report the series without that label, or not at all (Istio's "Customizing Istio Metrics
with Telemetry API" task; istio/proxy istio_stats.cc). A query that filters on the removed label
matches nothing: availability's `response_code=~"5.."` becomes `or vector(0)`, an availability of 1.0
whatever happens, and the warm-up's lag probe (harness/slo/lag.py, `response_code="405"`) never sees
its requests. So every metric and label an SLO's PromQL selects on, and those the lag probe counts,
must be kept by the Telemetry that applies to each proxy reporting those series; otherwise a
ConfigError (exit 2) names the Telemetry's file and field, the metric and label, and the SLO.

Which proxies report a series: reporter="destination" the pods of the service the query names;
reporter="source" the ingress gateway and the other pods configured to call it (their `*_HOST`
variables, from which the apps take each upstream's host); every proxy when the query names no
service. A
Telemetry's effect per proxy follows Istio's merge (root namespace, namespace, then the workload's
own resource; telemetry_api.metric_plan), so the override that wins is the one named.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.mesh.loader import Located
from harness.mesh.resources import NAMESPACE
from harness.mesh.telemetry_api import METRICS, MetricPlan, TelemetryResource, check_telemetry, metric_plan
from harness.mesh.topology import GATEWAY_LABELS, GATEWAY_NAME, Topology
from harness.slo.lag import PATHS
from harness.slo.model import REPORTERS, Reporter, Slo
from harness.slo.promql import template_promql

__all__ = ["Need", "check_telemetry_needs", "lag_probe_needs", "slo_needs"]

_SERIES = re.compile(r"\bistio_([a-z_]+?)(?:_bucket|_count|_sum)?\b\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
_STATS_NAMES = set(METRICS.values())
LAG_PROBE = "the warm-up's telemetry lag probe (harness/slo/lag.py)"
LIVE_SUFFIX = "as applied to the running mesh (harness apply)"  # run/mesh_telemetry.py names such a resource


@dataclass(frozen=True)
class Need:
    """One Istio series a query reads: the metric, the labels it selects on, whose view, which service."""

    metric: str  # the stats plugin's name, e.g. "requests_total"
    matchers: tuple[tuple[str, str], ...]  # (label, the matcher as written), e.g. ("response_code", '=~"5.."')
    reporter: Reporter | None  # None: the query does not pin it, both reporters' series count
    service: str | None  # destination_service_name, None: any
    who: str  # "SLO 'ai-agent-availability' (slos/default.yaml slos[0])" or LAG_PROBE


def _needs(promql: str, who: str, *, service: str | None = None) -> list[Need]:
    needs = []
    for match in _SERIES.finditer(promql):
        metric = match.group(1)
        if metric not in _STATS_NAMES:
            continue
        matchers = tuple((label, f"{op}{value}") for label, op, value in _MATCHER.findall(match.group(2) or ""))
        exact = {label: written[2:-1] for label, written in matchers if written.startswith('="')}
        reporter = exact.get("reporter")
        needs.append(Need(metric=metric, matchers=matchers,
                          reporter=reporter if reporter in REPORTERS else None,  # type: ignore[arg-type]
                          service=exact.get("destination_service_name", service), who=who))
    return needs


def slo_needs(slo: Slo) -> list[Need]:
    """The Istio series a mesh SLO's PromQL (template or raw query) selects; none for a client SLO."""
    if slo.source != "mesh":
        return []
    where = " ".join(part for part in (slo.file, slo.field) if part)
    promql = template_promql(slo).replace("$service", slo.service or "")
    return _needs(promql, f"SLO {slo.name!r}" + (f" ({where})" if where else ""), service=slo.service)


def lag_probe_needs() -> list[Need]:
    """The series the lag probe must count its marked requests in: the ingress gateway's (reporter
    "source"). The ai-agent sidecars' are optional: lag._match leaves out a sidecar that does not count
    its probes, so a Telemetry on the server side alone does not stop the probe."""
    return [dataclasses.replace(need, reporter="source") for selector, _ in PATHS
            for need in _needs(selector, LAG_PROBE)]


@dataclass(frozen=True)
class _Proxy:
    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    reporter: Reporter


def _proxies(need: Need, topology: Topology) -> list[_Proxy]:
    reporters = (need.reporter,) if need.reporter is not None else REPORTERS
    found: list[_Proxy] = []
    try:
        own = topology.pods_of(topology.service(need.service)) if need.service is not None else topology.pods
    except KeyError:  # an external host: no sidecar reports it as its destination
        own = ()
    for reporter in reporters:
        if reporter == "destination":
            pods = own
        elif need.service is None:
            pods = topology.pods
        else:  # the callers: pods configured with the service's host (harness/services/config.py)
            pods = tuple(p for p in topology.pods if p not in own and any(
                key.endswith("_HOST") and value.split(".")[0] == need.service for key, value in p.env))
        found += [_Proxy(p.name, p.namespace, p.labels, reporter) for p in pods]
        if reporter == "source":
            found.append(_Proxy(GATEWAY_NAME, NAMESPACE, GATEWAY_LABELS, reporter))
    return found


def _where(resource: TelemetryResource) -> str:
    return f"Telemetry {resource.namespace}/{resource.name}"


def check_telemetry_needs(needs: Iterable[Need], documents: Iterable[Located], topology: Topology) -> None:
    """ConfigError (file and field of the Telemetry override) when a Telemetry among `documents` disables
    a metric or removes a label one of `needs` selects on, for a proxy that reports that series."""
    resources = [check_telemetry(doc, file=file) for doc, file in documents if doc.get("kind") == "Telemetry"]
    if not resources:
        return
    # (file, field) of the winning override -> what it does, and per reader (who, what it selects) the proxies
    problems: dict[tuple[str | None, str], dict[str, list[str]]] = {}
    culprit: dict[tuple[str | None, str], tuple[TelemetryResource, str]] = {}
    plans: dict[_Proxy, MetricPlan] = {}
    for need in needs:
        for proxy in _proxies(need, topology):
            if proxy not in plans:
                plans[proxy] = metric_plan(resources, proxy.reporter, proxy.namespace, proxy.labels)
            plan = plans[proxy]
            removed = plan.removed_by.get(need.metric, {})
            found = []
            if need.metric in plan.disabled_by:
                resource, override = plan.disabled_by[need.metric]
                found.append((resource, f"{override.field}.disabled", f"disables istio_{need.metric}",
                              f"{need.who} reads istio_{need.metric}"))
            for label, written in need.matchers:
                if label in removed:
                    resource, tag = removed[label]
                    found.append((resource, tag.field, f"removes the label {label} from istio_{need.metric}",
                                  f"{need.who} selects {label}{written} in it"))
            for resource, field, what, reader in found:
                key = (resource.file, field)
                culprit[key] = (resource, what)
                problems.setdefault(key, {}).setdefault(f"{reader} (reporter={proxy.reporter}", []).append(proxy.name)
    if not problems:
        return
    key = next(iter(problems))
    resource, what = culprit[key]
    shown = "; ".join(f"{reader} on {_names(proxies)})" for reader, proxies in problems[key].items())
    others = len(problems) - 1
    live = resource.file is None or resource.file.endswith(LIVE_SUFFIX)
    raise ConfigError(
        f"{_where(resource)} {what}, which the run's queries need: {shown}. Without it the query matches "
        f"no series ({_consequence(what)}); keep the label and metric for these proxies, or run without "
        f"this Telemetry" + (" (`harness reset` restores the declared one)" if live else "")
        + (f" ({others} more override(s) of the mesh's Telemetry do the same)" if others else ""),
        file=resource.file or _where(resource), field=key[1])


def _consequence(what: str) -> str:
    """What a query without the metric or label would do, in the user's terms."""
    if "istio_requests_total" in what:
        return "an availability would read 1.0 with no 5xx series, the lag probe would never see its requests"
    if "istio_request_duration_milliseconds" in what:
        return "a latency SLO would have no data, or the quantile of other requests than it selects"
    return "the SLO would have no data, or describe other requests than it selects"


def _names(proxies: list[str]) -> str:
    unique = sorted(set(proxies), key=lambda name: (name != GATEWAY_NAME, name))
    return ", ".join(unique[:3]) + (f" and {len(unique) - 3} more" if len(unique) > 3 else "")
