"""The Locust-side recorder's sample writer, driven directly: CSV quoting, tiers, whole-line flushes."""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from harness.load import SAMPLE_COLUMNS
from harness.load._command import PLUGIN
from harness.load._samples import iter_samples


@pytest.fixture(scope="module")
def recorder() -> Iterator[ModuleType]:
    """harness/load/_locust_plugin.py, imported without gevent's monkey-patching of this test process."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
        patch.delenv("HARNESS_LOAD_RUN_DIR", raising=False)
        spec = importlib.util.spec_from_file_location("harness_test_recorder", PLUGIN)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    yield module


class Response:
    status_code = 503


def test_the_recorder_writes_the_documented_columns(recorder: ModuleType) -> None:
    assert tuple(recorder.COLUMNS) == SAMPLE_COLUMNS


def test_rows_are_csv_with_tier_from_context_or_name_and_errors_quoted(recorder: ModuleType, tmp_path: Path) -> None:
    writer = recorder.SampleWriter(tmp_path / "samples.csv")
    writer.on_request(request_type="POST", name="chat [premium]", response_time=1.5, response_length=80,
                      response=None, context={}, exception=None, start_time=100.25)
    writer.on_request(request_type="GET", name='odd, "name"', response_time=2.0, response_length=0,
                      response=Response(), context={"tier": "canary"}, exception=ValueError('bad, "x"\nnext'),
                      start_time=101.0)
    writer.flush()
    with (tmp_path / "samples.csv").open(newline="") as samples:
        rows = list(csv.reader(samples))
    assert rows == [list(SAMPLE_COLUMNS),
                    ["100.250000", "chat [premium]", "POST", "0", "1.500", "premium", "True", "80", ""],
                    ["101.000000", 'odd, "name"', "GET", "503", "2.000", "canary", "False", "0",
                     'ValueError: bad, "x" next']]
    assert [s.tier for s in iter_samples(tmp_path)] == ["premium", "canary"]


def test_nothing_reaches_the_file_until_a_flush_and_then_only_whole_lines(recorder: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    writer = recorder.SampleWriter(path)
    header = path.read_text()
    for index in range(10):
        writer.on_request(request_type="POST", name="chat [standard]", response_time=1.0, response_length=1,
                          response=None, context=None, exception=None, start_time=float(index))
    assert path.read_text() == header  # buffered
    writer.flush()
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 11
