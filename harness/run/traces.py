"""The run's sampled request traces: the spans the proxies sent during its phases, kept in the run dir.

The local platform's OTLP receiver (harness/platforms/local/otlp_receiver.py) holds the last spans of
every proxy; at the end of a run the spans that started inside one of its phases are written to
`traces.json` for the report's waterfall (harness/report/waterfall.py). Envoy's tracer flushes every
5 s, so spans of the last seconds of the recovery phase may not be there yet: the file says when it
was taken, and the report says so. With the user's own collector (OTEL_EXPORTER_OTLP_ENDPOINT) the
spans are there, not here: the file records that instead. The receiver keeps the last 20,000 spans:
at full sampling a long run's earliest spans may be evicted before the run reads them, so the file
records, per phase, how many spans the receiver evicted (`evicted`, `evictions()`), and the report
never shows such a phase's traces as complete.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from harness.files import atomic_write

TRACES_FILE = "traces.json"
log = logging.getLogger(__name__)


def collect(status: Mapping[str, Any], phases: Mapping[str, tuple[float | None, float | None]],
            run_dir: Path, run_trace_id: str | None) -> dict[str, Any]:
    """Fetch the platform's spans, keep those that started in a phase, write traces.json; what was written."""
    traces = status.get("traces") or {}
    windows = {name: (start, end) for name, (start, end) in phases.items() if start is not None and end is not None}
    record: dict[str, Any] = {"taken_at": time.time(), "run_trace_id": run_trace_id, "phases": windows,
                              "source": traces.get("url"), "spans": []}
    if not traces.get("owned"):
        record["note"] = ("spans went to the user's collector (OTEL_EXPORTER_OTLP_ENDPOINT)" if traces
                          else "this platform keeps no spans")
    else:
        try:
            with httpx.Client(trust_env=False, timeout=5.0) as client:  # loopback only: no proxy
                response = client.get(traces["url"])
                response.raise_for_status()
                answer = response.json()
                spans = answer["spans"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("could not read the run's spans from %s: %s", traces.get("url"), exc)
            record["note"] = f"the trace receiver did not answer: {exc}"
            spans, answer = [], {}
        starts = [(start * 1e9, end * 1e9) for start, end in windows.values()]
        record["spans"] = [s for s in spans if any(lo <= s["start_ns"] <= hi for lo, hi in starts)]
        if answer:
            record["evicted"] = evictions(answer, windows)
    atomic_write(Path(run_dir) / TRACES_FILE, json.dumps(record))
    return record


def evictions(answer: Mapping[str, Any], windows: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """What the receiver's ring dropped of each phase's spans before the run read them.

    The receiver counts evicted spans by the second they started (otlp_receiver.SpanRing); a phase's
    count is that of the seconds its window touches, so a second shared by two phases counts for both
    (an upper bound: a phase is never called complete when it may not be). Evictions older than the
    receiver's per-second window are one count up to a second: a phase starting at or before it may
    have lost spans too (`folded`). `incomplete` lists the phases with any."""
    by_second = {int(second): int(n) for second, n in (answer.get("evicted_by_second") or {}).items()}
    before = answer.get("evicted_before") or {}
    by_phase: dict[str, dict[str, Any]] = {}
    for name, (start, end) in windows.items():
        first, last = math.floor(start), math.floor(end)
        seconds = [s for s in by_second if first <= s <= last]
        folded = bool(before.get("count")) and before.get("until_s") is not None and first <= before["until_s"]
        by_phase[name] = {"evicted_up_to": sum(by_second[s] for s in seconds),
                          "first_s": min(seconds, default=None), "last_s": max(seconds, default=None),
                          "folded": folded}
    incomplete = [name for name, info in by_phase.items() if info["evicted_up_to"] or info["folded"]]
    return {"keep": answer.get("keep"), "received": answer.get("received"), "total": int(answer.get("evicted") or 0),
            "by_phase": by_phase, "incomplete": incomplete}
