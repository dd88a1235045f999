"""Live SLO state: every SLO over the last 30 s, for the progress line and the game-day prompt.

HarnessRun (session.py) starts a LiveSlos while the terminal shows progress, and Progress
(progress.py) adds `LiveSlos.summary()` to its line. The game day (harness/suite/live.py) shows
`evaluate_live` as table lines before each action. Neither is the verdict. The verdict is given once,
at the end, over the exact phase windows (evaluation.py). This is what an operator watches while the
chaos runs: whether it is eating the error budget yet.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.slo import PHASES, PrometheusApi, Slo, SloResult, evaluate

if TYPE_CHECKING:
    import pandas as pd

EVERY_S = 5.0  # one round of instant queries per SLO; Prometheus records a new point each second
WINDOW_S = 30.0  # long enough for rate() over 1 s scrapes to settle, short enough to show a fault's effect


def evaluate_live(slos: Sequence[Slo], client: PrometheusApi | None, *, now: float, window_s: float = WINDOW_S,
                  samples: pd.DataFrame | None = None) -> list[SloResult]:
    """Every SLO over now - window_s .. now, whatever phases it is declared for (the operator wants
    the whole picture); client SLOs from `samples` when given."""
    everywhere = [dataclasses.replace(slo, phases=PHASES) for slo in slos]
    if client is None:
        everywhere = [slo for slo in everywhere if slo.source == "client"]
    return evaluate(everywhere, "chaos", now - window_s, now, client, samples=samples)


class LiveSlos(threading.Thread):
    """Every `every_s`, the mesh SLOs over the `window_s` ending `lag_s` ago (bounded by `deadline_s`).

    `lag_s` is the run's measured telemetry lag (its upper bound, TelemetryLag.upper_s: the newest
    moment whose requests are all in Prometheus), as the final evaluation uses it. Client SLOs need
    the load's samples, which are read once at the end; the line shows mesh SLOs.
    """

    def __init__(self, slos: Sequence[Slo], client: PrometheusApi, *, lag_s: float, every_s: float = EVERY_S,
                 window_s: float = WINDOW_S, deadline_s: float = 6 * 3600) -> None:
        super().__init__(name="harness-live-slos", daemon=True)
        self.slos = [s for s in slos if s.source == "mesh"]
        self.client = client
        self.every_s = every_s
        self.lag_s = lag_s
        self.window_s = window_s
        self._deadline = time.monotonic() + deadline_s
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._latest: list[SloResult] = []
        self.error: str | None = None

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s) and time.monotonic() < self._deadline:
            self.poll()

    def poll(self) -> None:
        """One round of queries; an error is kept for the line (the final evaluation reports it properly)."""
        try:
            results = evaluate_live(self.slos, self.client, now=time.time() - self.lag_s, window_s=self.window_s)
        except HarnessError as exc:
            self.error = str(exc)
            return
        with self._lock:
            self._latest = results
            self.error = None

    def latest(self) -> list[SloResult]:
        with self._lock:
            return list(self._latest)

    def summary(self) -> str:
        """E.g. `slo(30s) ai-agent-availability 99.6% >= 99.5% ok, ai-agent-latency-p99 612ms <= 500ms BREACH`."""
        results = self.latest()
        if not results:
            return f"slo: {self.error}" if self.error else ""
        templates = {s.name: s.template for s in self.slos}
        return f"slo({self.window_s:g}s) " + ", ".join(_one(r, templates.get(r.name)) for r in results)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=self.every_s + 6)


def _one(result: SloResult, template: str | None) -> str:
    if result.value is None or math.isnan(result.value):
        return f"{result.name} no data"
    state = "ok" if result.passed else "BREACH"
    return f"{result.name} {_fmt(result.value, template)} {result.comparator} {_fmt(result.objective, template)} {state}"


def _fmt(value: float, template: str | None) -> str:
    if template in ("availability", "error_ratio"):
        return f"{100 * value:.3g}%"
    if template == "latency":
        return f"{value:.0f}ms"
    return f"{value:.4g}"
