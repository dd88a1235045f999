"""The shape of a run's journal.json, checked before any report reads it: every problem names the field.

A journal is usually written by `harness run`, but `harness report` and `compare` read whatever a run
directory holds (an edited, truncated or foreign file), and a wrong type, NaN or a number too large
for a float must be a ConfigError naming the field (exit 2), never a traceback deep in a report.
Only the fields the reports read are checked; others are kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from harness.errors import ConfigError, ExitCode
from harness.slo.model import COMPARATORS as _COMPARATORS
from harness.slo.model import Verdict

MAX_MAGNITUDE = 1e15  # epoch seconds, milliseconds and ratios are far below; past it a number is garbage
VERDICTS = get_args(Verdict)  # the SLO verdicts harness.slo.model defines
COMPARATORS = tuple(_COMPARATORS)

_FAULT_NUMBERS = ("applied_at", "reverted_at", "inject_latency_ms", "revert_latency_ms", "visible_after_ms",
                  "errors_until", "first_visible_at", "reverted_requested_at")


class _Check:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.path, field=field)

    def mapping(self, value: Any, field: str, *, optional: bool = True) -> Mapping[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(field, f"expected an object, got {_kind(value)}")
        return value

    def items(self, value: Any, field: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list, got {_kind(value)}")
        return value

    def number(self, value: Any, field: str, *, optional: bool = False) -> None:
        if value is None:
            if optional:
                return
            raise self.fail(field, "missing; expected a number")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(field, f"expected a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number) or abs(number) > MAX_MAGNITUDE:
            raise self.fail(field, f"expected a finite number of magnitude at most {MAX_MAGNITUDE:g}, got {_kind(value)}")

    def text(self, value: Any, field: str, *, optional: bool = False, choices: tuple[str, ...] | None = None) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {_kind(value)}")
        if choices is not None and value not in choices:
            raise self.fail(field, f"expected one of {', '.join(choices)}, got {_kind(value)}")


def check_journal(journal: Mapping[str, Any], path: Path) -> None:
    """ConfigError naming the first field of `journal` the reports could not read."""
    check = _Check(path)
    experiment = check.mapping(journal.get("experiment"), "experiment", optional=False)
    check.text(experiment.get("title"), "experiment.title", optional=True)
    check.text(journal.get("status"), "status", optional=True)
    check.text(journal.get("start"), "start", optional=True)
    check.text(journal.get("node"), "node", optional=True)
    check.number(journal.get("duration"), "duration", optional=True)
    harness = check.mapping(journal.get("harness"), "harness")
    code = harness.get("exit_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int) or ExitCode.of(code) != code):
        raise check.fail("harness.exit_code", f"expected one of {', '.join(str(int(c)) for c in ExitCode)}, "
                                              f"got {_kind(code)}")
    for key in ("platform", "phase", "error", "inconclusive", "interrupted_by", "run_dir", "experiment_file"):
        check.text(harness.get(key), f"harness.{key}", optional=True)
    phases = check.mapping(harness.get("phases"), "harness.phases")
    for name, entry in phases.items():
        entry = check.mapping(entry, f"harness.phases.{name}")
        for end in ("start", "end"):
            check.number(entry.get(end), f"harness.phases.{name}.{end}", optional=True)
    chaos = check.mapping(harness.get("chaos"), "harness.chaos")
    for index, kill in enumerate(check.items(chaos.get("pod_kills"), "harness.chaos.pod_kills")):
        where = f"harness.chaos.pod_kills[{index}]"
        kill = check.mapping(kill, where, optional=False)
        check.text(kill.get("pod"), f"{where}.pod")
        check.number(kill.get("killed_at"), f"{where}.killed_at")
        for key in ("recovered_at", "recovery_s"):
            check.number(kill.get(key), f"{where}.{key}", optional=True)
    for index, fault in enumerate(check.items(chaos.get("faults"), "harness.chaos.faults")):
        where = f"harness.chaos.faults[{index}]"
        fault = check.mapping(fault, where, optional=False)
        check.text(fault.get("kind"), f"{where}.kind")
        check.text(fault.get("target"), f"{where}.target")
        check.number(fault.get("requested_at"), f"{where}.requested_at")
        for key in _FAULT_NUMBERS:
            check.number(fault.get(key), f"{where}.{key}", optional=True)
        details = check.mapping(fault.get("details"), f"{where}.details")
        for key in ("percentage", "delay_ms", "replicas", "http_status"):
            check.number(details.get(key), f"{where}.details.{key}", optional=True)
    for index, row in enumerate(check.items(harness.get("slo_results"), "harness.slo_results")):
        _slo_result(check, row, f"harness.slo_results[{index}]")
    for index, undo in enumerate(check.items(harness.get("undo"), "harness.undo")):
        where = f"harness.undo[{index}]"
        undo = check.mapping(undo, where, optional=False)
        for key in ("registered_at", "done_at"):
            check.number(undo.get(key), f"{where}.{key}", optional=True)
    breach = harness.get("abort_on_breach")
    if breach is not None:
        breach = check.mapping(breach, "harness.abort_on_breach")
        for key in ("value", "objective", "seen_at"):
            check.number(breach.get(key), f"harness.abort_on_breach.{key}", optional=True)


def _slo_result(check: _Check, row: Any, where: str) -> None:
    row = check.mapping(row, where, optional=False)
    check.text(row.get("name"), f"{where}.name")
    check.text(row.get("phase"), f"{where}.phase")
    check.text(row.get("comparator"), f"{where}.comparator", choices=COMPARATORS)
    check.text(row.get("verdict"), f"{where}.verdict", choices=VERDICTS)
    for key in ("query", "source", "detail"):
        check.text(row.get(key), f"{where}.{key}", optional=True)
    check.number(row.get("objective"), f"{where}.objective")
    check.number(row.get("window_start"), f"{where}.window_start")
    check.number(row.get("window_end"), f"{where}.window_end")
    check.number(row.get("value"), f"{where}.value", optional=True)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
