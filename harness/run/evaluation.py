"""The run's use of the load and SLO layers: start load, check queries, watch for breaches, judge phases."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import tracing
from harness.errors import ConfigError, InconclusiveError
from harness.platforms.base import Platform
from harness.run.settings import ExperimentSettings, LoadSettings

if TYPE_CHECKING:
    import pandas as pd

    from harness.slo import Slo

logger = logging.getLogger("harness.run")
PROMETHEUS_LAG_S = 2.2  # one scrape plus one rule evaluation (1 s each), and a small margin
LOAD_CEILING_S = 6 * 3600  # the load is stopped by the run; this only bounds a forgotten one
INGRESS_HOST = "ai-agent-service.parallel-ai.svc.cluster.local"


def load_slos(settings: ExperimentSettings) -> list[Slo]:
    from harness.slo import load_slo_file

    slos = load_slo_file(settings.slo_file)
    if settings.slos is None:
        return slos
    by_name = {s.name: s for s in slos}
    unknown = [n for n in settings.slos if n not in by_name]
    if unknown:
        raise ConfigError(f"no SLO named {', '.join(unknown)} in {settings.slo_file}; it has "
                          f"{', '.join(by_name)}", field="controls[harness].provider.arguments.slos")
    return [by_name[n] for n in settings.slos]


def start_load(load: LoadSettings, platform: Platform, run_dir: Path) -> Any:
    from harness.load import LoadRun, LoadSpec

    status = platform.status()
    spec = LoadSpec(locustfile=load.locustfile, users=load.users, spawn_rate=load.spawn_rate,
                    duration_s=LOAD_CEILING_S, shape=load.shape, host=status["ingress_url"],
                    host_header=status.get("ingress_host", INGRESS_HOST), think_time_s=load.think_time_s,
                    workers=load.workers, extra_env={**load.env, **tracing.locust_environment()})
    run = LoadRun(spec)
    run.start(run_dir)
    return run


def prometheus(platform: Platform) -> Any:
    from harness.slo import PrometheusClient

    return PrometheusClient(platform.status()["prometheus_url"])


def validate_queries(settings: ExperimentSettings, platform: Platform) -> None:
    """Prometheus parses every mesh SLO's PromQL before any load starts (exit 2 if it rejects one)."""
    from harness.slo import validate_slos

    with prometheus(platform) as client:
        validate_slos(load_slos(settings), client)


def breach_watch(slos: list[Slo], platform: Platform, since: float, stop: threading.Event) -> dict[str, Any] | None:
    from harness.slo import watch_for_breach

    with prometheus(platform) as client:
        breach = watch_for_breach(slos, client, since=since, timeout_s=LOAD_CEILING_S, stop=stop)
    if breach is None:
        return None
    return {"name": breach.result.name, "seen_at": breach.seen_at, "value": breach.result.value,
            "objective": breach.result.objective, "comparator": breach.result.comparator,
            "query": breach.result.query}


def _samples(run_dir: Path, load: Any) -> pd.DataFrame | None:
    if load is None:
        return None
    try:
        return load.samples()
    except (OSError, ValueError) as exc:
        logger.warning("no load samples: %s", exc)
        return None


def evaluate_run(session: Any, *, interrupted: bool) -> dict[str, Any]:
    """SLO verdicts per phase, fault visibility and pod recovery, from Prometheus and the samples."""
    from harness.slo import evaluate

    samples = _samples(session.run_dir, session.load)  # while Prometheus catches up with the windows
    ends = [p.end for p in session.phases.values() if p.end is not None]
    if ends:
        time.sleep(max(0.0, max(ends) + PROMETHEUS_LAG_S - time.time()))
    results: list[dict[str, Any]] = []
    inconclusive = None
    try:
        with prometheus(session.platform) as client:
            for name, phase in session.phases.items():
                if phase.start is None or phase.end is None or phase.end <= phase.start:
                    continue
                for settle in sorted({s.settle_s for s in session.slos}):
                    start = phase.start + (settle if name == "chaos" else 0.0)
                    slos = [s for s in session.slos if s.settle_s == settle]
                    if start >= phase.end:
                        raise ConfigError(f"the chaos phase lasted {phase.end - phase.start:.1f} s, no longer than "
                                          f"settle_s {settle} of {', '.join(s.name for s in slos)}", field="settle_s")
                    for result in evaluate(slos, name, start, phase.end, client, samples=samples):
                        results.append(dataclasses.asdict(result))
    except InconclusiveError as exc:
        inconclusive = str(exc)
    except Exception as exc:  # the platform or Prometheus went away mid-evaluation: no verdict can be given
        inconclusive = f"{type(exc).__name__}: {exc}"
    if any(r["verdict"] == "error" for r in results) and inconclusive is None:
        inconclusive = "; ".join(r["detail"] for r in results if r["verdict"] == "error")
    chaos = _fault_visibility(session, samples)
    return {"slo_results": results, "inconclusive": inconclusive, "chaos": chaos,
            "load": _load_summary(session.load, samples), "interrupted": interrupted}


def _fault_visibility(session: Any, samples: pd.DataFrame | None) -> dict[str, Any]:
    from harness.chaos.record import RECORDER

    snapshot = RECORDER.snapshot()
    for fault in snapshot["faults"]:
        fault["first_visible_at"] = _first_visible(fault, samples)
        if fault["first_visible_at"] is not None and fault["requested_at"] is not None:
            fault["visible_after_ms"] = round((fault["first_visible_at"] - fault["requested_at"]) * 1000, 1)
        fault["errors_until"] = _last_error_after(fault, samples)
    watcher = session.pod_watcher
    for kill in snapshot["pod_kills"]:
        ready = watcher.ready_again_after(kill["pod"], kill["killed_at"]) if watcher else None
        kill["recovered_at"] = ready
        kill["recovery_s"] = None if ready is None else round(ready - kill["killed_at"], 3)
    return snapshot


def _first_visible(fault: dict[str, Any], samples: pd.DataFrame | None) -> float | None:
    if samples is None or samples.empty or fault.get("applied_at") is None:
        return None
    after = samples[samples["timestamp"] >= fault["requested_at"]]
    details = fault.get("details", {})
    if fault["kind"] == "delay":
        hit = after[after["latency_ms"] >= 0.9 * float(details.get("delay_ms", 0))]
    elif fault["kind"] == "abort":
        hit = after[after["status"] == int(details.get("http_status", 503))]
        if hit.empty:
            hit = after[~after["ok"].astype(bool)]
    else:
        hit = after[~after["ok"].astype(bool)]
    return None if hit.empty else float(hit["timestamp"].min())


def _last_error_after(fault: dict[str, Any], samples: pd.DataFrame | None) -> float | None:
    """For recovery reporting: the last failed request between the fault and its revert."""
    if samples is None or samples.empty:
        return None
    end = fault.get("reverted_requested_at") or float(samples["timestamp"].max())
    window = samples[(samples["timestamp"] >= fault["requested_at"]) & (samples["timestamp"] <= end)]
    failed = window[~window["ok"].astype(bool)]
    return None if failed.empty else float(failed["timestamp"].max())


def _table(table: Any) -> dict[str, Any] | None:
    if table is None:
        return None
    return {"total": dataclasses.asdict(table.total),
            "by_name": {name: dataclasses.asdict(row) for name, row in table.by_name.items()}}


def _load_summary(load: Any, samples: pd.DataFrame | None) -> dict[str, Any]:
    if load is None:
        return {}
    summary: dict[str, Any] = {"pids": list(load.pids)}
    try:
        stats = load.stats()
        summary["stats"] = {"locust": _table(stats.locust), "samples": _table(stats.samples)}
    except (OSError, ValueError) as exc:
        summary["stats_error"] = str(exc)
    if samples is not None:
        summary["samples"] = int(len(samples))
    return summary
