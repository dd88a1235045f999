"""Load and validate an experiment before anything starts: Chaos Toolkit's checks plus the harness's own."""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

HARNESS_CONTROL = "harness.run.control"
HARNESS_MODULES = ("harness.chaos.actions", "harness.chaos.probes")


def load_experiment_file(path: Path) -> dict[str, Any]:
    """Parse YAML or JSON, then Chaos Toolkit's own validation; errors name the file."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid
    from chaoslib.loader import load_experiment

    if not path.is_file():
        raise ConfigError("no such experiment file", file=path)
    try:
        experiment = load_experiment(str(path))
    except ChaosException as exc:
        raise ConfigError(f"cannot load the experiment: {exc}", file=path) from exc
    except Exception as exc:  # YAML/JSON parser errors carry the line; keep their text
        raise ConfigError(f"invalid YAML or JSON: {exc}", file=path) from exc
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        raise ConfigError(f"not a valid Chaos Toolkit experiment: {exc}", file=path) from exc
    return experiment


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
            return dict(control["provider"].get("arguments") or {})
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
            raise ConfigError(f"expected {_describe(hints[name])}, got {value!r}", file=path,
                              field=f"{where}.{name}")
    missing = [n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty
               and n not in arguments]
    if missing:
        raise ConfigError(f"{func.__name__} needs {', '.join(missing)}", file=path, field=where)
    service = arguments.get("service")
    if isinstance(service, str) and services and service.split(".")[0] not in services:
        raise ConfigError(f"unknown service {service!r}; services: {', '.join(sorted(services))}", file=path,
                          field=f"{where}.service")


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
