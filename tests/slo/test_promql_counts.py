"""How many requests the SLO templates count in a window, checked by promtool on exact series.

`promtool test rules` evaluates PromQL over series written sample by sample (Prometheus 2.42's own
engine, stale markers included), at a chosen time: here a 16 s window evaluated at 20 s, one sample
per second. The cases are the ones a count over a window can get wrong (prometheus/prometheus#1673:
a series has no zero before its first sample; a failed scrape writes stale markers for every series of
the target).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from harness.slo.promql import requests_in_window
from tests.slo.conftest import _binary

SERIES = 'istio_requests_total{{reporter="source",destination_service_name="svc"{extra}}}'
ALL, ERRORS = SERIES.format(extra=""), SERIES.format(extra=',response_code=~"5.."')


def _series(code: str) -> str:
    return SERIES.format(extra=f',response_code="{code}"').replace("{{", "{").replace("}}", "}")


def _count(selector: str) -> str:
    return requests_in_window(selector).replace("{{", "{").replace("}}", "}").replace("$window", "16s")


CASES = {
    # a 503 series first scraped at 1 (t=10) and counting to 11: all 11 are the window's; increase()
    # alone saw 10, and with its extrapolation toward zero plus the first value it saw 12
    "a series born in the window counts from its first sample": (
        {"200": "0+10x20", "503": "_x10 1+1x10"}, {ALL: 171, ERRORS: 11}),
    # a failed scrape just before the window (t=4) wrote stale markers; the series are not new: an
    # instant lookup at the window's start took them for new and added their whole lifetime
    "a stale marker at the window's start is no new series": (
        {"200": "1000+10x3 stale 1050+10x15", "503": "100x3 stale 100x15"}, {ALL: 160, ERRORS: 0}),
    # a series seen before the window and still counting: increase() alone, nothing added
    "a series older than the window counts by increase": (
        {"200": "0+10x20", "503": "5+1x20"}, {ALL: 176, ERRORS: 16}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_requests_counted_in_a_window(case: str, tmp_path: Path) -> None:
    inputs, expected = CASES[case]
    test = {"rule_files": [], "evaluation_interval": "1s", "tests": [{
        "interval": "1s",
        "input_series": [{"series": _series(code), "values": values} for code, values in inputs.items()],
        "promql_expr_test": [{"expr": _count(selector), "eval_time": "20s",
                              "exp_samples": [{"labels": "{}", "value": value}]}
                             for selector, value in expected.items()],
    }]}
    path = tmp_path / "counts.test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run([_binary("promtool"), "test", "rules", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
