"""Request traces from stock Envoy: the OpenTelemetry tracer on every HTTP connection manager.

A Telemetry resource's `tracing` entry (Istio's Telemetry API, `Tracing`:
https://istio.io/latest/docs/reference/config/telemetry/#Tracing, and its customTags:
https://istio.io/latest/docs/tasks/observability/distributed-tracing/telemetry-api/) becomes the
HCM's `tracing` (Envoy 1.40, envoy.extensions.filters.network.http_connection_manager.v3
HttpConnectionManager.Tracing: `random_sampling` in percent, `custom_tags` with `literal`,
`environment` or `request_header`, `provider`) with `envoy.tracers.opentelemetry`
(envoy.config.trace.v3.OpenTelemetryConfig: `http_service` for OTLP/HTTP, `service_name`).
Istio names a proxy's service `<app>.<namespace>` (its default APP_LABEL_AND_NAMESPACE).

The local mesh has no Jaeger: whatever provider the Telemetry names, spans go to one OTLP/HTTP
collector on loopback (the user's OTEL_EXPORTER_OTLP_ENDPOINT, else the platform's own receiver).
Sampling is Envoy's: the first proxy decides and marks x-request-id, which the apps propagate with
`traceparent`, so the proxies after it follow the same decision.
"""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError
from harness.mesh.telemetry_api import TelemetryResource, TracingPlan, tracing_plan
from harness.mesh.translate.model import MeshState, ProxyNode, TraceCollector

COLLECTOR_CLUSTER = "otel-collector"
OTEL_CONFIG = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"


def service_name(node: ProxyNode) -> str:
    """Istio's default span service name: the app label and the namespace."""
    app = dict(node.labels).get("app") or node.name
    return f"{app}.{node.namespace}"


def _custom_tag(tag: Any) -> dict[str, Any]:
    if tag.kind == "literal":
        return {"tag": tag.tag, "literal": {"value": tag.name}}
    body: dict[str, Any] = {"name": tag.name}
    if tag.default is not None:
        body["default_value"] = tag.default
    return {"tag": tag.tag, "request_header" if tag.kind == "header" else "environment": body}


def hcm_tracing(plan: TracingPlan, node: ProxyNode, collector: TraceCollector) -> dict[str, Any]:
    """The HCM `tracing` block for one proxy."""
    tracing: dict[str, Any] = {
        "random_sampling": {"value": plan.sampling_percent},
        "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": {
            "@type": OTEL_CONFIG, "service_name": service_name(node),
            "http_service": {"http_uri": {"uri": f"http://{collector.host}:{collector.port}{collector.path}",
                                          "cluster": COLLECTOR_CLUSTER, "timeout": "2s"}}}},
    }
    if plan.tags:
        tracing["custom_tags"] = [_custom_tag(tag) for tag in plan.tags]
    return tracing


def collector_cluster(collector: TraceCollector) -> dict[str, Any]:
    """A static cluster for the collector (not EDS: it is no mesh workload)."""
    return {"name": COLLECTOR_CLUSTER, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": COLLECTOR_CLUSTER, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": collector.host,
                                                              "port_value": collector.port}}}}]}]}}


def proxy_tracing(state: MeshState, node: ProxyNode) -> TracingPlan | None:
    """The proxy's tracing plan; a Telemetry asking for traces without a collector is refused."""
    resources: tuple[TelemetryResource, ...] = tuple(state.istio.telemetry)
    plan = tracing_plan(resources, node.namespace, node.labels)
    if plan is not None and state.trace_collector is None:
        asking = next(r for r in resources if r.tracing is not None)
        raise ConfigError(f"Telemetry {asking.name!r} asks for traces but the platform runs no trace collector",
                          file=asking.file, field="spec.tracing")
    return plan
