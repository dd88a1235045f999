"""Capacity at SLO: the load rises in steps while the SLOs are judged per step; the highest step that held.

An experiment asks for it with the harness control's `capacity:` argument and the `climb` action in
its method (so a fault can run beside it, as `background: true` activities, in capacity-under-pod-kill):

    capacity: {start_rps: 50, step_rps: 50, step_s: 10, ceiling_rps: 500, user_rps: 5, min_rps: 100}
    method: [{type: action, name: climb, provider: {type: python, module: harness.run.capacity, func: climb}}]

Each Locust user runs Locust's own constant_throughput(user_rps), so a step of R requests/s is
R / user_rps users; `climb` writes each step's user count into the load's target.json, which the
recorder plugin hands to Locust's runner.start (harness/load/_locust_plugin.py). A step is judged
over [its start + settle_s, its end]: every SLO of the run (whatever its phases) from the client
samples, and mesh SLOs from Prometheus over the window shifted by the measured telemetry lag. A step
holds when every SLO passes and Locust sent at least REACHED of the step's rate. The capacity is the
highest step below the first break; per service, the same over that service's SLOs.

A break counts once it is confirmed: the `confirm_steps - 1` steps after it, each with more load, did not
hold either (default 2: the next step too). On a shared machine one 8 s window now and then fails on a
burst of errors that the next, heavier step does not repeat; such a blip is reported, and the climb
goes on. With load only ever rising, a mesh that broke for good breaks again at the next step; a step
with none run after it (the ceiling, or a stopped climb) counts as confirmed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, InconclusiveError
from harness.files import atomic_write
from harness.load._command import TARGET_FILE
from harness.load._spec import NumberRule

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger("harness.run")
# The load's own NumberRule (harness/load/_spec.py) checks each field: a number, finite, in bounds.
NUMBER_RULES = {
    **{name: NumberRule(integer=False, minimum=0, above_minimum=True, maximum=100_000)
       for name in ("start_rps", "step_rps", "ceiling_rps", "min_rps")},
    "step_s": NumberRule(integer=False, minimum=3, maximum=600),
    "settle_s": NumberRule(integer=False, minimum=0, maximum=60),
    "user_rps": NumberRule(integer=False, minimum=0, above_minimum=True, maximum=1000),
    "spawn_rate": NumberRule(integer=False, minimum=0, above_minimum=True, maximum=1000),
    "confirm_steps": NumberRule(integer=True, minimum=1, maximum=5),
}
FIELDS = set(NUMBER_RULES)
FLUSH_S = 1.5  # the recorder plugin flushes samples every second (TICK_S), plus a margin
REACHED = 0.9  # Locust sent at least this share of a step's rate, or the step did not hold
MAX_STEPS = 200
CLIENT_GROUP = "client"  # the service name of client SLOs in per-service capacity


@dataclass(frozen=True)
class CapacitySettings:
    """A staircase of request rates (requests/s) and how long each step lasts (s)."""

    start_rps: float
    step_rps: float
    step_s: float
    ceiling_rps: float
    user_rps: float = 5.0  # each user's constant_throughput; a step is a whole number of users
    settle_s: float = 2.0  # a step's window opens this long after its users were asked for
    spawn_rate: float = 100.0  # users started per second when a step adds users
    min_rps: float | None = None  # the run fails when the capacity is below this
    confirm_steps: int = 2  # a break counts when this many steps in a row (it and those after) broke

    def targets(self) -> list[float]:
        count = int(math.floor((self.ceiling_rps - self.start_rps) / self.step_rps + 1e-9)) + 1
        return [self.start_rps + i * self.step_rps for i in range(count)]

    def users_for(self, rps: float) -> int:
        return max(1, round(rps / self.user_rps))

    @property
    def duration_s(self) -> float:
        return len(self.targets()) * self.step_s


def parse_capacity(raw: Any, where: str) -> CapacitySettings:
    """The control's `capacity:` mapping; errors name the field."""
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping with start_rps, step_rps, step_s, ceiling_rps", field=where)
    unknown = set(raw) - FIELDS
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)}; expected {sorted(FIELDS)}", field=where)
    values: dict[str, float] = {}
    for name in ("start_rps", "step_rps", "step_s", "ceiling_rps"):
        if name not in raw:
            raise ConfigError("missing", field=f"{where}.{name}")
    for name, value in raw.items():
        problem = NUMBER_RULES[name].problem(value)
        if problem is not None:
            raise ConfigError(problem, field=f"{where}.{name}")
        values[name] = int(value) if NUMBER_RULES[name].integer else float(value)
    settings = CapacitySettings(**values)  # type: ignore[arg-type]
    if settings.ceiling_rps < settings.start_rps:
        raise ConfigError(f"expected ceiling_rps >= start_rps ({settings.start_rps:g})", field=f"{where}.ceiling_rps")
    for name in ("start_rps", "step_rps"):
        users = getattr(settings, name) / settings.user_rps
        if abs(users - round(users)) > 1e-6:
            raise ConfigError(f"expected a multiple of user_rps ({settings.user_rps:g} requests/s per user), so "
                              f"each step is a whole number of users", field=f"{where}.{name}")
    if len(settings.targets()) > MAX_STEPS:
        raise ConfigError(f"more than {MAX_STEPS} steps from start_rps to ceiling_rps", field=f"{where}.step_rps")
    if settings.settle_s >= settings.step_s:
        raise ConfigError(f"expected settle_s < step_s ({settings.step_s:g})", field=f"{where}.settle_s")
    return settings


def check_experiment(experiment: Mapping[str, Any], capacity: CapacitySettings | None, path: Any) -> None:
    """`capacity:` and the climb action come together; the climb runs once, in the method."""
    climbs = [a for a in experiment.get("method") or [] if isinstance(a, Mapping)
              and (a.get("provider") or {}).get("module") == __name__ and (a.get("provider") or {}).get("func") == "climb"]
    if capacity is not None and len(climbs) != 1:
        raise ConfigError("a capacity run climbs once: put exactly one action with provider "
                          f"{{type: python, module: {__name__}, func: climb}} in the method", file=path, field="method")
    if capacity is None and climbs:
        raise ConfigError("the climb action needs the harness control's capacity: {start_rps, step_rps, step_s, "
                          "ceiling_rps}", file=path, field="controls[harness].provider.arguments.capacity")


# -- the action ------------------------------------------------------------------------------------------


def climb() -> dict[str, Any]:
    """Chaos Toolkit action: raise the load step by step (the session's capacity settings); returns the
    steps it ran. Stops early once a step's client SLOs broke or Locust fell short of its rate (the mesh
    SLOs are judged afterwards)."""
    from harness.run.control import session as current_session

    session = current_session()
    if session is None or session.settings.capacity is None or session.load is None:
        raise InconclusiveError("climb runs only under the harness with a capacity: setting and its load")
    capacity: CapacitySettings = session.settings.capacity
    steps: list[dict[str, Any]] = []
    session.capacity_steps = steps
    target = session.load.run_dir / TARGET_FILE
    client_slos = [dataclasses.replace(s, phases=("chaos",)) for s in session.slos if s.source != "mesh"]
    broken_in_a_row = 0
    try:
        for rps in capacity.targets():
            users = capacity.users_for(rps)
            atomic_write(target, json.dumps({"users": users, "spawn_rate": capacity.spawn_rate}))
            started = time.time()
            steps.append({"target_rps": rps, "users": users, "start": started, "end": None})
            time.sleep(capacity.step_s)
            steps[-1]["end"] = time.time()
            # Locust's recorder writes its samples once a second: the last second is not on disk yet
            seen_until = steps[-1]["end"] - FLUSH_S
            if not _client_broke(session, client_slos, started + capacity.settle_s, seen_until, rps):
                broken_in_a_row = 0
                continue
            broken_in_a_row += 1
            if broken_in_a_row >= capacity.confirm_steps:
                logger.info("capacity: %d steps in a row up to %g req/s broke on the client side; climbing no "
                            "further", broken_in_a_row, rps)
                break
            logger.info("capacity: the step at %g req/s broke on the client side; the next one confirms it", rps)
    finally:  # the recovery window runs at the first step again, as the baseline did
        atomic_write(target, json.dumps({"users": capacity.users_for(capacity.start_rps),
                                         "spawn_rate": capacity.spawn_rate}))
    return {"steps": len(steps), "last_rps": steps[-1]["target_rps"] if steps else None}


def _client_broke(session: Any, slos: list[Any], start: float, end: float, target_rps: float) -> bool:
    """A client SLO failed over the step, or Locust did not reach its rate: no higher step can hold."""
    from harness.slo import evaluate

    try:
        samples = session.load.samples()
    except (OSError, ValueError):
        return False
    if end - start < 1.0:
        return False
    sent = step_metrics(samples, start, end)["throughput_rps"]
    if sent is not None and sent < REACHED * target_rps:
        return True
    return any(r.verdict == "fail" for r in evaluate(slos, "chaos", start, end, None, samples=samples))


# -- the verdict -----------------------------------------------------------------------------------------


def step_metrics(samples: pd.DataFrame | None, start: float, end: float) -> dict[str, Any]:
    """Throughput, p50/p95/p99 and error ratio of the requests Locust started in [start, end]."""
    empty = {"requests": 0, "throughput_rps": None, "p50_ms": None, "p95_ms": None, "p99_ms": None, "error_ratio": None}
    if samples is None or samples.empty or end <= start:
        return empty
    window = samples[(samples["timestamp"] > start) & (samples["timestamp"] <= end)]
    if window.empty:
        return {**empty, "throughput_rps": 0.0}
    latency = window["latency_ms"].astype(float)
    return {"requests": int(len(window)), "throughput_rps": round(len(window) / (end - start), 2),
            "p50_ms": round(float(latency.quantile(0.5)), 1), "p95_ms": round(float(latency.quantile(0.95)), 1),
            "p99_ms": round(float(latency.quantile(0.99)), 1),
            "error_ratio": round(1.0 - float(window["ok"].astype(bool).mean()), 5)}


def _judge_step(session: Any, step: dict[str, Any], samples: pd.DataFrame | None, client: Any) -> None:
    from harness.slo import evaluate

    capacity: CapacitySettings = session.settings.capacity
    start, end = step["start"] + capacity.settle_s, step["end"]
    step.update(step_metrics(samples, start, end), window=[start, end])
    slos = [dataclasses.replace(s, phases=("chaos",)) for s in session.slos]
    results = evaluate([s for s in slos if s.source != "mesh"], "chaos", start, end, None, samples=samples)
    mesh = [s for s in slos if s.source == "mesh"]
    if mesh:
        lag = getattr(session, "telemetry_lag", None)
        if lag is None:
            raise InconclusiveError("the telemetry lag was not measured, so no mesh SLO can be judged per step")
        first, last = lag.phase_window(start, end)
        if last - first < max(lag.pipeline.scrape_s, lag.pipeline.rule_s):
            raise InconclusiveError(f"a capacity step's mesh window is {last - first:.2f} s once the telemetry lag "
                                    f"is taken out: lengthen step_s")
        results += evaluate(mesh, "chaos", first, last, client)
    by_service: dict[str, bool] = {}
    for slo, result in zip([s for s in slos if s.source != "mesh"] + mesh, results):
        group = slo.service or CLIENT_GROUP
        by_service[group] = by_service.get(group, True) and result.verdict == "pass"
    step["slos"] = [{"slo": r.name, "value": r.value, "objective": r.objective, "comparator": r.comparator,
                     "verdict": r.verdict, "detail": r.detail} for r in results]
    step["broken"] = [s for s in step["slos"] if s["verdict"] != "pass"]
    step["services"] = by_service
    reached = step["throughput_rps"] is not None and step["throughput_rps"] >= REACHED * step["target_rps"]
    step["reached"] = reached
    step["held"] = reached and not step["broken"]
    why = [f"{b['slo']} {b['verdict']}: {'-' if b['value'] is None else format(b['value'], '.4g')} "
           f"(objective {b['comparator']} {b['objective']:g})" for b in step["broken"]]
    if not reached:
        why.append(f"Locust sent {step['throughput_rps']} req/s, under {REACHED:.0%} of the step's "
                   f"{step['target_rps']:g}")
    step["why"] = "; ".join(why)


def judge(session: Any) -> None:
    """After the run: judge every step, then the capacity; adds `capacity` to the session's result, a
    `capacity-at-slo` row to its SLO results, and the reason when the steps cannot be judged."""
    from harness.run.evaluation import prometheus

    capacity: CapacitySettings = session.settings.capacity
    steps = [s for s in getattr(session, "capacity_steps", []) if s.get("end") is not None]
    result = session.result
    samples, unreadable = None, None
    try:
        samples = session.load.samples() if session.load is not None else None
    except (OSError, ValueError) as exc:
        unreadable = exc
    try:
        if not steps:
            raise InconclusiveError("the climb ran no step")
        if unreadable is not None or samples is None:
            # no samples is no step's figures: that is not knowing the capacity, not a capacity of 0
            raise InconclusiveError(f"the load's samples could not be read ({unreadable or 'no load'}), so no step "
                                    f"can be judged")
        mesh = any(s.source == "mesh" for s in session.slos)
        with prometheus(session.platform) if mesh else contextlib.nullcontext() as client:
            for step in steps:
                _judge_step(session, step, samples, client)
        index = first_break([step["held"] for step in steps], capacity.confirm_steps)
        for step in steps[index:index + capacity.confirm_steps] if index is not None else []:
            # the confirmed break: each of its steps failed an SLO or its rate; a step without data is no break
            definite = not step["reached"] or any(r["verdict"] == "fail" for r in step["broken"])
            if not definite:
                raise InconclusiveError(f"the step at {step['target_rps']:g} req/s could not be judged: {step['why']}")
    except InconclusiveError as exc:
        result["inconclusive"] = result.get("inconclusive") or f"capacity: {exc}"
    summary = summarise(steps, capacity)
    result["capacity"] = summary
    result.setdefault("slo_results", []).append(_verdict_row(summary, capacity, steps))


def first_break(held: list[bool], confirm: int) -> int | None:
    """The index of the first step that did not hold and whose next `confirm - 1` steps did not either
    (fewer when the climb ran no more); None when there is none."""
    for index, ok in enumerate(held):
        if not ok and not any(held[index + 1:index + confirm]):
            return index
    return None


def _highest_before(steps: list[dict[str, Any]], held: list[bool], confirm: int) -> tuple[float | None, int | None]:
    index = first_break(held, confirm)
    below = steps if index is None else steps[:index]
    return max((s["target_rps"] for s, ok in zip(below, held) if ok), default=None), index


def summarise(steps: list[dict[str, Any]], capacity: CapacitySettings) -> dict[str, Any]:
    """Capacity overall and per service, where it broke and why, and the blips below it."""
    held_flags = [bool(step.get("held")) for step in steps]
    held, index = _highest_before(steps, held_flags, capacity.confirm_steps)
    broke_at = None if index is None else {"target_rps": steps[index]["target_rps"],
                                           "why": steps[index].get("why", "not judged")}
    blips = [{"target_rps": s["target_rps"], "why": s.get("why", "not judged")}
             for s, ok in zip(steps[:index] if index is not None else steps, held_flags) if not ok]
    services = sorted({g for s in steps for g in s.get("services", {})})
    per_service: dict[str, float | None] = {}
    for group in services:
        flags = [bool(s.get("services", {}).get(group, False) and s.get("reached")) for s in steps]
        per_service[group] = _highest_before(steps, flags, capacity.confirm_steps)[0]
    from harness.report.perf import headline

    summary = {"capacity_rps": held, "per_service": per_service, "broke_at": broke_at, "blips": blips,
               "settings": dataclasses.asdict(capacity), "steps": steps}
    summary["headline"] = headline(summary)  # "capacity at SLO: N req/s; broke at ..."
    return summary


def _verdict_row(summary: dict[str, Any], capacity: CapacitySettings, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The capacity as one more SLO result (so junit, compare and the score see it)."""
    value = summary["capacity_rps"]
    objective = capacity.min_rps if capacity.min_rps is not None else capacity.start_rps
    passed = value is not None and value >= objective
    detail = ("highest step whose SLOs all held"
              + (f"; broke at {summary['broke_at']['target_rps']:g} req/s: {summary['broke_at']['why']}"
                 if summary["broke_at"] else "; held up to the ceiling"))
    return {"name": "capacity-at-slo", "phase": "chaos", "query": "capacity steps (harness.run.capacity)",
            "value": value, "objective": objective, "comparator": ">=", "verdict": "pass" if passed else "fail",
            "window_start": steps[0]["start"] if steps else 0.0, "window_end": steps[-1]["end"] if steps else 0.0,
            "source": "client", "detail": detail}


def generator_windows(session: Any) -> dict[str, tuple[float, float]]:
    """The steps up to the confirmed break: a saturated Locust above it changes nothing measured."""
    steps = getattr(session, "capacity_steps", [])
    index = first_break([bool(s.get("held")) for s in steps], session.settings.capacity.confirm_steps)
    return {f"step {s['target_rps']:g} req/s": (s["window"][0], s["window"][1])
            for s in (steps if index is None else steps[:index + 1]) if s.get("window")}


def attach_generator(session: Any, generator: dict[str, Any]) -> None:
    """Each judged step's busiest Locust CPU, for the capacity table."""
    for step in getattr(session, "capacity_steps", []):
        window = generator["windows"].get(f"step {step['target_rps']:g} req/s")
        step["generator_percent"] = None if window is None else window["busiest_percent"]
