"""Specifications of the numbers behind reports and comparisons: per-service stats and per-second series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report.rundata import read_run, read_samples
from harness.report.series import time_series
from harness.report.stats import ALL, prepare, service_stats
from harness.report.svg import ticks
from harness.slo import Slo, evaluate_samples
from tests.report.reportkit import DATA, PASSING


T0 = 1_700_000_000.0


def _samples(completions: list[float], latencies: list[float], statuses: list[int], names: list[str]) -> pd.DataFrame:
    latency = np.asarray(latencies, dtype=float)
    return pd.DataFrame({
        "timestamp": np.asarray(completions) - latency / 1000.0, "name": names, "method": "POST",
        "status": statuses, "latency_ms": latency, "tier": "standard", "ok": [0 < s < 400 for s in statuses],
        "response_length": 10, "error": "",
    })  # fmt: skip


def test_stats_agree_with_the_client_side_slos_the_run_judged() -> None:
    run = read_run(DATA / PASSING)
    samples = read_samples(DATA / PASSING)
    assert samples is not None

    stats = {(s.service, s.phase): s for s in service_stats(samples, run.phases)}

    judged = {r.phase: r.value for r in run.slos if r.name == "client-availability"}
    for phase, value in judged.items():
        assert stats[(ALL, phase)].availability == pytest.approx(value, abs=1e-12)
    start, end = run.phases["chaos"]
    p99 = Slo(name="p99", source="client", template="latency", quantile=0.99, objective=1, comparator="<=")
    (expected,) = evaluate_samples([p99], "chaos", start, end, samples)
    assert stats[(ALL, "chaos")].p99_ms == pytest.approx(expected.value, abs=1e-3)


def test_stats_cover_every_request_name_every_phase_and_the_whole_run() -> None:
    run = read_run(DATA / PASSING)
    samples = read_samples(DATA / PASSING)
    assert samples is not None

    stats = service_stats(samples, run.phases)

    assert {s.phase for s in stats} == {"baseline", "chaos", "recovery", "run"}
    assert {s.service for s in stats} == {ALL, "chat [canary]", "chat [premium]", "chat [standard]"}
    whole = {s.service: s.requests for s in stats if s.phase == "run"}
    assert whole[ALL] == sum(n for name, n in whole.items() if name != ALL)


def test_a_request_counts_in_the_second_it_completed_in() -> None:
    samples = _samples([T0 + 0.5, T0 + 1.2, T0 + 1.9, T0 + 3.1], [900.0, 10.0, 30.0, 20.0], [200, 200, 503, 200],
                       ["a", "a", "b", "a"])

    (total, a, b) = time_series(prepare(samples), T0)

    assert (total.service, a.service, b.service) == (ALL, "a", "b")
    assert total.t.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert total.requests.tolist() == [1, 2, 0, 1]
    assert total.error_rate[1] == pytest.approx(0.5) and np.isnan(total.error_rate[2])
    assert a.latency[0.99][0] == 900.0 and np.isnan(a.latency[0.5][2])
    assert b.requests.tolist() == [0, 1, 0, 0]


def test_a_long_run_gets_wider_buckets_so_plots_stay_small() -> None:
    n = 10_000
    samples = _samples(list(T0 + np.linspace(0, 7200, n)), [5.0] * n, [200] * n, ["a"] * n)

    (total, _) = time_series(prepare(samples), T0, max_points=1000)

    assert total.bucket_s == 8.0 and len(total.t) <= 1000
    assert total.throughput.sum() * total.bucket_s == pytest.approx(n)


def test_axis_ticks_are_round_numbers_covering_the_range() -> None:
    assert ticks(0, 20, 10) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert ticks(0, 400, 4) == [0, 100, 200, 300, 400]
    assert ticks(-2.5, 19.2, 10) == [0, 5, 10, 15]
    assert str(ticks(-0.5, 3, 3)[0]) == "0.0", "never a negative zero on an axis"
