"""Specifications of the packages' public surfaces: one sorted `__all__` each, kept honest.

One parametrised file for every package with a declared surface (it replaces the copies that lived in
tests/report and tests/slo). A package either imports its surface eagerly (then `__all__` names
exactly its public objects) or lazily through a module `__getattr__` (run, mesh: then every name in
`__all__` resolves, and nothing public sits beside them).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

#: Loaded by Locust in its own process; importing it here would monkey-patch this one with gevent.
LOCUST_ONLY = {"harness.load._locust_plugin"}
PACKAGES = ["harness.load", "harness.mesh", "harness.platforms", "harness.report", "harness.run", "harness.slo",
            "harness.suite"]


#: Imported for the package's own use, never part of its surface: annotations, and the one error tree
#: (errors are imported from harness.errors, never re-exported; see the test below).
NOT_SURFACE = ("__future__", "typing", "harness.errors")


def _public(package: types.ModuleType) -> set[str]:
    return {name for name, value in vars(package).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
            and getattr(value, "__module__", type(value).__module__) not in NOT_SURFACE}


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_names_exactly_the_public_objects(name: str) -> None:
    package = importlib.import_module(name)

    assert package.__all__ == sorted(package.__all__)
    assert len(set(package.__all__)) == len(package.__all__)
    if "__getattr__" in vars(package):  # lazy: what was already resolved is part of __all__
        assert _public(package) <= set(package.__all__)
    else:
        assert set(package.__all__) == _public(package)
    for exported in package.__all__:
        assert getattr(package, exported) is not None, exported


@pytest.mark.parametrize("name", PACKAGES)
def test_no_package_re_exports_an_error_class(name: str) -> None:
    package = importlib.import_module(name)

    assert not [n for n in package.__all__ if getattr(getattr(package, n), "__module__", "") == "harness.errors"]


@pytest.mark.parametrize("name", PACKAGES)
def test_an_unknown_name_is_an_attribute_error(name: str) -> None:
    package = importlib.import_module(name)

    with pytest.raises(AttributeError):
        getattr(package, "no_such_name")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_module_of_the_package_opens_with_a_one_line_docstring(name: str) -> None:
    package = importlib.import_module(name)
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.ispkg or f"{name}.{module_info.name}" in LOCUST_ONLY:
            continue
        module = importlib.import_module(f"{name}.{module_info.name}")
        doc = inspect.getdoc(module) or ""
        assert doc and "\n" not in doc.split("\n\n")[0], module.__name__


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_function_is_typed(name: str) -> None:
    package = importlib.import_module(name)
    for exported in package.__all__:
        value = getattr(package, exported)
        if inspect.isfunction(value):
            signature = inspect.signature(value)
            assert signature.return_annotation is not inspect.Signature.empty, f"{name}.{exported}"
            assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), \
                f"{name}.{exported}"


def test_the_report_commands_the_cli_calls_return_values_and_print_nothing() -> None:
    import harness.report

    assert list(inspect.signature(harness.report.regenerate_report).parameters) == ["run_dir"]
    assert list(inspect.signature(harness.report.compare_with_baseline).parameters)[:3] == [
        "run", "baseline", "tolerance_text"]
    assert list(inspect.signature(harness.report.save_run_as_baseline).parameters)[:1] == ["run"]
    source = inspect.getsource(importlib.import_module("harness.report.commands"))
    assert "print(" not in source and "exit_code" not in source
