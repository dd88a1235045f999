"""On kind, the seed's tracing Telemetry sends its spans to the Jaeger the kind platform deploys.

Followed: Istio's Jaeger task (istio.io, "Jaeger": meshConfig.extensionProviders `opentelemetry` with
`service: jaeger-collector.istio-system.svc.cluster.local`, `port: 4317`), Istio's own
samples/addons/jaeger.yaml (Service jaeger-collector: grpc-otel 4317, http-otel 4318), MeshConfig's
OpenTelemetryTracingProvider (service is the collector's FQDN, port its gRPC port) and the Telemetry
API's Tracing.randomSamplingPercentage, which decides the sampling when meshConfig.defaultConfig sets
no tracing of its own.
"""

from __future__ import annotations

from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents
from harness.platforms.kind import render
from harness.platforms.kind.settings import KindSettings
from harness.platforms.kind.validation import validate_kind_document

TELEMETRY = MANIFESTS_DIR / "istio" / "telemetry.yaml"


def _tracing_telemetry() -> dict:
    (doc,) = [d for d in load_yaml_documents(TELEMETRY) if d["kind"] == "Telemetry" and d["spec"].get("tracing")]
    return doc


def _operator_specs() -> list[dict]:
    return [render.istio_operator(profile, cluster, "1.30.3")["spec"]
            for profile in ("dev", "prod") for cluster in KindSettings(clusters=3).cluster_specs()]


def test_the_telemetrys_tracing_provider_is_an_otlp_provider_pointing_at_the_jaeger_addons_collector() -> None:
    (entry,) = _tracing_telemetry()["spec"]["tracing"]
    (named,) = [p["name"] for p in entry["providers"]]
    addons = render.addon_documents()
    services = {f"{d['metadata']['name']}.{d['metadata']['namespace']}.svc.cluster.local": d
                for d in addons if d["kind"] == "Service"}
    (jaeger,) = [d for d in addons if d["kind"] == "Deployment" and d["metadata"]["name"] == "jaeger"]
    (container,) = jaeger["spec"]["template"]["spec"]["containers"]
    container_ports = {p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env.get("COLLECTOR_OTLP_ENABLED") == "true"
    for spec in _operator_specs():  # every profile and cluster carries the same provider
        (provider,) = [p for p in spec["meshConfig"]["extensionProviders"] if p["name"] == named]
        otlp = provider["opentelemetry"]
        assert set(provider) == {"name", "opentelemetry"} and "http" not in otlp  # OTLP over gRPC
        service = services[otlp["service"]]
        assert service["spec"]["selector"] == jaeger["spec"]["selector"]["matchLabels"]
        (port,) = [p for p in service["spec"]["ports"] if p["port"] == otlp["port"]]
        assert port["name"].startswith("grpc")  # Istio's protocol selection: gRPC to the collector
        assert port["targetPort"] in container_ports


def test_sampling_on_kind_is_the_telemetrys_random_sampling_percentage() -> None:
    (entry,) = _tracing_telemetry()["spec"]["tracing"]
    assert entry["randomSamplingPercentage"] == 1.0  # issue 12: tracing at 1%
    for spec in _operator_specs():
        assert spec["meshConfig"]["enableTracing"] is True
        assert "tracing" not in spec["meshConfig"].get("defaultConfig", {})  # nothing overrides the Telemetry


def test_the_jaeger_addon_and_the_operator_validate_strictly() -> None:
    for doc in render.addon_documents():
        validate_kind_document(doc, source="addons")
    for profile in ("dev", "prod"):
        for cluster in KindSettings(clusters=3).cluster_specs():
            validate_kind_document(render.istio_operator(profile, cluster, "1.30.3"), source="rendered")
