"""Judge SLOs over a phase window, check their PromQL up front, and watch for a breach while chaos runs.

Called by the runner: `validate_slos` before any load starts, `watch_for_breach` in a thread while
chaos runs, `evaluate` for each phase once its window is over. `evaluate` judges exactly the window it
is given: the runner places a phase's mesh window by the telemetry lag it measured (harness/slo/lag.py,
run/evaluation.py) and waits until Prometheus holds the window's last samples.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from harness.errors import ConfigError, SloQueryError
from harness.slo.client_side import evaluate_samples
from harness.slo.model import PHASES, Breach, Phase, Slo, SloResult, Verdict
from harness.slo.prometheus import PrometheusApi
from harness.slo.promql import render_promql

if TYPE_CHECKING:
    import pandas as pd

_VALIDATION_WINDOW_S = 60.0  # any window parses the same; only the syntax is being checked


def evaluate(
    slos: Sequence[Slo],
    phase: Phase,
    start: float,
    end: float,
    client: PrometheusApi | None,
    *,
    samples: pd.DataFrame | None = None,
) -> list[SloResult]:
    """Every SLO that holds in `phase`, over exactly the window start..end (epoch s), in the order given.

    Mesh SLOs ask `client`; client SLOs use `samples` (none given: their verdict is no_data).
    Raises InconclusiveError when Prometheus is unreachable, ConfigError when it rejects a query.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    if not end > start:
        raise ValueError(f"expected a window with end > start, got {start} .. {end}")
    from_samples = {} if samples is None else {r.name: r for r in evaluate_samples(slos, phase, start, end, samples)}
    results = []
    for slo in slos:
        if phase not in slo.phases:
            continue
        if slo.source == "client":
            results.append(from_samples.get(slo.name) or _no_samples(slo, phase, start, end))
        elif client is None:
            raise ValueError(f"SLO {slo.name!r} needs Prometheus but no client was given")
        else:
            results.append(_evaluate_mesh(slo, phase, start, end, client))
    return results


def validate_slos(slos: Sequence[Slo], client: PrometheusApi) -> None:
    """Have Prometheus parse every mesh SLO's PromQL; a rejected one is a ConfigError naming its file and field."""
    for slo in slos:
        if slo.source == "mesh":
            try:
                client.validate(render_promql(slo, _VALIDATION_WINDOW_S))
            except ConfigError as exc:
                raise _named(slo, exc) from exc


def watch_for_breach(
    slos: Sequence[Slo],
    client: PrometheusApi,
    *,
    since: float,
    timeout_s: float,
    window_s: float = 10.0,
    poll_interval_s: float = 1.0,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> Breach | None:
    """Poll the abort_on_breach SLOs over the trailing `window_s` (never before `since`, chaos's start)
    every `poll_interval_s` (the scrape interval); the first "fail" ends the watch. Returns None when
    `timeout_s` passes or `stop` is set first. no_data and error are left to the phase's evaluation;
    Prometheus unreachable raises InconclusiveError, as in `evaluate`.
    """
    watched = [slo for slo in slos if slo.abort_on_breach and slo.source == "mesh" and "chaos" in slo.phases]
    stop = stop or threading.Event()
    deadline = time.monotonic() + timeout_s
    # rate() needs two samples, so the first poll waits until the window spans two scrape intervals.
    min_window_s = 2 * poll_interval_s
    for _ in range(math.ceil(timeout_s / poll_interval_s) + 1):
        if stop.is_set() or time.monotonic() >= deadline or not watched:
            return None
        now = clock()
        if now - since >= min_window_s:
            start = max(since, now - window_s)
            for result in evaluate(watched, "chaos", start, now, client):
                if result.verdict == "fail":
                    return Breach(result=result, seen_at=now)
        stop.wait(min(poll_interval_s, max(0.0, deadline - time.monotonic())))
    return None


def _evaluate_mesh(slo: Slo, phase: Phase, start: float, end: float, client: PrometheusApi) -> SloResult:
    promql = render_promql(slo, end - start)
    try:
        value = client.query(promql, at=end)
    except ConfigError as exc:
        raise _named(slo, exc) from exc
    except SloQueryError as exc:
        return _result(slo, phase, start, end, promql, None, "error", str(exc))
    if value is None:
        detail = "Prometheus returned no series or NaN: no requests in the window, or nothing matches"
        return _result(slo, phase, start, end, promql, None, "no_data", detail)
    return _result(slo, phase, start, end, promql, value, "pass" if slo.holds(value) else "fail", "")


def _no_samples(slo: Slo, phase: Phase, start: float, end: float) -> SloResult:
    return _result(slo, phase, start, end, "client samples", None, "no_data", "no client samples were given")


def _result(
    slo: Slo, phase: Phase, start: float, end: float, query: str, value: float | None, verdict: Verdict, detail: str
) -> SloResult:
    return SloResult(
        name=slo.name, phase=phase, query=query, value=value, objective=slo.objective, comparator=slo.comparator,
        verdict=verdict, window_start=start, window_end=end, source=slo.source, detail=detail,
    )  # fmt: skip


def _named(slo: Slo, error: ConfigError) -> ConfigError:
    key = "query" if slo.query is not None else "template"
    return ConfigError(f"SLO {slo.name!r}: {error.message}", file=slo.file, field=f"{slo.field}.{key}")
