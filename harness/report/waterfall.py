"""The report's "Slowest sampled traces" section: per phase, the slowest traces as a waterfall of hops.

Reads the run's traces.json (harness/run/traces.py: the spans the proxies' OpenTelemetry tracers sent
during the run's phases). One request is a tree of spans under a root whose parent is not among them
(the ingress gateway's span; a child of the load's phase span, in the run's trace, when the harness
traces the run); it belongs to the phase its root started in, and its duration is the root's. Each bar is one
span, placed and sized on the root's time line, so the page shows which hop took the time. A phase
whose spans the receiver evicted before the run read them (traces.json `evicted`) is marked
incomplete, with how many and when.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness.slo.model import PHASES

TRACES_FILE = "traces.json"
SLOWEST = 3  # traces per phase
_KIND = {1: "internal", 2: "server", 3: "client"}


def _traces(spans: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    """(root, its tree's spans by start) for every root: a span whose parent was not sampled here.

    Requests of a traced run all share the run's trace id (their parent is the load's phase span), so
    a request is a tree under one root, not a trace id."""
    by_id = {(s["trace_id"], s["span_id"]): s for s in spans}
    trees: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for span in spans:
        node, seen = span, 0
        while (node["trace_id"], node["parent_span_id"]) in by_id and seen < len(spans):
            node, seen = by_id[(node["trace_id"], node["parent_span_id"])], seen + 1
        trees[(node["trace_id"], node["span_id"])].append(span)
    return [(by_id[key], sorted(members, key=lambda s: s["start_ns"])) for key, members in trees.items()]


def slowest_by_phase(record: Mapping[str, Any], n: int = SLOWEST) -> dict[str, list[tuple[Mapping[str, Any],
                                                                                          list[Mapping[str, Any]]]]]:
    """Phase -> its n slowest traces (root span, spans by start), slowest first."""
    windows = {name: (lo * 1e9, hi * 1e9) for name, (lo, hi) in (record.get("phases") or {}).items()}
    result: dict[str, list[Any]] = {}
    for phase in PHASES:
        if phase not in windows:
            continue
        lo, hi = windows[phase]
        inside = [t for t in _traces(record.get("spans") or []) if lo <= t[0]["start_ns"] <= hi]
        inside.sort(key=lambda t: t[0]["end_ns"] - t[0]["start_ns"], reverse=True)
        result[phase] = inside[:n]
    return result


def _bar(span: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    total = max(root["end_ns"] - root["start_ns"], 1)
    left = 100 * max(span["start_ns"] - root["start_ns"], 0) / total
    width = max(100 * (span["end_ns"] - span["start_ns"]) / total, 0.5)
    ms = (span["end_ns"] - span["start_ns"]) / 1e6
    attributes = span.get("attributes") or {}
    what = " ".join(str(attributes.get(k, "")) for k in ("http.method", "upstream_cluster") if attributes.get(k))
    label = (f"{escape(str(span.get('service_name')))} {_KIND.get(span.get('kind'), '')} "
             f"{escape(what)} {escape(str(attributes.get('http.status_code', '')))}")
    return (f'<tr><td>{label}</td><td class="num">{ms:.1f} ms</td><td style="width:50%">'
            f'<div style="margin-left:{left:.1f}%;width:{min(width, 100 - left):.1f}%;background:#4a78b0;'
            f'height:10px"></div></td></tr>')


def waterfall_html(run_dir: Path) -> str:
    """The section, or "" when the run kept no traces file (not a local run, or an older run)."""
    path = Path(run_dir) / TRACES_FILE
    if not path.is_file():
        return ""
    record = json.loads(path.read_text())
    run_trace = record.get("run_trace_id")
    parts = ['<section id="traces"><h2>Slowest sampled traces</h2>',
             f'<p class="muted">Run trace id <code>{escape(run_trace or "none (the harness did not trace this run)")}</code>'
             f'; {len(record.get("spans") or [])} spans sampled by the proxies (per the mesh\'s Telemetry '
             'randomSamplingPercentage); spans of the last ~5 s may be missing (Envoy flushes every 5 s).</p>']
    if record.get("note"):
        parts.append(f"<p>{escape(record['note'])}</p>")
    evicted = record.get("evicted") or {}
    if evicted.get("incomplete"):
        lost = sum(int((evicted.get("by_phase") or {}).get(p, {}).get("evicted_up_to") or 0)
                   for p in evicted.get("incomplete") or [])
        parts.append(f'<p class="no_data"><strong>Incomplete:</strong> the trace receiver keeps the last '
                     f'{escape(str(evicted.get("keep")))} spans and evicted up to {lost} spans of this run\'s phases '
                     f'before the run read them ({escape(str(evicted.get("total")))} since the mesh came up, '
                     f'earlier runs included); the phases marked incomplete below lost spans, so their '
                     f'slowest traces may be missing or cut short (sample fewer requests, or send spans to '
                     f'your own collector with OTEL_EXPORTER_OTLP_ENDPOINT).</p>')
    for phase, traces in slowest_by_phase(record).items():
        parts.append(f"<h3>{escape(phase)}</h3>")
        if phase in (evicted.get("incomplete") or []):
            parts.append(f'<p class="no_data">{escape(_eviction_line((evicted.get("by_phase") or {}).get(phase) or {}))}</p>')
        if not traces:
            parts.append('<p class="muted">No sampled trace started in this phase.</p>')
            continue
        for root, spans in traces:
            linked = " (in the run's trace)" if run_trace and root["trace_id"] == run_trace else ""
            ms = (root["end_ns"] - root["start_ns"]) / 1e6
            parts.append(f'<p>trace <code>{escape(root["trace_id"])}</code>{linked}: {ms:.1f} ms</p><table>'
                         + "".join(_bar(span, root) for span in spans) + "</table>")
    return "".join(parts) + "</section>"


def _eviction_line(info: Mapping[str, Any]) -> str:
    """One phase's evictions, as the report says them."""
    when = ""
    if info.get("first_s") is not None:
        first = time.strftime("%H:%M:%S", time.gmtime(info["first_s"]))
        last = time.strftime("%H:%M:%S", time.gmtime(info["last_s"]))
        when = f", started between {first} and {last} UTC"
    if info.get("evicted_up_to"):
        count = f"up to {info['evicted_up_to']} spans{when}"
        count += " (and some of the receiver's older, uncounted evictions)" if info.get("folded") else ""
    else:
        count = "an uncounted number of spans (evictions older than the receiver counts by second)"
    return f"Incomplete: {count} of this phase were evicted by the trace receiver before the run read them."
