"""Load and validate an experiment before anything starts: Chaos Toolkit's checks plus the harness's own."""

from __future__ import annotations

import importlib
import inspect
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.pathcheck import checked_path

HARNESS_CONTROL = "harness.run.control"
HARNESS_MODULES = ("harness.chaos.actions", "harness.chaos.probes", "harness.chaos.policies", "harness.chaos.security")
EXPERIMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # as harness.report.baseline.ID_PATTERN


def load_experiment_file(path: Path) -> dict[str, Any]:
    """Parse YAML or JSON, then Chaos Toolkit's own validation; errors name the file."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    checked_path(path, field="experiment", file=path)
    if not path.is_file():
        raise ConfigError("no such experiment file", file=path)
    try:
        experiment = load_experiment(str(path))
    except ChaosException as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError(f"cannot load the experiment: {exc}", file=path,
                          field=f"line {line.group(1)}" if line else "(document)") from exc
    except Exception as exc:  # YAML/JSON parser errors carry the line; keep their text
        raise ConfigError(f"invalid YAML or JSON: {exc}", file=path, field=_parse_error_field(exc)) from exc
    check_structure(experiment, path)
    check_harness_activities(experiment, path, set())  # before Chaos Toolkit's check, whose errors name no field
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        raise ConfigError(f"not a valid Chaos Toolkit experiment: {exc}", file=path) from exc
    except (AttributeError, TypeError, KeyError, ValueError) as exc:  # a shape check_structure does not know
        raise ConfigError(f"not a valid Chaos Toolkit experiment (its validation failed on "
                          f"{type(exc).__name__}: {exc})", file=path, field="(document)") from exc
    return experiment


def _parse_error_field(exc: BaseException) -> str:
    """Where a parser failed: "line N" when it says (PyYAML's problem_mark, json's lineno), else the document."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}"
    if isinstance(getattr(exc, "lineno", None), int):
        return f"line {exc.lineno}"  # type: ignore[attr-defined]
    if isinstance(exc, UnicodeDecodeError):
        return f"byte {exc.start}"
    return "(document)"


def check_structure(experiment: Any, path: Path) -> None:
    """The shapes Chaos Toolkit's own validation assumes (it fails with a traceback, not an error, on
    an experiment that is a list, a method that is a mapping, a provider that is a string, ...)."""
    if not isinstance(experiment, dict):
        raise ConfigError(f"expected a mapping (title, method, controls, ...), got {_kind(experiment)}", file=path,
                          field="(document)")
    if not isinstance(experiment.get("title"), str):
        raise ConfigError(f"expected a string, got {_kind(experiment.get('title'))}", file=path, field="title")
    for key in ("steady-state-hypothesis", "rollbacks", "controls", "configuration", "secrets", "tags"):
        if key in experiment and experiment[key] is None:  # Chaos Toolkit reads a present key as a value
            raise ConfigError("expected a value or no key at all, got nothing", file=path, field=key)
    hypothesis = experiment.get("steady-state-hypothesis")
    if hypothesis is not None:
        if not isinstance(hypothesis, dict):
            raise ConfigError(f"expected a mapping with title and probes, got {_kind(hypothesis)}", file=path,
                              field="steady-state-hypothesis")
        _activity_list(hypothesis.get("probes"), path, "steady-state-hypothesis.probes", required=False)
    _activity_list(experiment.get("method"), path, "method", required=True)
    _activity_list(experiment.get("rollbacks"), path, "rollbacks", required=False)
    controls = experiment.get("controls")
    if controls is not None:
        if not isinstance(controls, list):
            raise ConfigError(f"expected a list of controls, got {_kind(controls)}", file=path, field="controls")
        for index, control in enumerate(controls):
            where = f"controls[{index}]"
            if not isinstance(control, dict):
                raise ConfigError(f"expected a mapping with name and provider, got {_kind(control)}", file=path,
                                  field=where)
            _provider(control.get("provider"), path, f"{where}.provider")
    for key in ("configuration", "secrets"):
        if experiment.get(key) is not None and not isinstance(experiment[key], dict):
            raise ConfigError(f"expected a mapping, got {_kind(experiment[key])}", file=path, field=key)
    identity = experiment.get("id")
    if identity is not None and not (isinstance(identity, str) and EXPERIMENT_ID.fullmatch(identity)):
        raise ConfigError(f"expected a stable experiment id: letters, digits, '.', '_' or '-', starting with a letter "
                          f"or digit, at most 128 (it names the experiment's baseline), got {_kind(identity)}",
                          file=path, field="id")
    tags = experiment.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise ConfigError(f"expected a list of strings, got {_kind(tags)}", file=path, field="tags")


def _activity_list(raw: Any, path: Path, where: str, *, required: bool) -> None:
    if raw is None and not required:
        return
    if not isinstance(raw, list):
        raise ConfigError(f"expected a list of activities, got {_kind(raw)}", file=path, field=where)
    for index, activity in enumerate(raw):
        if not isinstance(activity, dict):
            raise ConfigError(f"expected an activity (a mapping with type, name and provider), got {_kind(activity)}",
                              file=path, field=f"{where}[{index}]")
        if "ref" in activity:
            continue  # a reference to an activity declared elsewhere; Chaos Toolkit resolves it
        if not isinstance(activity.get("name"), str):
            raise ConfigError(f"expected a string, got {_kind(activity.get('name'))}", file=path,
                              field=f"{where}[{index}].name")
        _provider(activity.get("provider"), path, f"{where}[{index}].provider")


def _provider(raw: Any, path: Path, where: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping with type (python, http or process) and its fields, got {_kind(raw)}",
                          file=path, field=where)
    if raw.get("type") not in ("python", "http", "process"):
        raise ConfigError(f"expected type python, http or process, got {_kind(raw.get('type'))}", file=path,
                          field=f"{where}.type")
    if raw["type"] == "python":
        for key in ("module", "func"):
            if key in raw or key == "module":
                if not isinstance(raw.get(key), str) or not raw[key]:
                    raise ConfigError(f"expected a string, got {_kind(raw.get(key))}", file=path, field=f"{where}.{key}")
    arguments = raw.get("arguments")  # a process provider's may be a string or a list (its argv)
    if arguments is not None and raw["type"] != "process" and not isinstance(arguments, dict):
        raise ConfigError(f"expected a mapping of argument names to values, got {_kind(arguments)}", file=path,
                          field=f"{where}.arguments")


def check_load_declared(experiment: dict[str, Any], settings: Any, path: Path) -> None:
    """Chaos never runs without its load: an experiment whose method acts needs a `load:`."""
    if settings.load is None and experiment.get("method"):
        raise ConfigError("missing: the load the chaos runs under (load: {locustfile: ..., users: ...}); "
                          "chaos without load measures nothing", file=path,
                          field="controls[harness].provider.arguments.load")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def activities(experiment: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every activity with the field path a user would look for."""
    found: list[tuple[str, dict[str, Any]]] = []
    for index, probe in enumerate((experiment.get("steady-state-hypothesis") or {}).get("probes") or []):
        found.append((f"steady-state-hypothesis.probes[{index}]", probe))
    for section in ("method", "rollbacks"):
        for index, activity in enumerate(experiment.get(section) or []):
            found.append((f"{section}[{index}]", activity))
    return found


def harness_control_arguments(experiment: dict[str, Any], path: Path) -> dict[str, Any]:
    for control in experiment.get("controls") or []:
        if (control.get("provider") or {}).get("module") == HARNESS_CONTROL:
            return dict(control["provider"].get("arguments") or {})  # a mapping: check_structure saw to it
    raise ConfigError(f"the experiment declares no harness control (provider module {HARNESS_CONTROL}); "
                      "it carries the load and SLOs", file=path, field="controls")


def check_harness_activities(experiment: dict[str, Any], path: Path, services: set[str]) -> None:
    """Argument names and types of the harness's actions and probes, and the services they name."""
    for where, activity in activities(experiment):
        provider = activity.get("provider") or {}
        if provider.get("type") != "python" or provider.get("module") not in HARNESS_MODULES:
            continue
        func = getattr(importlib.import_module(provider["module"]), provider.get("func", ""), None)
        if func is None:
            raise ConfigError(f"{provider['module']} has no {provider.get('func')!r}; it has "
                              f"{', '.join(importlib.import_module(provider['module']).__all__)}",
                              file=path, field=f"{where}.provider.func")
        _check_arguments(func, provider.get("arguments") or {}, path, f"{where}.provider.arguments", services)


def _check_arguments(func: Any, arguments: dict[str, Any], path: Path, where: str, services: set[str]) -> None:
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func)
    for name, value in arguments.items():
        if name not in signature.parameters:
            raise ConfigError(f"{func.__name__} takes no argument {name!r}; it takes "
                              f"{', '.join(signature.parameters)}", file=path, field=f"{where}.{name}")
        if isinstance(value, str) and value.startswith("${"):
            continue  # a Chaos Toolkit configuration substitution, resolved at run time
        if name in hints and not _matches(value, hints[name]):
            raise ConfigError(f"expected {_describe(hints[name])}, got {_kind(value)}", file=path,
                              field=f"{where}.{name}")
        problem = _range_problem(name, value)
        if problem:
            raise ConfigError(problem, file=path, field=f"{where}.{name}")
    missing = [n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty
               and n not in arguments]
    if missing:
        raise ConfigError(f"{func.__name__} needs {', '.join(missing)}", file=path, field=where)
    service = arguments.get("service")
    if isinstance(service, str) and services and service.split(".")[0] not in services:
        raise ConfigError(f"unknown service {service!r}; services: {', '.join(sorted(services))}", file=path,
                          field=f"{where}.service")


@dataclass(frozen=True)
class Range:
    """The values a numeric argument of the harness's actions and probes takes (finite, inclusive)."""

    low: float
    high: float
    above_low: bool = False  # the low end itself is refused (a delay of 0 ms)
    unit: str = ""


ARGUMENT_RANGES: dict[str, Range] = {
    "percentage": Range(0, 100, unit=" percent"),
    "percent": Range(0, 100, above_low=True, unit=" percent"),
    "max_percent": Range(0, 100, above_low=True, unit=" percent"),
    "delay_ms": Range(0, 3_600_000, above_low=True, unit=" milliseconds"),  # an hour: past it, a typo
    "http_status": Range(200, 599),
    "count": Range(1, 10_000),
    "repeat": Range(1, 10_000),
    "interval_s": Range(0, 3600, unit=" seconds"),
    "replicas": Range(0, 10_000),
    "window_s": Range(0, 86_400, above_low=True, unit=" seconds"),
    "at": Range(0, 1e11, unit=" (epoch seconds)"),
}
"""Checked at `validate` so that a value the action would refuse mid-run (after the load and the
baseline) fails before anything starts; the actions keep their own checks for plain `chaos run`."""


def _range_problem(name: str, value: Any) -> str | None:
    rule = ARGUMENT_RANGES.get(name)
    if rule is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low = f"> {rule.low:g}" if rule.above_low else f">= {rule.low:g}"
    if not math.isfinite(value) or value < rule.low or (rule.above_low and value == rule.low) or value > rule.high:
        return f"expected a number{rule.unit} {low} and <= {rule.high:g}, got {_kind(value)}"
    return None


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (dict, typing.Dict) or hint is dict:
        return isinstance(value, dict)
    if origin in (list, typing.List) or hint is list:
        return isinstance(value, list)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def code_it_runs(experiment: dict[str, Any]) -> list[str]:
    """What the experiment runs with the user's rights beyond the harness's own code: every `process`
    activity and every Python function outside the `harness` package (activities and controls)."""
    found: list[str] = []
    for where, activity in activities(experiment):
        provider = activity.get("provider") or {}
        if provider.get("type") == "process":
            argv = " ".join(str(a) for a in [provider.get("path", ""), *_process_arguments(provider)])
            found.append(f"{where} ({activity.get('name', '?')}): process {argv}")
        elif provider.get("type") == "python" and not _harness_module(provider.get("module")):
            found.append(f"{where} ({activity.get('name', '?')}): python {provider.get('module')}.{provider.get('func')}")
    for index, control in enumerate(experiment.get("controls") or []):
        provider = control.get("provider") or {}
        if provider.get("type") == "python" and not _harness_module(provider.get("module")):
            found.append(f"controls[{index}] ({control.get('name', '?')}): python control {provider.get('module')}")
        if provider.get("module") == HARNESS_CONTROL:
            load = (provider.get("arguments") or {}).get("load")
            found += _load_code(load if isinstance(load, dict) else {}, f"controls[{index}].provider.arguments.load")
    return found


# Variables that make a process load other code than it would (the Locust process inherits load.env).
CODE_LOADING_ENV = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
                    "PYTHONUSERBASE", "PATH")


def _load_code(load: dict[str, Any], where: str) -> list[str]:
    """The locustfile (Python run by Locust) unless it is one of the shipped ones, and load.env variables
    that change which code the Locust process loads."""
    found = []
    locustfile = load.get("locustfile")
    shipped = Path(__file__).resolve().parents[2] / "locustfiles"
    if isinstance(locustfile, str) and shipped not in (Path.cwd() / locustfile).resolve().parents:
        found.append(f"{where}.locustfile: python {locustfile} (Locust runs it)")
    env = load.get("env")
    for name in sorted(env) if isinstance(env, dict) else []:
        if name in CODE_LOADING_ENV:
            found.append(f"{where}.env.{name}={env[name]} (changes what the Locust process loads)")
    return found


def _harness_module(module: Any) -> bool:
    return isinstance(module, str) and (module == "harness" or module.startswith("harness."))


def _process_arguments(provider: dict[str, Any]) -> list[str]:
    arguments = provider.get("arguments")
    if isinstance(arguments, str):
        return [arguments]
    if isinstance(arguments, list):
        return [str(a) for a in arguments]
    if isinstance(arguments, dict):
        return [f"{k}={v}" for k, v in arguments.items()]
    return []
