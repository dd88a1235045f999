"""Live SLO state for the game-day operator: every SLO of the run over the last 30 s (harness.run.live), as table lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.run.live import WINDOW_S, evaluate_live

if TYPE_CHECKING:
    import pandas as pd

    from harness.slo import SloResult

logger = logging.getLogger("harness.suite")


def format_results(results: Sequence[SloResult], *, window_s: float = WINDOW_S) -> list[str]:
    if not results:
        return [f"live SLOs (last {window_s:g} s): none to show"]
    width = max(len(r.name) for r in results)
    lines = [f"live SLOs (last {window_s:g} s):"]
    for r in results:
        value = "-" if r.value is None else f"{r.value:.4g}"
        lines.append(f"  {r.name:<{width}}  {value:>10}  ({r.comparator} {r.objective:g})  {r.verdict.upper()}")
    return lines


def session_slo_state(window_s: float = WINDOW_S) -> list[str]:
    """The live state of the running `harness run` session (harness.run.control's), as lines."""
    from harness.run import control
    from harness.slo import PrometheusClient

    session = control.session()
    if session is None:
        return ["live SLOs: no harness session (is the experiment running under `harness gameday`?)"]
    samples = _samples(session)
    # As the run's own live line (harness.run.live): the window ends the measured telemetry lag ago, the
    # newest moment whose requests are all in Prometheus; client samples are judged over the same window.
    lag = session.telemetry_lag
    lag_s = lag.upper_s if lag is not None else 0.0
    try:
        with PrometheusClient(session.platform.status()["prometheus_url"]) as client:
            results = evaluate_live(session.slos, client, now=time.time() - lag_s, window_s=window_s, samples=samples)
    except HarnessError as exc:  # Prometheus or the platform unreachable: say so, the operator decides
        return [f"live SLOs: not available ({exc})"]
    lines = format_results(results, window_s=window_s)
    if lag is not None and results:
        lines[0] = f"live SLOs (last {window_s:g} s, ending {lag_s:.1f} s ago: the measured telemetry lag):"
    return lines


def _samples(session: Any) -> pd.DataFrame | None:
    if session.load is None or not any(slo.source == "client" for slo in session.slos):
        return None
    try:
        return session.load.samples()
    except (OSError, ValueError, HarnessError) as exc:
        logger.debug("no live samples: %s", exc)
        return None
