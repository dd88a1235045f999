"""The live feed (live.jsonl, a line a second from the Locust process) read back for progress displays."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TAIL_BYTES = 4096  # a line is ~200 bytes; the last complete one is always in this tail


@dataclass(frozen=True)
class LivePoint:
    """The load over the last window (1 s standalone, 3 s with workers, as the master hears them)."""

    ts: float
    """When it was written, epoch seconds."""
    rps: float
    error_rate: float
    """Failures / requests in the window, 0..1."""
    p50_ms: float
    p99_ms: float
    """Latency percentiles in the window (Locust's rounded histogram); 0 when the window had no requests."""
    users: int
    window_requests: int
    requests: int
    failures: int
    """Totals since the start."""


def latest_live_point(path: Path) -> LivePoint | None:
    """The last complete line of the feed, or None before the first one."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - TAIL_BYTES))
            lines = handle.read().decode(errors="replace").split("\n")
    except OSError:
        return None
    for line in reversed(lines[:-1]):  # the text after the last newline may be a line being written
        try:
            raw = json.loads(line)
            return LivePoint(ts=float(raw["ts"]), rps=float(raw["rps"]), error_rate=float(raw["error_rate"]),
                             p50_ms=float(raw["p50"]), p99_ms=float(raw["p99"]), users=int(raw["users"]),
                             window_requests=int(raw["window_requests"]), requests=int(raw["requests"]),
                             failures=int(raw["failures"]))
        except (ValueError, KeyError, TypeError):
            continue
    return None
