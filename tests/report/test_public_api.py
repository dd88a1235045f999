"""Specifications of harness.report's public surface: one sorted `__all__`, kept honest."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import harness.report


def test_all_is_sorted_and_names_exactly_the_public_objects() -> None:
    public = {
        name for name, value in vars(harness.report).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }  # fmt: skip

    assert harness.report.__all__ == sorted(harness.report.__all__)
    assert set(harness.report.__all__) == public


def test_every_report_module_opens_with_a_one_line_docstring() -> None:
    for module_info in pkgutil.iter_modules(harness.report.__path__):
        module = importlib.import_module(f"harness.report.{module_info.name}")
        doc = inspect.getdoc(module) or ""
        assert doc and "\n" not in doc.split("\n\n")[0], module_info.name


def test_every_public_function_is_typed() -> None:
    for name in harness.report.__all__:
        value = getattr(harness.report, name)
        if inspect.isfunction(value):
            signature = inspect.signature(value)
            assert signature.return_annotation is not inspect.Signature.empty, name
            assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


def test_the_cli_entry_points_the_lead_wires_exist_with_their_signatures() -> None:
    assert list(inspect.signature(harness.report.cli_report).parameters) == ["run_dir"]
    assert list(inspect.signature(harness.report.cli_compare).parameters)[:3] == ["run", "baseline", "tolerance_text"]
    assert list(inspect.signature(harness.report.cli_baseline_save).parameters)[:1] == ["run"]
