"""Spans the platform's trace receiver evicted are recorded, and a phase that lost some is never shown
as complete: traces.json says how many per phase and when they started, the report marks the phase.

The receiver keeps the last N spans (a ring, harness/platforms/local/otlp_receiver.py); at 100 %
sampling a long run's earliest phases can be evicted before the run reads them at its end.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from harness.platforms.local import otlp_receiver
from harness.platforms.local.otlp_receiver import SpanRing
from harness.report.waterfall import waterfall_html
from harness.run.traces import collect
from tests.telemetry.receiverkit import running_receiver

S = 1_000_000_000  # ns


def _span(n: int, start_s: float) -> dict:
    start = int(start_s * S)
    return {"trace_id": "ab" * 16, "span_id": f"{n:016x}", "parent_span_id": "ff" * 8, "kind": 3,
            "service_name": "istio-ingressgateway.parallel-ai", "start_ns": start, "end_ns": start + 5_000_000,
            "attributes": {}}


def test_the_ring_counts_what_it_evicts_by_start_second_also_from_one_oversized_export() -> None:
    ring = SpanRing(3)
    ring.add([_span(1, 100.2), _span(2, 100.7)])
    ring.add([_span(3, 101.0), _span(4, 102.5), _span(5, 103.0)])
    snapshot = ring.snapshot()
    assert [s["span_id"] for s in snapshot["spans"]] == [f"{n:016x}" for n in (3, 4, 5)]
    assert (snapshot["received"], snapshot["evicted"], snapshot["keep"]) == (5, 2, 3)
    assert snapshot["evicted_by_second"] == {"100": 2}
    ring.add([_span(n, 200 + n) for n in range(6, 11)])  # five at once into a ring of three
    snapshot = ring.snapshot()
    assert [s["span_id"] for s in snapshot["spans"]] == [f"{n:016x}" for n in (8, 9, 10)]
    assert snapshot["evicted"] == 7 and snapshot["evicted_by_second"] == {
        "100": 2, "101": 1, "102": 1, "103": 1, "206": 1, "207": 1}
    ring.clear()
    assert ring.snapshot()["evicted"] == 0 and ring.snapshot()["evicted_by_second"] == {}


def test_the_eviction_counts_stay_bounded_folding_the_oldest_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_receiver, "MAX_EVICTION_SECONDS", 2)
    ring = SpanRing(1)
    ring.add([_span(n, 100 + n) for n in range(6)])  # 5 evicted, one per second 100..104
    snapshot = ring.snapshot()
    assert snapshot["evicted_by_second"] == {"103": 1, "104": 1}
    assert snapshot["evicted_before"] == {"count": 3, "until_s": 102}


def _export(spans: list[dict]) -> bytes:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[
        Span(trace_id=bytes.fromhex(s["trace_id"]), span_id=bytes.fromhex(s["span_id"]), name="s",
             start_time_unix_nano=s["start_ns"], end_time_unix_nano=s["end_ns"]) for s in spans])])]).SerializeToString()


def test_traces_json_and_the_report_mark_a_phase_whose_spans_were_evicted(tmp_path: Path) -> None:
    with running_receiver(keep=4) as url:
        baseline = [_span(n, 100.5 + n * 0.1) for n in range(1, 5)]
        chaos = [_span(n, 110.5 + n * 0.1) for n in range(5, 9)]
        with httpx.Client(trust_env=False, timeout=5) as client:
            for batch in (baseline, chaos):  # the chaos phase's spans push the baseline's out
                response = client.post(url, content=_export(batch), headers={"Content-Type": "application/x-protobuf"})
                assert response.status_code == 200
        record = collect({"traces": {"url": url, "owned": True}},
                         {"baseline": (100.0, 105.0), "chaos": (110.0, 115.0), "recovery": (None, None)},
                         tmp_path, None)
    written = json.loads((tmp_path / "traces.json").read_text())
    assert written["evicted"] == record["evicted"]
    evicted = written["evicted"]
    assert (evicted["keep"], evicted["total"], evicted["incomplete"]) == (4, 4, ["baseline"])
    assert evicted["by_phase"]["baseline"] == {"evicted_up_to": 4, "first_s": 100, "last_s": 100, "folded": False}
    assert evicted["by_phase"]["chaos"]["evicted_up_to"] == 0
    html = waterfall_html(tmp_path)
    baseline_html, chaos_html = html.split("<h3>baseline</h3>")[1].split("<h3>chaos</h3>")
    assert "Incomplete: up to 4 spans" in baseline_html and "00:01:40" in baseline_html
    assert "Incomplete" not in chaos_html
    assert "evicted up to 4 spans of this run's phases before the run read them (4 since the mesh came up" in html


def test_a_receiver_that_evicted_nothing_of_the_run_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "traces.json").write_text(json.dumps({
        "run_trace_id": None, "phases": {"baseline": [100, 105]}, "spans": [_span(1, 101)],
        "evicted": {"keep": 4, "total": 9, "incomplete": [], "by_phase": {"baseline": {"evicted_up_to": 0}}}}))
    assert "Incomplete" not in waterfall_html(tmp_path)
