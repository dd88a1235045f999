"""Request traces on the local mesh: Envoy's OpenTelemetry tracer on every proxy, as the seed's Telemetry asks.

Followed: Istio's Telemetry API `Tracing` (https://istio.io/latest/docs/reference/config/telemetry/#Tracing:
providers, randomSamplingPercentage, customTags with `header`) and its task "Configure tracing using
the Telemetry API" (https://istio.io/latest/docs/tasks/observability/distributed-tracing/telemetry-api/);
Envoy 1.40's HttpConnectionManager.Tracing (`random_sampling`, `custom_tags.request_header`) and
envoy.config.trace.v3.OpenTelemetryConfig (`http_service`, `service_name`: Istio names it
`<app>.<namespace>`). One trace spans the gateway and both sidecars because the apps pass on
`traceparent` and `x-request-id` (harness/services/outbound.py) and the first proxy's sampling decision
travels in x-request-id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from harness.mesh import MANIFESTS_DIR
from tests.local_mesh.meshkit import Mesh

FULL_SAMPLING = MANIFESTS_DIR / "variants" / "tracing-full-sampling.yaml"


def _spans(mesh: Mesh) -> list[dict]:
    traces = mesh.platform.status()["traces"]
    assert traces["owned"], "these tests read the platform's own receiver"
    return httpx.get(traces["url"], timeout=5).json()["spans"]


def _clear(mesh: Mesh) -> None:
    httpx.delete(mesh.platform.status()["traces"]["url"], timeout=5).raise_for_status()


def _wait_spans(mesh: Mesh, done, timeout_s: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    spans = _spans(mesh)
    while not done(spans) and time.monotonic() < deadline:
        time.sleep(0.2)  # Envoy's tracer flushes every 5 s (or every 5 spans)
        spans = _spans(mesh)
    return spans


def test_one_chat_is_one_trace_through_the_gateway_and_both_sidecars_with_the_user_tag(clean_mesh: Mesh) -> None:
    clean_mesh.platform.apply([Path(FULL_SAMPLING)])
    _clear(clean_mesh)
    # A new connection: one the session's client kept alive from an earlier test stays on the gateway's
    # previous listener, with its 1 % sampling, until that listener drains (Envoy applies a listener
    # update to new connections only, in Istio too).
    with httpx.Client(timeout=10.0) as fresh:
        response = fresh.post(f"{clean_mesh.ingress}/api/v1/chat", json={"user_id": "u1", "prompt": "hello"},
                              headers={"host": clean_mesh.status["ingress_host"], "x-user-id": "trace-user-7"})
    assert response.status_code == 200, response.text
    tagged = lambda spans: [s for s in spans if s["attributes"].get("user_id") == "trace-user-7"]  # noqa: E731

    def complete(spans: list[dict]) -> bool:
        first = tagged(spans)
        if not first:
            return False
        same = {s["service_name"] for s in spans if s["trace_id"] == first[0]["trace_id"]}
        return {"istio-ingressgateway.parallel-ai", "ai-agent.parallel-ai", "user.parallel-ai"} <= same

    spans = _wait_spans(clean_mesh, complete)
    mine = tagged(spans)
    assert mine, f"no span carries user_id=trace-user-7 among {len(spans)} spans"
    trace_id = mine[0]["trace_id"]
    in_trace = [s for s in spans if s["trace_id"] == trace_id]
    services = {s["service_name"] for s in in_trace}
    assert {"istio-ingressgateway.parallel-ai", "ai-agent.parallel-ai", "user.parallel-ai"} <= services, services
    # the apps pass x-user-id on, so every hop's span carries the custom tag
    assert {s["attributes"].get("user_id") for s in in_trace} == {"trace-user-7"}
    kinds = {(s["service_name"], s["kind"]) for s in in_trace}
    # OTLP SpanKind: 2 SERVER (sidecar inbound), 3 CLIENT (outbound and the gateway, as in Istio)
    assert ("user.parallel-ai", 2) in kinds and ("ai-agent.parallel-ai", 2) in kinds, kinds
    assert ("ai-agent.parallel-ai", 3) in kinds and ("istio-ingressgateway.parallel-ai", 3) in kinds, kinds
    ids = {s["span_id"] for s in in_trace}
    assert sum(1 for s in in_trace if s["parent_span_id"] not in ids) == 1, "one root: the gateway's span"


def test_the_shipped_one_percent_samples_few_of_two_hundred_chats(clean_mesh: Mesh) -> None:
    _clear(clean_mesh)
    for i in range(200):
        assert clean_mesh.chat(headers={"x-user-id": f"sampling-{i}"}).status_code == 200
    # Envoy's tracer flushes at most 5 s after a span ends: wait for that, bounded.
    time.sleep(5.5)
    spans = _spans(clean_mesh)
    sampled = {s["attributes"].get("user_id") for s in spans
               if str(s["attributes"].get("user_id", "")).startswith("sampling-")}
    # 1% of 200: ~2 expected; 50 or more has probability far below 1e-30 (binomial tail).
    assert len(sampled) < 50, f"{len(sampled)} of 200 chats were sampled at 1%"


def test_a_traced_run_keeps_its_sampled_requests_and_its_report_shows_them_per_phase(
        clean_mesh: Mesh, tmp_path: Path) -> None:
    """The harness traces the run into the platform's receiver (OTEL_EXPORTER_OTLP_ENDPOINT, loopback);
    Locust sends each request under the phase's traceparent, so the proxies' spans are in the run's trace.
    The experiment raises the sampling for its own run (issue 12: "an experiment may raise it"): its
    control's `mesh:` applies the shipped 100 % variant before the load and restores the 1 % after."""
    from tests.local_mesh.test_experiment_runs import EXPERIMENTS, run_env

    def sampling() -> float:
        (tracing,) = [d for d in clean_mesh.platform.resources()
                      if d["kind"] == "Telemetry" and d["metadata"]["name"] == "custom-metrics"]
        return tracing["spec"]["tracing"][0]["randomSamplingPercentage"]

    assert sampling() == 1.0  # at the shipped 1% a short run may sample nothing
    doc = yaml.safe_load((EXPERIMENTS / "latency-injection.yaml").read_text())
    doc["controls"][0]["provider"]["arguments"]["mesh"] = [str(FULL_SAMPLING.relative_to(MANIFESTS_DIR))]
    experiment = tmp_path / "latency-injection-traced.yaml"
    experiment.write_text(yaml.safe_dump(doc))
    receiver = clean_mesh.platform.status()["traces"]["url"].removesuffix("/v1/traces")
    process = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(experiment), "--report-dir",
         str(tmp_path / "run"), "--no-progress"], cwd=Path(__file__).parents[2], text=True, capture_output=True,
        env={**run_env(clean_mesh), "OTEL_EXPORTER_OTLP_ENDPOINT": receiver}, timeout=300)
    assert process.returncode == 0, process.stdout + process.stderr
    assert sampling() == 1.0  # restored once the load stopped
    journal = json.loads((tmp_path / "run" / "journal.json").read_text())
    record = json.loads((tmp_path / "run" / "traces.json").read_text())
    run_trace = journal["harness"]["trace_id"]
    assert run_trace and record["run_trace_id"] == run_trace
    in_run = [s for s in record["spans"] if s["trace_id"] == run_trace]
    assert {s["service_name"] for s in in_run} >= {"istio-ingressgateway.parallel-ai", "ai-agent.parallel-ai"}
    windows = journal["harness"]["phases"]
    for phase in ("baseline", "chaos"):  # every request sampled: each phase has its traces
        lo, hi = windows[phase]["start"] * 1e9, windows[phase]["end"] * 1e9
        assert any(lo <= s["start_ns"] <= hi for s in in_run), phase
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Slowest sampled traces" in html and run_trace in html and "(in the run's trace)" in html
