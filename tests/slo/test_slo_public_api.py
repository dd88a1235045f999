"""Specifications of harness.slo's public surface: one sorted `__all__`, kept honest."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import harness.errors
import harness.slo


def test_all_is_sorted_and_names_exactly_the_public_objects() -> None:
    public = {
        name for name, value in vars(harness.slo).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }  # fmt: skip

    assert harness.slo.__all__ == sorted(harness.slo.__all__)
    assert set(harness.slo.__all__) == public


def test_every_slo_module_opens_with_a_one_line_docstring() -> None:
    for module_info in pkgutil.iter_modules(harness.slo.__path__):
        module = importlib.import_module(f"harness.slo.{module_info.name}")
        doc = inspect.getdoc(module) or ""
        assert doc and "\n" not in doc.split("\n\n")[0], module_info.name


def test_an_unreachable_prometheus_exits_inconclusive_and_a_query_error_is_one_kind_of_it() -> None:
    assert harness.errors.InconclusiveError.exit_code == 3
    assert issubclass(harness.errors.SloQueryError, harness.errors.InconclusiveError)
    assert harness.errors.ConfigError.exit_code == 2
