"""Telemetry resources (telemetry.istio.io): checked as Istio would need them, and what they ask of metrics.

Istio's stats plugin (istio/proxy `istio_stats.cc`) silently drops what it cannot use: a tag whose
value does not parse as CEL, a removed tag that is not one of its standard tags ("Tag is not
standard"), a metric it does not know. On both platforms that means a label missing from every metric
and SLO queries that never match, so `check_telemetry` refuses each of these with the file and field,
before anything is applied: every `tagOverrides[].value` is parsed as CEL (cel-python) and its names
checked against the attributes the plugin offers (harness/mesh/cel.py); metric names, tag names,
match modes and provider names are checked against Istio's lists and the mesh's providers.

`metric_plan` resolves, for one proxy, which standard metrics are disabled and which tags each one
adds, replaces or removes, in Istio's order (root namespace, then the workload's namespace, then
selector-matching resources; later entries override earlier ones tag by tag).

Istio takes one selector-less Telemetry per namespace, the root namespace's and the workload's: the
oldest (pilot/pkg/model/telemetry.go `namespaceWideTelemetryConfig`; an empty `matchLabels` counts as
no selector) and ignores the others without a word; here a second one is refused
(`check_one_per_namespace`, when the resources load). The Telemetry API makes it "only valid to have
one resource selecting any given workload" (istioctl analyze IST0159 ConflictingTelemetryWorkloadSelectors;
Istio 1.30 then merges them in creation order): refused too (`check_workload_selectors`, when the
resources load, for the declared pods and the gateway). A selector on a Telemetry in the root
namespace is ignored by Istio ("any workload-specific selector in the root configuration namespace
will be ignored"): refused by `check_telemetry`. Each refusal names the file and `spec.selector`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from harness.errors import ConfigError
from harness.mesh import cel
from harness.mesh.resources import NAMESPACE

# Istio's Telemetry API metric selectors -> the stats plugin's metric names (istio_ prefix dropped).
METRICS = {
    "REQUEST_COUNT": "requests_total",
    "REQUEST_DURATION": "request_duration_milliseconds",
    "REQUEST_SIZE": "request_bytes",
    "RESPONSE_SIZE": "response_bytes",
    "TCP_OPENED_CONNECTIONS": "tcp_connections_opened_total",
    "TCP_CLOSED_CONNECTIONS": "tcp_connections_closed_total",
    "TCP_SENT_BYTES": "tcp_sent_bytes_total",
    "TCP_RECEIVED_BYTES": "tcp_received_bytes_total",
    "GRPC_REQUEST_MESSAGES": "request_messages_total",
    "GRPC_RESPONSE_MESSAGES": "response_messages_total",
}
ALL_METRICS = "ALL_METRICS"
# The stats plugin's standard tags (istio_stats.cc `all_tags_`), in its order.
STANDARD_TAGS = (
    "reporter", "source_workload", "source_workload_namespace", "source_principal", "source_app",
    "source_version", "source_canonical_service", "source_canonical_revision", "source_cluster",
    "destination_workload", "destination_workload_namespace", "destination_principal", "destination_app",
    "destination_version", "destination_service", "destination_service_name", "destination_service_namespace",
    "destination_canonical_service", "destination_canonical_revision", "destination_cluster",
    "request_protocol", "response_flags", "connection_security_policy", "response_code", "grpc_response_status",
)
MODES = ("CLIENT_AND_SERVER", "CLIENT", "SERVER")
ROOT_NAMESPACE = "istio-system"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Providers Istio defines without meshConfig (its default mesh config): prometheus for metrics,
# envoy for access logs. Others come from meshConfig.extensionProviders.
_BUILTIN = {"metrics": {"prometheus"}, "accessLogging": {"envoy"}, "tracing": set()}
_PROVIDER_KINDS = {
    "metrics": {"prometheus", "stackdriver"},
    "tracing": {"zipkin", "opentelemetry", "datadog", "lightstep", "skywalking", "stackdriver"},
    "accessLogging": {"envoyFileAccessLog", "envoyOtelAls", "envoyHttpAls", "envoyTcpAls", "stackdriver"},
}
CONTROL_PLANE = Path(__file__).resolve().parent / "manifests" / "kind" / "istio" / "control-plane.yaml"


@dataclass(frozen=True)
class TagOverride:
    """One `tagOverrides` entry: REMOVE the tag, or UPSERT it with a checked CEL value."""

    tag: str
    remove: bool
    value: str | None  # the CEL text; None when removed
    field: str  # its path in the resource, for errors


@dataclass(frozen=True)
class MetricOverride:
    """One `overrides[]` entry: which metrics and reporters it matches and what it changes."""

    metrics: tuple[str, ...]  # stats plugin names, e.g. ("requests_total",)
    mode: str  # CLIENT_AND_SERVER, CLIENT (reporter=source) or SERVER (reporter=destination)
    disabled: bool | None
    tags: tuple[TagOverride, ...]
    field: str


@dataclass(frozen=True)
class TelemetryResource:
    """A Telemetry resource's metrics part, checked, with where it came from."""

    name: str
    namespace: str
    file: str | None
    selector: tuple[tuple[str, str], ...] | None  # None: the whole namespace
    overrides: tuple[MetricOverride, ...] = field(default=())
    tracing: "TracingEntry | None" = None  # spec.tracing[0], checked


def mesh_providers(path: Path = CONTROL_PLANE) -> dict[str, set[str]]:
    """Provider names per Telemetry section: Istio's built-ins plus meshConfig.extensionProviders."""
    from harness.mesh.schema import load_yaml_documents

    known = {section: set(names) for section, names in _BUILTIN.items()}
    for doc in load_yaml_documents(path):
        for provider in ((doc.get("spec") or {}).get("meshConfig") or {}).get("extensionProviders") or []:
            for section, kinds in _PROVIDER_KINDS.items():
                if kinds & set(provider):
                    known[section].add(provider["name"])
    return known


def _error(doc: dict[str, Any], file: Any, path: str, message: str) -> ConfigError:
    name = (doc.get("metadata") or {}).get("name", "?")
    return ConfigError(f"Telemetry {name!r}: {message}", file=str(file) if file is not None else None, field=path)


def _check_providers(doc: dict[str, Any], file: Any, spec: dict[str, Any], known: dict[str, set[str]]) -> None:
    for section in ("metrics", "tracing", "accessLogging"):
        for i, entry in enumerate(spec.get(section) or []):
            for j, provider in enumerate(entry.get("providers") or []):
                name = provider.get("name")
                if name not in known[section]:
                    raise _error(doc, file, f"spec.{section}[{i}].providers[{j}].name",
                                 f"unknown {section} provider {name!r}; the mesh defines "
                                 f"{', '.join(sorted(known[section])) or 'none'} (meshConfig.extensionProviders "
                                 f"in {CONTROL_PLANE.name})")


def _tag_override(doc: dict[str, Any], file: Any, path: str, tag: str, spec: Any) -> TagOverride:
    if not _LABEL_NAME.match(tag):
        raise _error(doc, file, path, f"tag {tag!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)")
    spec = spec or {}
    operation = spec.get("operation", "UPSERT")
    if operation == "REMOVE":
        if tag not in STANDARD_TAGS:
            raise _error(doc, file, f"{path}.operation",
                         f"cannot REMOVE {tag!r}: not one of Istio's standard tags ({', '.join(STANDARD_TAGS)})")
        if spec.get("value") not in (None, ""):
            raise _error(doc, file, f"{path}.value", "a REMOVE override takes no value")
        return TagOverride(tag=tag, remove=True, value=None, field=path)
    if operation != "UPSERT":
        raise _error(doc, file, f"{path}.operation", f"expected UPSERT or REMOVE, got {operation!r}")
    if tag == "reporter":
        raise _error(doc, file, path, "the reporter tag cannot be overridden (the stats plugin sets it)")
    value = spec.get("value")
    try:
        cel.check(value)
    except cel.CelError as exc:
        raise _error(doc, file, f"{path}.value", str(exc)) from exc
    return TagOverride(tag=tag, remove=False, value=value, field=path)


def _override(doc: dict[str, Any], file: Any, path: str, spec: dict[str, Any]) -> MetricOverride:
    match = spec.get("match") or {}
    if "customMetric" in match:
        raise _error(doc, file, f"{path}.match.customMetric",
                     f"unknown metric {match['customMetric']!r}: the mesh defines no custom metrics; "
                     f"expected match.metric, one of {ALL_METRICS}, {', '.join(METRICS)}")
    metric = match.get("metric", ALL_METRICS)
    if metric != ALL_METRICS and metric not in METRICS:
        raise _error(doc, file, f"{path}.match.metric",
                     f"unknown metric {metric!r}; expected {ALL_METRICS} or one of {', '.join(METRICS)}")
    mode = match.get("mode", "CLIENT_AND_SERVER")
    if mode not in MODES:
        raise _error(doc, file, f"{path}.match.mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    tags = tuple(_tag_override(doc, file, f"{path}.tagOverrides.{tag}", tag, value)
                 for tag, value in (spec.get("tagOverrides") or {}).items())
    disabled = spec.get("disabled")
    return MetricOverride(metrics=tuple(METRICS.values()) if metric == ALL_METRICS else (METRICS[metric],),
                          mode=mode, disabled=None if disabled is None else bool(disabled), tags=tags, field=path)


def match_labels(spec: dict[str, Any]) -> dict[str, str] | None:
    """A Telemetry spec's `selector.matchLabels`; None for a namespace-wide one: no selector, or an empty
    matchLabels, which Istio reads as none (namespaceWideTelemetryConfig: `len(GetMatchLabels()) == 0`)."""
    return ((spec or {}).get("selector") or {}).get("matchLabels") or None


def check_telemetry(doc: dict[str, Any], *, file: Any = None,
                    providers: dict[str, set[str]] | None = None) -> TelemetryResource:
    """Check one Telemetry document; ConfigError names the file and the field of the first problem."""
    spec = doc.get("spec") or {}
    meta = doc.get("metadata") or {}
    _check_providers(doc, file, spec, providers if providers is not None else mesh_providers())
    overrides: list[MetricOverride] = []
    for i, entry in enumerate(spec.get("metrics") or []):
        for j, override in enumerate(entry.get("overrides") or []):
            overrides.append(_override(doc, file, f"spec.metrics[{i}].overrides[{j}]", override))
    selector = match_labels(spec)
    namespace = meta.get("namespace", NAMESPACE)
    if selector and namespace == ROOT_NAMESPACE:
        raise _error(doc, file, "spec.selector", f"a workload selector in the root namespace {ROOT_NAMESPACE} "
                     "is ignored by Istio (mesh-wide Telemetry takes none); put a workload's Telemetry in its "
                     "own namespace")
    return TelemetryResource(name=meta.get("name", "?"), namespace=namespace,
                             file=str(file) if file is not None else None,
                             selector=None if selector is None else tuple(sorted(selector.items())),
                             overrides=tuple(overrides), tracing=_tracing(doc, file, spec))


# -- tracing ------------------------------------------------------------------------------------------
# Istio's Telemetry API `Tracing` (https://istio.io/latest/docs/reference/config/telemetry/#Tracing):
# providers, randomSamplingPercentage, customTags (literal, environment or header; Istio's
# "customTags" task, https://istio.io/latest/docs/tasks/observability/distributed-tracing/telemetry-api/)
# are translated; every other field of an entry is refused by name (never accepted and ignored).
TRACING_FIELDS = ("providers", "randomSamplingPercentage", "customTags")
_TAG_KINDS = {"literal": ("value",), "environment": ("name", "defaultValue"), "header": ("name", "defaultValue")}


@dataclass(frozen=True)
class CustomTag:
    """One `customTags` entry: a span tag from a literal, an environment variable or a request header."""

    tag: str
    kind: str  # literal | environment | header
    name: str  # the header or variable name; the value for a literal
    default: str | None
    field: str


@dataclass(frozen=True)
class TracingEntry:
    """A Telemetry resource's tracing entry, checked: sampling in percent (None: not set here)."""

    providers: tuple[str, ...]
    sampling_percent: float | None
    tags: tuple[CustomTag, ...]
    field: str


def _custom_tag(doc: dict[str, Any], file: Any, path: str, tag: str, spec: Any) -> CustomTag:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in _TAG_KINDS:
        raise _error(doc, file, path, f"expected exactly one of {', '.join(_TAG_KINDS)}, got {spec!r}")
    kind, body = next(iter(spec.items()))
    body = body or {}
    for key in body:
        if key not in _TAG_KINDS[kind]:
            raise _error(doc, file, f"{path}.{kind}.{key}",
                         f"unknown field; a {kind} tag takes {', '.join(_TAG_KINDS[kind])}")
    key = "value" if kind == "literal" else "name"
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _error(doc, file, f"{path}.{kind}.{key}", f"expected a non-empty string, got {value!r}")
    return CustomTag(tag=tag, kind=kind, name=value, default=body.get("defaultValue"), field=path)


def _tracing(doc: dict[str, Any], file: Any, spec: dict[str, Any]) -> TracingEntry | None:
    entries = spec.get("tracing") or []
    if not entries:
        return None
    for i, entry in enumerate(entries):
        if not (entry or {}).get("providers"):
            raise _error(doc, file, f"spec.tracing[{i}].providers",
                         "an entry without providers applies to the mesh's default tracing provider "
                         "(meshConfig.defaultProviders.tracing) and the mesh defines none: name the provider "
                         "in the same entry as the sampling and custom tags")
    if len(entries) > 1:
        raise _error(doc, file, "spec.tracing[1]", "the local mesh has one trace collector: give one tracing "
                     "entry (providers, randomSamplingPercentage and customTags together)")
    entry = entries[0] or {}
    for key in entry:
        if key not in TRACING_FIELDS:
            raise _error(doc, file, f"spec.tracing[0].{key}",
                         f"not supported by the local mesh's tracing; supported: {', '.join(TRACING_FIELDS)}")
    sampling = entry.get("randomSamplingPercentage")
    if sampling is not None and (isinstance(sampling, bool) or not isinstance(sampling, (int, float))
                                 or not 0 <= sampling <= 100):
        raise _error(doc, file, "spec.tracing[0].randomSamplingPercentage",
                     f"expected a percentage from 0 to 100, got {sampling!r}")
    tags = tuple(_custom_tag(doc, file, f"spec.tracing[0].customTags.{tag}", tag, value)
                 for tag, value in (entry.get("customTags") or {}).items())
    return TracingEntry(providers=tuple(p.get("name") for p in entry.get("providers") or []),
                        sampling_percent=None if sampling is None else float(sampling), tags=tags,
                        field="spec.tracing[0]")


DEFAULT_SAMPLING_PERCENT = 1.0  # meshConfig.defaultConfig.tracing.sampling's default in Istio


@dataclass(frozen=True)
class TracingPlan:
    """What one proxy traces: sampling percent and custom tags, merged as Istio merges them."""

    sampling_percent: float
    tags: tuple[CustomTag, ...]


def tracing_plan(resources: Iterable[TelemetryResource], namespace: str,
                 labels: Iterable[tuple[str, str]]) -> TracingPlan | None:
    """Root namespace, then namespace, then workload-selecting resources: a more specific resource's
    sampling replaces the one before and its custom tags replace same-named ones. None: no tracing."""
    chosen = [r for r in _chosen(resources, namespace, tuple(labels)) if r.tracing is not None]
    if not chosen:
        return None
    sampling = DEFAULT_SAMPLING_PERCENT
    tags: dict[str, CustomTag] = {}
    for resource in chosen:
        assert resource.tracing is not None
        if resource.tracing.sampling_percent is not None:
            sampling = resource.tracing.sampling_percent
        tags.update({tag.tag: tag for tag in resource.tracing.tags})
    return TracingPlan(sampling_percent=sampling, tags=tuple(tags.values()))


# -- what one proxy emits ---------------------------------------------------------------------------

Reporter = Literal["source", "destination"]


@dataclass(frozen=True)
class MetricPlan:
    """For one proxy and reporter: metrics turned off, and per metric the tags to set or remove."""

    upserts: dict[str, dict[str, TagOverride]]  # metric -> tag -> override (value set)
    # metric -> the resource and override that disabled it / tag -> the one that removed it (errors name
    # their file and field: slo/telemetry_needs.py)
    disabled_by: dict[str, tuple[TelemetryResource, MetricOverride]] = field(default_factory=dict)
    removed_by: dict[str, dict[str, tuple[TelemetryResource, TagOverride]]] = field(default_factory=dict)

    @property
    def disabled(self) -> frozenset[str]:
        return frozenset(self.disabled_by)

    @property
    def removed(self) -> dict[str, frozenset[str]]:  # metric -> tags removed
        return {metric: frozenset(tags) for metric, tags in self.removed_by.items()}


def check_one_per_namespace(resources: Iterable[TelemetryResource]) -> None:
    """A second selector-less Telemetry in a namespace is refused: Istio would use only the oldest."""
    first: dict[str, TelemetryResource] = {}
    for resource in resources:
        if resource.selector is not None:
            continue
        if resource.namespace in first:
            earlier = first[resource.namespace]
            where = f" ({earlier.file})" if earlier.file else ""
            raise ConfigError(
                f"Telemetry {resource.name!r}: namespace {resource.namespace} already has a Telemetry without "
                f"a selector, {earlier.name!r}{where}; Istio applies only the oldest of them and ignores the "
                f"others (pilot namespaceWideTelemetryConfig). Merge them into one, or put the mesh-wide one "
                f"in the root namespace {ROOT_NAMESPACE}", file=resource.file, field="spec.selector")
        first[resource.namespace] = resource


def check_workload_selectors(resources: Iterable[TelemetryResource],
                             workloads: Iterable[tuple[str, tuple[tuple[str, str], ...]]]) -> None:
    """Two Telemetry resources selecting one of `workloads` ((namespace, labels) each) are refused."""
    resources = tuple(resources)
    for namespace, labels in workloads:
        _chosen(resources, namespace, labels)


def _chosen(resources: Iterable[TelemetryResource], namespace: str,
            labels: tuple[tuple[str, str], ...]) -> list[TelemetryResource]:
    """The resources that apply to one proxy, in Istio's order (root namespace, namespace, workload);
    ConfigError when two select the workload (the Telemetry API allows one; istioctl IST0159)."""
    chosen = [r for r in resources if applies(r, namespace, labels)]
    chosen.sort(key=lambda r: (r.namespace != ROOT_NAMESPACE, r.selector is not None))
    selecting = [r for r in chosen if r.selector is not None]
    if len(selecting) > 1:
        first, second = selecting[0], selecting[1]
        raise ConfigError(f"Telemetry {second.name!r}: Telemetry {first.name!r} also selects the workload with "
                          f"labels {dict(labels)}; Istio's Telemetry API allows one resource selecting a workload "
                          f"(istioctl IST0159). Make the selectors disjoint or merge them",
                          file=second.file, field="spec.selector")
    return chosen


def applies(resource: TelemetryResource, namespace: str, labels: Iterable[tuple[str, str]]) -> bool:
    if resource.namespace == ROOT_NAMESPACE:  # mesh-wide; check_telemetry refuses a selector there
        return resource.selector is None
    return resource.namespace == namespace and (resource.selector is None or set(resource.selector) <= set(labels))


def metric_plan(resources: Iterable[TelemetryResource], reporter: Reporter, namespace: str,
                labels: Iterable[tuple[str, str]]) -> MetricPlan:
    """Istio's merge for one proxy: root namespace, namespace, then workload-selecting resources."""
    chosen = _chosen(resources, namespace, tuple(labels))
    wanted_mode = "CLIENT" if reporter == "source" else "SERVER"
    disabled: dict[str, tuple[TelemetryResource, MetricOverride]] = {}
    upserts: dict[str, dict[str, TagOverride]] = {}
    removed: dict[str, dict[str, tuple[TelemetryResource, TagOverride]]] = {}
    for resource in chosen:
        for override in resource.overrides:
            if override.mode not in ("CLIENT_AND_SERVER", wanted_mode):
                continue
            for metric in override.metrics:
                if override.disabled:
                    disabled[metric] = (resource, override)
                elif override.disabled is not None:
                    disabled.pop(metric, None)
                for tag in override.tags:
                    if tag.remove:
                        removed.setdefault(metric, {})[tag.tag] = (resource, tag)
                        upserts.get(metric, {}).pop(tag.tag, None)
                    else:
                        upserts.setdefault(metric, {})[tag.tag] = tag
                        removed.get(metric, {}).pop(tag.tag, None)
    return MetricPlan(upserts=upserts, disabled_by=disabled, removed_by=removed)


def check_translatable(resource: TelemetryResource) -> None:
    """The local proxies emit every override through Envoy's formatters: refuse, naming the field, a
    value harness/mesh/cel.py cannot translate (never accepted and ignored)."""
    from harness.errors import UnsupportedFieldError

    from harness.mesh.translate.telemetry import ISTIO_LABELS, MAX_USER_TAGS

    node = {"id": "", "cluster": "", "metadata": {"NAME": "", "NAMESPACE": "", "WORKLOAD_NAME": "",
                                                  "CLUSTER_ID": "", "LABELS": {}}}
    added: set[str] = set()
    for override in resource.overrides:
        for tag in override.tags:
            if tag.value is None:
                continue
            if tag.tag not in ISTIO_LABELS:
                added.add(tag.tag)
                if len(added) > MAX_USER_TAGS:  # each added tag needs a slot of the scrape's relabeling
                    raise UnsupportedFieldError(f"Telemetry {resource.name!r}: the local mesh carries at most "
                                                f"{MAX_USER_TAGS} added tags (not Istio's labels) per metric",
                                                file=resource.file, field=tag.field)
            for reporter in ("source", "destination"):
                try:
                    cel.to_envoy_format(tag.value, reporter=reporter, node=node)
                except cel.CelError as exc:
                    raise UnsupportedFieldError(f"Telemetry {resource.name!r}: {exc} (not translatable for the "
                                                "local mesh's Envoy)", file=resource.file,
                                                field=f"{tag.field}.value") from exc
