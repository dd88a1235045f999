"""Property-based fuzzing (hypothesis) of the experiment and SLO loaders and of `report`/`compare`.

Whatever the file holds, the command line answers with an exit code of 0, 1, 2 or 3 and never a
traceback: harness.cli.main returns (it maps HarnessError to its exit code and lets anything else
escape, which fails the test), and nothing on stderr looks like a Python traceback. The inputs are a
valid experiment, SLO file or run directory with one value replaced by an arbitrary one (wrong types,
NaN, infinities, huge integers, odd strings, nested lists and mappings) or removed, plus arbitrary
documents, and samples.csv cells replaced by arbitrary text. Examples are bounded (max_examples,
deadline=None) so the file takes seconds: the corpus in test_bad_input.py keeps the known cases.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

HERE = Path(__file__).parent
VALID_EXPERIMENT = yaml.safe_load((HERE / "valid-experiment.yaml").read_text())
VALID_RUN = HERE / "valid-run"
VALID_JOURNAL = json.loads((VALID_RUN / "journal.json").read_text())
SLO_DOCUMENT = {"slos": [
    {"name": "p99", "template": "latency", "service": "ai-agent-service", "quantile": 0.99, "objective": 500,
     "comparator": "<=", "phases": ["baseline", "recovery"], "settle_s": 1},
    {"name": "ok", "source": "client", "template": "availability", "objective": 0.99, "comparator": ">=",
     "description": "users"}]}
EXIT_CODES = {0, 1, 2, 3}
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
           | st.integers(min_value=10 ** 300, max_value=10 ** 301)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30)
           | st.sampled_from(["", "\0", "x" * 5000, "../..", "${x}", ">=", "nan", "1e9", "\x1b[31m"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` with the value at one path replaced by an arbitrary one, or removed."""
    result = copy.deepcopy(document)
    path = draw(st.sampled_from(_paths(result)))
    if not path:
        return draw(values)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(values)
    return result


def _dump(document: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(document)
    return yaml.safe_dump(document, allow_unicode=True)


def _cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


# Import everything `validate` and `report` use before hypothesis runs: one of those libraries (celpy)
# raises the recursion limit on import, which hypothesis would otherwise warn about.
_cli(["validate", str(HERE / "valid-experiment.yaml")])


def _assert_clean(code: int, err: str) -> None:
    assert code in EXIT_CODES, f"exit {code}: {err}"
    assert "Traceback (most recent call last)" not in err, err


@FUZZ
@given(document=mutated(VALID_EXPERIMENT) | values, as_json=st.booleans())
def test_validate_of_any_experiment_exits_0_1_2_or_3_without_a_traceback(document: Any, as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ("experiment.json" if as_json else "experiment.yaml")
        path.write_text(_dump(document, as_json))
        _assert_clean(*_cli(["validate", str(path)]))


@FUZZ
@given(document=mutated(SLO_DOCUMENT) | values)
def test_validate_of_any_slo_file_exits_0_1_2_or_3_without_a_traceback(document: Any) -> None:
    with tempfile.TemporaryDirectory() as directory:
        slo_file = Path(directory) / "slos.yaml"
        slo_file.write_text(_dump(document, False))
        experiment = copy.deepcopy(VALID_EXPERIMENT)
        arguments = experiment["controls"][0]["provider"]["arguments"]
        arguments["slo_file"] = str(slo_file)
        arguments.pop("slos")
        path = Path(directory) / "experiment.yaml"
        path.write_text(_dump(experiment, False))
        _assert_clean(*_cli(["validate", str(path)]))


@FUZZ
@given(journal=mutated(VALID_JOURNAL), cell=st.none() | st.tuples(st.integers(0, 30), st.integers(0, 8),
                                                                    st.text(max_size=12)))
def test_report_and_compare_of_any_run_exit_0_1_2_or_3_without_a_traceback(
        journal: Any, cell: tuple[int, int, str] | None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        run = Path(shutil.copytree(VALID_RUN, Path(directory) / "run"))
        (run / "journal.json").write_text(json.dumps(journal))
        if cell is not None:
            row, column, text = cell
            lines = (run / "samples.csv").read_text().splitlines()
            cells = lines[row].split(",")
            cells[column] = text
            lines[row] = ",".join(cells)
            (run / "samples.csv").write_text("\n".join(lines) + "\n")
        _assert_clean(*_cli(["report", str(run)]))
        _assert_clean(*_cli(["compare", str(run), str(VALID_RUN)]))
        _assert_clean(*_cli(["compare", str(VALID_RUN), str(run)]))
