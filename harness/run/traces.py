"""The run's sampled request traces: the spans the proxies sent during its phases, kept in the run dir.

The local platform's OTLP receiver (harness/platforms/local/otlp_receiver.py) holds the last spans of
every proxy; at the end of a run the spans that started inside one of its phases are written to
`traces.json` for the report's waterfall (harness/report/waterfall.py). Envoy's tracer flushes every
5 s, so spans of the last seconds of the recovery phase may not be there yet: the file says when it
was taken, and the report says so. With the user's own collector (OTEL_EXPORTER_OTLP_ENDPOINT) the
spans are there, not here: the file records that instead.
"""

from __future__ import annotations

import json
import logging
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
                spans = response.json()["spans"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("could not read the run's spans from %s: %s", traces.get("url"), exc)
            record["note"] = f"the trace receiver did not answer: {exc}"
            spans = []
        starts = [(start * 1e9, end * 1e9) for start, end in windows.values()]
        record["spans"] = [s for s in spans if any(lo <= s["start_ns"] <= hi for lo, hi in starts)]
    atomic_write(Path(run_dir) / TRACES_FILE, json.dumps(record))
    return record
