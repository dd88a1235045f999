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
    from harness.slo.lag import TelemetryLag

logger = logging.getLogger("harness.run")
EJECTIONS = "envoy_cluster_outlier_detection_ejections_active"  # Envoy's gauge, per proxy and cluster
EJECTION_WAIT_S = 120.0  # the seed's baseEjectionTime is 30 s, times the number of ejections in a row
READINESS_TIMEOUT_S = 30.0  # past the warm-up: Prometheus picks up targets within ~5 s of starting
EVALUATION_SLACK_S = 0.5  # a rule sample stamped t is written once its evaluation is done, shortly after t
LOAD_CEILING_S = 6 * 3600  # the load is stopped by the run; this only bounds a forgotten one
SHAPE_MARGIN_S = 2.0  # a shape ends this long past the load's duration: after the run stopped watching it
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
    # The run stops the load; a shape spans the load's duration, and outlasts the run by a margin so
    # that the run, not the shape, ends it (see harness.run.overrides.check_duration).
    duration = LOAD_CEILING_S if load.shape is None or load.duration_s is None else load.duration_s + SHAPE_MARGIN_S
    spec = LoadSpec(locustfile=load.locustfile, users=load.users, spawn_rate=load.spawn_rate,
                    duration_s=duration, shape=load.shape, rate=load.rate, host=status["ingress_url"],
                    host_header=status.get("ingress_host", INGRESS_HOST), think_time_s=load.think_time_s,
                    workers=load.workers, extra_env={**load.env, **tracing.locust_environment()})
    if getattr(platform, "in_cluster", False):  # kind --in-cluster: Locust as Jobs, the same files collected here
        from harness.run.in_cluster import in_cluster_load_run

        run: Any = in_cluster_load_run(spec, platform)
    else:
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


def measure_lag(platform: Platform, deadline: float) -> TelemetryLag:
    """The telemetry lag of the running mesh, measured now with marked requests (harness/slo/lag.py)."""
    from harness.slo.lag import measure_lag as measure

    with prometheus(platform) as client:
        return measure(platform.status(), platform.telemetry_pipeline(), client, deadline=deadline,
                       current_status=platform.status)


class LagProbe(threading.Thread):
    """measure_lag in a thread, so the probes run while the load starts and warms up."""

    def __init__(self, platform: Platform, deadline: float) -> None:
        super().__init__(name="harness-lag-probe", daemon=True)
        self.platform, self.deadline = platform, deadline
        self.lag: TelemetryLag | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.lag = measure_lag(self.platform, self.deadline)
        except Exception as exc:  # handed to the main thread by result()
            self.error = exc

    def result(self) -> TelemetryLag:
        self.join(max(0.0, self.deadline - time.monotonic()) + 10.0)
        if self.error is not None:
            if isinstance(self.error, InconclusiveError):
                raise self.error
            raise InconclusiveError(f"the telemetry lag could not be measured: {type(self.error).__name__}: "
                                    f"{self.error}") from self.error
        if self.lag is None:
            raise InconclusiveError("the telemetry lag probe did not finish by its deadline")
        return self.lag


def wait_for_ejections(platform: Platform, timeout_s: float = EJECTION_WAIT_S) -> dict[str, Any]:
    """Before the run's own load: hosts that outlier detection ejected on earlier traffic (a previous
    run's faults) stay out for baseEjectionTime times their ejections, and a baseline measured while
    they are out measures what that run left behind. Waits (bounded) until Envoy's gauge shows none;
    InconclusiveError naming them past `timeout_s`. Returns what it saw: seconds waited, the hosts at
    first, and whether the gauge is exported at all (a mesh whose proxies do not export outlier stats,
    as Istio's default proxyStatsMatcher does not, cannot show them: said, not assumed clean)."""
    started = time.monotonic()
    first: list[str] | None = None
    with prometheus(platform) as client:
        while True:
            series = client.samples(f"{EJECTIONS}[5s]", time.time())
            ejected = sorted(f"{labels.get('pod', labels.get('instance', '?'))}: {labels.get('cluster_name', '?')} "
                             f"({values[-1][1]:g})" for labels, values in series if values and values[-1][1] > 0)
            first = ejected if first is None else first
            if not ejected:
                return {"waited_s": round(time.monotonic() - started, 3), "ejected_at_start": first,
                        "visible": bool(series)}
            if time.monotonic() - started > timeout_s:
                raise InconclusiveError(f"hosts ejected by outlier detection before this run's load started are "
                                        f"still out after {timeout_s:g} s (an earlier run's faults): "
                                        f"{'; '.join(ejected[:5])}; the baseline would measure them")
            time.sleep(1.0)


def wait_until_ready(slos: list[Slo], platform: Platform, lag: TelemetryLag, deadline: float) -> float:
    """The readiness gate: returns (the time it took, s) once Prometheus answers every mesh SLO's query
    with a number over the samples after the lag probes (so the probes' 405s do not count, only the
    load), whatever phases the SLO is judged in; InconclusiveError naming the queries still without
    data at `deadline` (time.monotonic()), at once for a query that cannot yield one number."""
    from harness.slo import PHASES, evaluate

    mesh = [dataclasses.replace(slo, phases=PHASES) for slo in slos if slo.source == "mesh"]
    started = time.monotonic()
    # rate() needs two samples: the one stamped at settled_at (it holds every probe) and a later one.
    span_s = max(lag.pipeline.scrape_s, lag.pipeline.rule_s)
    missing: list[Any] = []
    with prometheus(platform) as client:
        while mesh:
            now = time.time()
            if now - lag.settled_at > span_s:
                results = evaluate(mesh, "baseline", lag.settled_at, now, client)
                broken = [r for r in results if r.verdict == "error"]
                if broken:
                    raise InconclusiveError("; ".join(f"SLO {r.name}: {r.detail}" for r in broken))
                missing = [r for r in results if r.value is None]
                if not missing:
                    break
            if time.monotonic() > deadline:
                names = "; ".join(f"{r.name}: {r.query}" for r in missing) or "every mesh SLO (no sample yet)"
                raise InconclusiveError(f"Prometheus returned no data by the end of the warm-up (bounded at "
                                        f"{READINESS_TIMEOUT_S:g} s past it) for {names}")
            time.sleep(0.2)
    return round(time.monotonic() - started, 3)


def evaluate_run(session: Any, *, interrupted: bool) -> dict[str, Any]:
    """SLO verdicts per phase, fault visibility and pod recovery, from Prometheus and the samples.

    Client SLOs are judged over each phase's own window: Locust stamps every sample. A mesh SLO's
    samples in Prometheus trail the requests by the telemetry lag measured at the run's start: a
    request completed at t is in the recorded samples from t + lag.lower_s to t + lag.upper_s at the
    latest (its stats flush, scrape and rule evaluation). So each phase [start, end] is judged over
    [start + upper_s, end + lower_s]: the first sample there already holds every request of the phase
    before (increase() counts only what comes after the first sample; a series born in the window is counted
    from its first sample, slo/promql.requests_in_window), and no sample up to its end holds a
    request of the phase after. The requests of the band between (upper_s - lower_s, about one
    pipeline period) are in neither phase: a phase's value describes only its own requests.
    """
    from harness.slo import evaluate

    samples = _samples(session.run_dir, session.load)  # while Prometheus catches up with the windows
    lag: TelemetryLag | None = getattr(session, "telemetry_lag", None)
    ends = [p.end for p in session.phases.values() if p.end is not None]
    if ends and lag is not None:
        time.sleep(max(0.0, max(ends) + lag.lower_s + EVALUATION_SLACK_S - time.time()))
    results: list[dict[str, Any]] = []
    inconclusive = getattr(session, "not_ready", None)
    windows: list[tuple[str, float, float]] = []
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
                    client_slos = [s for s in slos if s.source != "mesh"]
                    mesh_slos = [s for s in slos if s.source == "mesh"]
                    found = evaluate(client_slos, name, start, phase.end, None, samples=samples)
                    for group, own_lag in _by_reporting_proxy(mesh_slos, lag):
                        if name in {p for s in group for p in s.phases}:
                            first, last = _mesh_window(name, start, phase.end, own_lag)
                            windows.append((name, first, last))
                            found += _thin_windows(evaluate(group, name, first, last, client), client)
                    order = [s.name for s in slos]
                    results += [dataclasses.asdict(r) for r in sorted(found, key=lambda r: order.index(r.name))]
        _stats_kept(session.platform, windows, lag, results)
    except InconclusiveError as exc:
        inconclusive = inconclusive or str(exc)
    except Exception as exc:  # the platform or Prometheus went away mid-evaluation: no verdict can be given
        inconclusive = inconclusive or f"{type(exc).__name__}: {exc}"
    if any(r["verdict"] == "error" for r in results) and inconclusive is None:
        inconclusive = "; ".join(r["detail"] for r in results if r["verdict"] == "error")
    chaos = _fault_visibility(session, samples)
    results += chaos.get("security_checks") or []  # security probes' verdicts: SLO rows, source "security"
    return {"slo_results": results, "inconclusive": inconclusive, "chaos": chaos,
            "load": _load_summary(session.load, samples), "interrupted": interrupted,
            "telemetry_lag": None if lag is None else lag.as_dict(),
            "readiness_wait_s": getattr(session, "readiness_s", None)}


def _by_reporting_proxy(slos: list[Slo], lag: TelemetryLag | None) -> list[tuple[list[Slo], TelemetryLag | None]]:
    """SLOs on what the ingress gateway reports (reporter="source" for ai-agent-service) take the
    gateway's own lag, the probes' exact path; any other query the bounds of every probed proxy."""
    from harness.slo.lag import PROBED_SERVICE

    gateway = [s for s in slos if s.query is None and s.reporter == "source" and s.service == PROBED_SERVICE]
    others = [s for s in slos if s not in gateway]
    groups = [(gateway, None if lag is None else lag.of_gateway()), (others, lag)]
    return [(group, own) for group, own in groups if group]


def _stats_kept(platform: Platform, windows: list[tuple[str, float, float]], lag: TelemetryLag | None,
                results: list[dict[str, Any]]) -> None:
    """A push that redefined the proxies' stats (a Telemetry's tag overrides changed, e.g. `harness apply`
    from another shell) while the lag probe or a phase's mesh window was measured: the counters restart
    under new stat names and can feed the same series as the old ones (translate/telemetry.
    stats_definitions), so counts across the change are not the requests'. The mesh rows of each phase
    it reaches (every phase when it reaches the lag probe, whose bounds place every window) become
    errors saying so, which makes the run inconclusive."""
    if lag is None or not windows:
        return
    from harness.slo.lag import probe_lookback_s, quiet_after

    probe_first = lag.measured_at - probe_lookback_s(lag.pipeline)
    reached: dict[str, str] = {}
    for record in platform.status().get("stats_redefinitions") or []:
        changed, quiet = float(record["at"]), quiet_after(record, lag.pipeline)
        what = (f"a push ({record.get('reason')}) changed how {', '.join(record.get('proxies', []))} count "
                f"requests (a Telemetry's metrics)")
        if changed < lag.settled_at and quiet > probe_first:
            reached.update((phase, f"{what} while the telemetry lag was measured, which places every mesh window")
                           for phase, _, _ in windows)
        for phase, first, last in windows:
            if changed < last and quiet > first:
                reached.setdefault(phase, f"{what} within the {phase} phase's mesh window")
    for row in results:
        if row["source"] == "mesh" and row["phase"] in reached:
            row.update(verdict="error", value=None, detail=(
                f"{reached[row['phase']]}: their counters restarted under new stat names, so the counts across "
                f"the change are not the requests'; run again once it is done"))


def _thin_windows(results: list[Any], client: Any) -> list[Any]:
    """no_data where Prometheus itself recorded fewer than two samples in the window (its rule
    evaluations or scrapes fell behind, e.g. on a starved machine) says nothing about the mesh: an
    error (the run is inconclusive) that says so, not a failed SLO."""
    from harness.slo import prometheus_duration

    checked = []
    for result in results:
        if result.verdict == "no_data":
            window = prometheus_duration(result.window_end - result.window_start)
            recorded = client.query(f"max(count_over_time(istio_requests_total[{window}]))", at=result.window_end)
            if recorded is None or recorded < 2:
                result = dataclasses.replace(result, verdict="error", detail=(
                    f"Prometheus recorded {0 if recorded is None else int(recorded)} sample(s) of istio_requests_total "
                    f"in the {result.phase} window ({window}): its rule evaluations or scrapes fell behind, so the "
                    f"window cannot say whether the mesh served requests"))
        checked.append(result)
    return checked


def _mesh_window(phase: str, start: float, end: float, lag: TelemetryLag | None) -> tuple[float, float]:
    """[start, end] of a phase's requests as the samples that hold exactly them (see evaluate_run)."""
    if lag is None:
        raise InconclusiveError("the telemetry lag was not measured, so no mesh SLO window can be placed")
    first, last = lag.phase_window(start, end)
    # increase() needs two samples in the window: two sample periods are the least that surely hold them.
    needed = 2 * max(lag.pipeline.scrape_s, lag.pipeline.rule_s)
    if last - first < needed:
        raise InconclusiveError(
            f"the {phase} phase's mesh window is {last - first:.2f} s once the telemetry lag is taken out "
            f"(phase {end - start:.2f} s; requests show up {lag.lower_s:.2f} to {lag.upper_s:.2f} s after they "
            f"complete); at least {needed:g} s are needed: lengthen the phase")
    return first, last


def _fault_visibility(session: Any, samples: pd.DataFrame | None) -> dict[str, Any]:
    from harness.chaos.context import current

    snapshot = current().recorder.snapshot()
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
