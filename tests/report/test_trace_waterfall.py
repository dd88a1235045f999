"""The report shows, per phase, the slowest sampled request traces as a waterfall of their hops.

Spans are as the platform's OTLP receiver serves them (harness/platforms/local/otlp_receiver.py, from
Envoy's OpenTelemetry tracer: one SERVER/CLIENT span per proxy hop, parent ids linking them); a request
of a traced run is a child of the load's phase span (W3C traceparent), so its root's parent is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.report.waterfall import slowest_by_phase, waterfall_html
from harness.run.traces import collect

RUN_TRACE = "ab" * 16


def _request(n: int, start_s: float, ms: float) -> list[dict]:
    """A gateway span and an ai-agent span under it, in the run's trace."""
    start = int(start_s * 1e9)
    root = {"trace_id": RUN_TRACE, "span_id": f"{n:016x}", "parent_span_id": "ff" * 8, "kind": 3,
            "service_name": "istio-ingressgateway.parallel-ai", "start_ns": start, "end_ns": start + int(ms * 1e6),
            "attributes": {"http.method": "POST", "http.status_code": "200"}}
    child = {**root, "span_id": f"{n + 1000:016x}", "parent_span_id": root["span_id"], "kind": 2,
             "service_name": "ai-agent.parallel-ai", "start_ns": start + 1_000_000,
             "end_ns": start + int((ms - 1) * 1e6)}
    return [root, child]


def _record() -> dict:
    spans = [s for n, (t, ms) in enumerate([(100.5, 5), (101, 80), (102, 12), (103, 40), (110.2, 300)])
             for s in _request(n + 1, t, ms)]
    return {"run_trace_id": RUN_TRACE, "phases": {"baseline": (100, 105), "chaos": (105, 111)}, "spans": spans}


def test_each_phase_lists_its_slowest_requests_first_each_with_all_its_hops() -> None:
    by_phase = slowest_by_phase(_record(), n=2)
    baseline = [(root["end_ns"] - root["start_ns"]) / 1e6 for root, _ in by_phase["baseline"]]
    assert baseline == [80, 40]
    (chaos,) = by_phase["chaos"]
    assert chaos[0]["service_name"] == "istio-ingressgateway.parallel-ai"
    assert [s["service_name"] for s in chaos[1]] == ["istio-ingressgateway.parallel-ai", "ai-agent.parallel-ai"]


def test_the_page_section_names_the_run_trace_and_says_when_a_phase_had_no_sampled_trace(tmp_path: Path) -> None:
    record = _record()
    record["phases"]["recovery"] = (120, 125)
    (tmp_path / "traces.json").write_text(json.dumps(record))
    html = waterfall_html(tmp_path)
    assert RUN_TRACE in html and "(in the run's trace)" in html
    assert "300.0 ms" in html and "No sampled trace started in this phase." in html


def test_no_traces_file_means_no_section(tmp_path: Path) -> None:
    assert waterfall_html(tmp_path) == ""


def test_a_run_without_the_platforms_receiver_records_why_it_has_no_spans(tmp_path: Path) -> None:
    written = collect({"traces": {"url": "http://127.0.0.1:9/v1/traces", "owned": False}},
                      {"baseline": (1.0, 2.0), "chaos": (None, None)}, tmp_path, None)
    assert written["spans"] == [] and "OTEL_EXPORTER_OTLP_ENDPOINT" in written["note"]
    assert json.loads((tmp_path / "traces.json").read_text())["phases"] == {"baseline": [1.0, 2.0]}
