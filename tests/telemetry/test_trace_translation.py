"""A Telemetry's `tracing` becomes Envoy's OpenTelemetry tracer on every proxy, or is refused by field.

Followed: Istio's Telemetry API reference, `Tracing` and `Tracing.CustomTag`
(https://istio.io/latest/docs/reference/config/telemetry/#Tracing: providers, match,
randomSamplingPercentage, disableSpanReporting, customTags {literal, environment, header},
useRequestIdForTraceSampling, enableIstioTags), the task "Configure tracing using the Telemetry API"
(https://istio.io/latest/docs/tasks/observability/distributed-tracing/telemetry-api/: customTags with
`header.name`), Envoy 1.40's HttpConnectionManager.Tracing (`random_sampling` as a Percent,
`custom_tags` with `request_header`/`literal`/`environment`, `provider`) and
envoy.config.trace.v3.OpenTelemetryConfig (`http_service.http_uri {uri, cluster, timeout}`,
`service_name`), the OTLP exporter spec (OTEL_EXPORTER_OTLP_ENDPOINT is a base URL; /v1/traces is
appended) and the OTLP/HTTP spec (POST of a protobuf ExportTraceServiceRequest).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from harness.errors import ConfigError
from harness.mesh.loader import declared_model
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents
from harness.mesh.telemetry_api import check_telemetry, tracing_plan
from harness.mesh.translate.model import CertPaths, Endpoint, MeshState, ProxyNode, TraceCollector
from harness.mesh.translate.proxy import translate_proxy
from harness.platforms.local.traces import collector_for, user_collector
from tests.telemetry.receiverkit import running_receiver

MODEL = declared_model()
SHIPPED = MANIFESTS_DIR / "istio" / "telemetry.yaml"
FULL = MANIFESTS_DIR / "variants" / "tracing-full-sampling.yaml"
NOWHERE = Path("/nonexistent")
COLLECTOR = TraceCollector("127.0.0.1", 4318)


def _tracing_doc(path: Path = SHIPPED) -> dict[str, Any]:
    (doc,) = [d for d in load_yaml_documents(path) if d["metadata"]["name"] == "custom-metrics"]
    return copy.deepcopy(doc)


def _sidecar(pod: str) -> ProxyNode:
    found = MODEL.topology.pod(pod)
    return ProxyNode(name=found.name, kind="sidecar", namespace=found.namespace, labels=found.labels,
                     region=found.region, service_account=found.service_account,
                     certs=CertPaths(NOWHERE, NOWHERE, NOWHERE), xds_dir=NOWHERE, admin_port=1,
                     inbound_port=2, app_port=3, outbound_port=4, app_socket=NOWHERE / "app.sock")


def _gateway() -> ProxyNode:
    return ProxyNode(name="istio-ingressgateway", kind="gateway", namespace="parallel-ai",
                     labels=(("app", "istio-ingressgateway"), ("istio", "ingressgateway")), region="us-east",
                     service_account="api-gateway", certs=CertPaths(NOWHERE, NOWHERE, NOWHERE), xds_dir=NOWHERE,
                     admin_port=5, gateway_ports={80: 6})


def _state(collector: TraceCollector | None = COLLECTOR, telemetry: tuple = ()) -> MeshState:
    endpoints = {p.name: Endpoint(pod=p.name, address="127.0.0.1", port=10000 + i, ready=True)
                 for i, p in enumerate(MODEL.topology.pods)}
    secrets = {account: {"name": "default"} for account in
               {p.service_account for p in MODEL.topology.pods} | {"api-gateway"}}
    istio = MODEL.istio if not telemetry else type(MODEL.istio)(**{**MODEL.istio.__dict__, "telemetry": telemetry})
    return MeshState(istio=istio, topology=MODEL.topology, endpoints=endpoints, secrets=secrets,
                     trace_collector=collector)


def _traced(config) -> dict[str, dict[str, Any]]:
    """Listener name -> the tracing block of its HCMs (every chain of one listener alike)."""
    found: dict[str, dict[str, Any]] = {}
    for listener in config.listeners:
        for chain in listener.get("filter_chains", []):
            for f in chain.get("filters", []):
                if f["name"] == "envoy.filters.network.http_connection_manager" and "tracing" in f["typed_config"]:
                    found[listener["name"]] = f["typed_config"]["tracing"]
    return found


# -- translation -----------------------------------------------------------------------------------------

def test_every_sidecar_hcm_traces_at_the_telemetrys_one_percent_with_its_custom_tags() -> None:
    config = translate_proxy(_state(), _sidecar("ai-agent-v1-us-east-0"))
    traced = _traced(config)
    listeners = {item["name"] for item in config.listeners}
    assert set(traced) == listeners - {"app_metrics"}, "every HCM but the metrics scrape port is traced"
    for tracing in traced.values():
        assert tracing["random_sampling"] == {"value": 1.0}
        assert tracing["custom_tags"] == [{"tag": "user_id", "request_header": {"name": "x-user-id"}},
                                          {"tag": "request_size", "request_header": {"name": "content-length"}}]
        provider = tracing["provider"]
        assert provider["name"] == "envoy.tracers.opentelemetry"
        assert provider["typed_config"]["service_name"] == "ai-agent.parallel-ai"
        assert provider["typed_config"]["http_service"]["http_uri"] == {
            "uri": "http://127.0.0.1:4318/v1/traces", "cluster": "otel-collector", "timeout": "2s"}
    (collector,) = [c for c in config.clusters if c["name"] == "otel-collector"]
    address = collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address == {"socket_address": {"address": "127.0.0.1", "port_value": 4318}}
    directions = {item["name"]: item.get("traffic_direction") for item in config.listeners}
    assert directions["virtualInbound"] == "INBOUND" and directions["virtualOutbound"] == "OUTBOUND"


def test_the_gateway_traces_as_istio_ingressgateway_and_the_variant_samples_every_request() -> None:
    full = check_telemetry(_tracing_doc(FULL), file=FULL)
    config = translate_proxy(_state(telemetry=(full,)), _gateway())
    (tracing,) = _traced(config).values()
    assert tracing["random_sampling"] == {"value": 100.0}
    assert tracing["provider"]["typed_config"]["service_name"] == "istio-ingressgateway.parallel-ai"


def test_spans_are_named_as_istio_names_them_by_route_decorators() -> None:
    """istio/istio pilot: a default or inbound route's decorator is TraceOperation(host, port),
    "<host>:<port>/*"; a VirtualService route's is getRouteOperation: the one destination cluster's
    host and port, or with several the VirtualService's name and the listener's port, then the match's
    prefix + "*", exact path or regex. Envoy names the span after the decorator's operation."""
    agent = "ai-agent-service.parallel-ai.svc.cluster.local"

    def operations(config: Any, route_config: str) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for vhost in config.routes[route_config]["virtual_hosts"]:
            for route in vhost["routes"]:
                if "decorator" in route:
                    found.setdefault(vhost["name"].split(":")[0], set()).add(route["decorator"]["operation"])
        return found

    gateway = operations(translate_proxy(_state(), _gateway()), "http.80")
    assert gateway[agent] == {f"{agent}:8080/*", "ai-agent-routing:80/*"}  # one subset; the weighted canary
    sidecar = translate_proxy(_state(), _sidecar("ai-agent-v1-us-east-0"))
    outbound = operations(sidecar, "outbound|http")
    assert outbound["user-service.parallel-ai.svc.cluster.local"] == {"user-service.parallel-ai.svc.cluster.local:8080/*"}
    assert outbound[agent] == {f"{agent}:8080/*", "ai-agent-routing:8080/*"}
    assert operations(sidecar, "inbound|8080") == {"inbound|http|8080": {f"{agent}:8080/*"}}


def test_literal_and_environment_tags_and_a_default_value_become_envoys_custom_tags() -> None:
    doc = _tracing_doc()
    doc["spec"]["tracing"][0]["customTags"] = {
        "team": {"literal": {"value": "mesh"}},
        "region": {"environment": {"name": "REGION", "defaultValue": "none"}},
        "user_id": {"header": {"name": "x-user-id", "defaultValue": "anonymous"}}}
    config = translate_proxy(_state(telemetry=(check_telemetry(doc),)), _sidecar("user-v1-us-east-0"))
    tags = next(iter(_traced(config).values()))["custom_tags"]
    assert tags == [{"tag": "team", "literal": {"value": "mesh"}},
                    {"tag": "region", "environment": {"name": "REGION", "default_value": "none"}},
                    {"tag": "user_id", "request_header": {"name": "x-user-id", "default_value": "anonymous"}}]


def test_a_workload_telemetry_overrides_the_namespace_sampling_and_adds_tags() -> None:
    namespace = check_telemetry(_tracing_doc())
    doc = _tracing_doc()
    doc["metadata"]["name"] = "user-tracing"
    doc["spec"]["selector"] = {"matchLabels": {"app": "user"}}
    doc["spec"]["tracing"][0]["randomSamplingPercentage"] = 50
    doc["spec"]["tracing"][0]["customTags"] = {"who": {"literal": {"value": "user"}}}
    workload = check_telemetry(doc)
    user = tracing_plan([workload, namespace], "parallel-ai", (("app", "user"),))
    agent = tracing_plan([workload, namespace], "parallel-ai", (("app", "ai-agent"),))
    assert user is not None and agent is not None
    assert user.sampling_percent == 50 and [t.tag for t in user.tags] == ["user_id", "request_size", "who"]
    assert agent.sampling_percent == 1.0 and [t.tag for t in agent.tags] == ["user_id", "request_size"]


def test_no_tracing_telemetry_means_no_tracer_and_no_collector_cluster() -> None:
    metrics_only = tuple(dataclasses.replace(r, tracing=None) for r in MODEL.istio.telemetry)
    assert metrics_only and any(r.overrides for r in metrics_only)
    config = translate_proxy(_state(telemetry=metrics_only), _sidecar("user-v1-us-east-0"))
    assert _traced(config) == {}
    assert "otel-collector" not in {c["name"] for c in config.clusters}


def test_tracing_without_a_collector_is_refused_naming_the_resource() -> None:
    with pytest.raises(ConfigError, match="custom-metrics") as caught:
        translate_proxy(_state(collector=None), _sidecar("user-v1-us-east-0"))
    assert caught.value.field == "spec.tracing"


# -- refusals -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value", [
    ("useRequestIdForTraceSampling", False), ("disableSpanReporting", True),
    ("match", {"mode": "CLIENT"}), ("enableIstioTags", False),
])
def test_an_unimplemented_tracing_field_is_refused_by_name(key: str, value: Any) -> None:
    doc = _tracing_doc()
    doc["spec"]["tracing"][0][key] = value
    with pytest.raises(ConfigError) as caught:
        check_telemetry(doc, file="t.yaml")
    assert caught.value.field == f"spec.tracing[0].{key}"
    assert "not supported" in str(caught.value)


@pytest.mark.parametrize("change, field", [
    (lambda e: e.update(randomSamplingPercentage=150), "spec.tracing[0].randomSamplingPercentage"),
    (lambda e: e.update(randomSamplingPercentage="1%"), "spec.tracing[0].randomSamplingPercentage"),
    (lambda e: e["customTags"].update(x={"cookie": {"name": "a"}}), "spec.tracing[0].customTags.x"),
    (lambda e: e["customTags"].update(x={"header": {"name": "a", "regex": "b"}}),
     "spec.tracing[0].customTags.x.header.regex"),
    (lambda e: e["customTags"].update(x={"header": {}}), "spec.tracing[0].customTags.x.header.name"),
    (lambda e: e.pop("providers"), "spec.tracing[0].providers"),
])
def test_bad_tracing_entries_are_refused_with_the_field(change, field: str) -> None:
    doc = _tracing_doc()
    change(doc["spec"]["tracing"][0])
    with pytest.raises(ConfigError) as caught:
        check_telemetry(doc, file="t.yaml")
    assert caught.value.field == field


def test_a_second_tracing_entry_is_refused() -> None:
    doc = _tracing_doc()
    doc["spec"]["tracing"].append(copy.deepcopy(doc["spec"]["tracing"][0]))
    with pytest.raises(ConfigError) as caught:
        check_telemetry(doc)
    assert caught.value.field == "spec.tracing[1]"


# -- where spans go -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint", ["http://collector.example.com:4318", "https://127.0.0.1:4318",
                                      "http://10.0.0.5:4318", "grpc://127.0.0.1:4317"])
def test_a_non_loopback_otlp_endpoint_is_refused_naming_the_variable(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT") as caught:
        user_collector({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert caught.value.field == "OTEL_EXPORTER_OTLP_ENDPOINT"


def test_a_loopback_otlp_endpoint_is_used_with_the_traces_path_else_the_platforms_receiver() -> None:
    assert collector_for(7000, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.2:4318/"}) == (
        TraceCollector("127.0.0.2", 4318, "/v1/traces"), False)
    assert collector_for(7000, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:9/otlp"}) == (
        TraceCollector("127.0.0.1", 9, "/otlp/v1/traces"), False)
    assert collector_for(7000, {}) == (TraceCollector("127.0.0.1", 7000), True)


def _export(n: int, trace: bytes = b"\x01" * 16) -> bytes:
    spans = [Span(trace_id=trace, span_id=i.to_bytes(8, "big"), name=f"s{i}", start_time_unix_nano=i,
                  end_time_unix_nano=i + 5, attributes=[KeyValue(key="user_id", value=AnyValue(string_value="u"))])
             for i in range(1, n + 1)]
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="ai-agent.parallel-ai"))]},
        scope_spans=[ScopeSpans(spans=spans)])])
    return request.SerializeToString()


def test_the_receiver_decodes_otlp_protobuf_chunked_or_not_and_keeps_only_the_last_spans() -> None:
    with running_receiver(keep=3) as url, httpx.Client(trust_env=False, timeout=5) as client:
        headers = {"Content-Type": "application/x-protobuf"}
        assert client.post(url, content=_export(2), headers=headers).status_code == 200
        # Envoy's async HTTP client sends the export chunked
        chunked = client.post(url, content=iter([_export(2)[:7], _export(2)[7:]]), headers=headers)
        assert chunked.status_code == 200
        body = client.get(url).json()
        assert body["received"] == 4 and len(body["spans"]) == 3
        span = body["spans"][-1]
        assert span["trace_id"] == "01" * 16 and span["service_name"] == "ai-agent.parallel-ai"
        assert span["attributes"] == {"user_id": "u"} and span["end_ns"] - span["start_ns"] == 5
        assert client.post(url, content=b"\xff\xff", headers=headers).status_code == 400
        assert client.post(url, content=b"{}", headers={"Content-Type": "application/json"}).status_code == 415
        assert client.delete(url).status_code == 200 and client.get(url).json()["spans"] == []

