"""Specifications of client-side SLOs computed from per-request samples (synthetic DataFrames)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.slo import COLUMNS, Slo, evaluate, evaluate_samples, load_samples

T0 = 1_700_000_000.0


def _slo(template: str, **fields: object) -> Slo:
    defaults: dict[str, object] = {"objective": 0.995, "comparator": ">="}
    if template == "latency":
        defaults = {"objective": 500, "comparator": "<=", "quantile": 0.99}
    return Slo(**{"name": f"client-{template}", "source": "client", "template": template, **defaults, **fields})  # type: ignore[arg-type]


def _samples(statuses: list[int], *, start: float = T0, tiers: list[str] | None = None, latencies: list[float] | None = None) -> pd.DataFrame:
    """One sample per status, completing one second apart from start + 1; ok as Locust reports it (< 400)."""
    n = len(statuses)
    latency = np.asarray(latencies if latencies is not None else [10.0] * n, dtype=float)
    return pd.DataFrame({
        "timestamp": start + np.arange(1, n + 1, dtype=float) - latency / 1000.0,
        "name": ["/api/v1/chat"] * n,
        "method": ["POST"] * n,
        "status": statuses,
        "latency_ms": latencies if latencies is not None else [10.0] * n,
        "tier": tiers if tiers is not None else ["standard"] * n,
        "ok": [0 < s < 400 for s in statuses],
        "response_length": [100] * n,
        "error": ["" if 0 < s < 400 else "failed" for s in statuses],
    })  # fmt: skip


def test_availability_counts_ok_requests_without_5xx_or_connection_errors() -> None:
    samples = _samples([200] * 994 + [503, 503, 502, 0, 0, 404])

    (result,) = evaluate_samples([_slo("availability")], "chaos", T0, T0 + 1000, samples)

    assert result.value == pytest.approx(0.994)
    assert (result.verdict, result.source, result.detail) == ("fail", "client", "1000 samples")
    assert result.query == "client samples: share of samples with ok and 0 < status < 500"


def test_error_ratio_counts_5xx_and_connection_errors_but_not_4xx() -> None:
    samples = _samples([200] * 994 + [503, 503, 502, 0, 0, 404])

    (result,) = evaluate_samples([_slo("error_ratio", objective=0.01, comparator="<")], "chaos", T0, T0 + 1000, samples)

    assert result.value == pytest.approx(0.005)
    assert result.verdict == "pass"


def test_latency_quantile_is_the_smallest_latency_that_share_of_requests_did_not_exceed() -> None:
    samples = _samples([200] * 1000, latencies=[float(ms) for ms in range(1000, 0, -1)])

    p99, p50 = evaluate_samples(
        [_slo("latency"), _slo("latency", name="p50", quantile=0.5, objective=499)], "baseline", T0, T0 + 1000, samples
    )

    assert (p99.value, p99.verdict) == (990.0, "fail")
    assert (p50.value, p50.verdict) == (500.0, "fail")


def test_the_window_takes_samples_after_its_start_up_to_and_including_its_end() -> None:
    samples = _samples([503] + [200] * 8 + [503])  # at T0+1 ... T0+10

    (inside,) = evaluate_samples([_slo("error_ratio")], "chaos", T0 + 1, T0 + 9, samples)
    (both,) = evaluate_samples([_slo("error_ratio")], "chaos", T0, T0 + 10, samples)

    assert inside.value == 0.0 and inside.detail == "8 samples"
    assert both.value == pytest.approx(0.2) and both.detail == "10 samples"


def test_no_samples_in_the_window_is_no_data_which_is_not_a_pass() -> None:
    samples = _samples([200] * 10)

    (result,) = evaluate_samples([_slo("availability")], "recovery", T0 + 100, T0 + 200, samples)

    assert (result.verdict, result.value, result.passed) == ("no_data", None, False)
    assert result.detail == "no samples in the window"


def test_a_tier_slo_judges_only_that_tiers_requests() -> None:
    samples = _samples([200, 503, 200, 200], tiers=["premium", "standard", "premium", "standard"])

    premium, everyone = evaluate_samples(
        [_slo("availability", name="premium", tier="premium"), _slo("availability")], "chaos", T0, T0 + 4, samples
    )

    assert (premium.value, premium.verdict, premium.detail) == (1.0, "pass", "2 samples")
    assert premium.query.endswith("where tier=premium")
    assert (everyone.value, everyone.verdict) == (0.75, "fail")


def test_a_request_slo_judges_only_requests_of_that_name() -> None:
    samples = _samples([200, 503, 200])
    samples.loc[1, "name"] = "/health"

    (result,) = evaluate_samples([_slo("availability", request="/api/v1/chat")], "chaos", T0, T0 + 3, samples)

    assert (result.value, result.detail) == (1.0, "2 samples")


def test_only_client_slos_of_the_phase_are_evaluated_from_samples() -> None:
    mesh = Slo(name="mesh", template="availability", service="s", objective=0.9, comparator=">=")
    baseline_only = _slo("availability", name="baseline-only", phases=("baseline",))

    results = evaluate_samples([mesh, baseline_only, _slo("availability")], "chaos", T0, T0 + 5, _samples([200] * 5))

    assert [r.name for r in results] == ["client-availability"]


def test_evaluate_puts_client_and_mesh_views_side_by_side_and_no_samples_is_no_data() -> None:
    slos = [_slo("availability"), _slo("latency")]

    with_samples = evaluate(slos, "baseline", T0, T0 + 5, None, samples=_samples([200] * 5))
    without = evaluate(slos, "baseline", T0, T0 + 5, None)

    assert [(r.name, r.verdict) for r in with_samples] == [("client-availability", "pass"), ("client-latency", "pass")]
    assert [(r.verdict, r.detail) for r in without] == [("no_data", "no client samples were given")] * 2


def test_a_million_samples_are_evaluated_vectorised() -> None:
    n = 1_000_000
    index = np.arange(n)
    samples = pd.DataFrame({
        # completions in (T0, T0 + 100], phases on multiples of 200 rows
        "timestamp": T0 + (index + 1) / 10_000 - (index % 1000 + 1) / 1000.0,
        "name": "/api/v1/chat",
        "method": "POST",
        "status": np.where(index % 200 == 0, 503, 200),
        "latency_ms": (index % 1000 + 1).astype(float),
        "tier": np.where(index % 4 == 0, "premium", "standard"),
        "ok": index % 200 != 0,
        "response_length": 100,
        "error": "",
    })  # fmt: skip
    slos = [_slo("availability"), _slo("latency"), _slo("error_ratio", objective=0.005, comparator="<="),
            _slo("availability", name="premium", tier="premium")]  # fmt: skip

    windows = {"baseline": (T0, T0 + 25), "chaos": (T0 + 25, T0 + 50), "recovery": (T0 + 50, T0 + 100)}
    results = {phase: evaluate_samples(slos, phase, *window, samples) for phase, window in windows.items()}  # type: ignore[arg-type]

    for phase, (availability, p99, errors, premium) in results.items():
        count = 250_000 if phase != "recovery" else 500_000
        assert availability.value == 0.995 and availability.verdict == "pass", phase  # exactly at the objective
        assert availability.detail == f"{count} samples"
        assert p99.value == 990.0 and p99.verdict == "fail"
        assert errors.value == 0.005 and errors.verdict == "pass"
        assert premium.value == 0.98 and premium.detail == f"{count // 4} samples"  # all the 503s, a quarter of the rows


def test_samples_as_the_load_layer_frames_them_with_string_columns_and_text_ok() -> None:
    samples = _samples([200, 200, 503], tiers=["premium", "standard", "premium"])
    samples = samples.astype({"name": "string", "tier": "string"}).assign(ok=["True", "False", "False"])

    (result,) = evaluate_samples([_slo("availability", tier="premium")], "chaos", T0, T0 + 3, samples)

    assert (result.value, result.detail) == (0.5, "2 samples")


def test_samples_load_from_the_load_layers_csv(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    frame = _samples([200, 0, 503], tiers=["premium", "", "standard"])
    frame["ok"] = ["True", "False", "False"]
    frame.to_csv(path, index=False)

    samples = load_samples(path)
    (result,) = evaluate_samples([_slo("availability", tier="premium")], "chaos", T0, T0 + 3, samples)

    assert list(samples.columns) == list(COLUMNS)
    assert samples["ok"].tolist() == [True, False, False]
    assert samples["tier"].tolist() == ["premium", "", "standard"]
    assert (result.value, result.detail) == (1.0, "1 samples")


def test_a_samples_csv_without_a_column_is_a_config_error_naming_file_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    _samples([200]).drop(columns=["latency_ms", "tier"]).to_csv(path, index=False)

    with pytest.raises(ConfigError, match="missing columns latency_ms, tier") as error:
        load_samples(path)

    assert (error.value.file, error.value.field) == (str(path), "columns")


def test_a_missing_samples_csv_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the samples CSV") as error:
        load_samples(tmp_path / "none.csv")

    assert error.value.file == str(tmp_path / "none.csv")


def test_a_request_belongs_to_the_window_it_completed_in() -> None:
    """Started in the baseline, failed by the chaos that began while it was in flight: a chaos sample."""
    samples = _samples([503], start=T0, latencies=[300.0])  # started at T0 + 0.7, completed at T0 + 1
    (baseline,) = evaluate_samples([_slo("availability")], "baseline", T0, T0 + 0.9, samples)
    (chaos,) = evaluate_samples([_slo("availability")], "chaos", T0 + 0.9, T0 + 2, samples)
    assert (baseline.verdict, chaos.verdict, chaos.value) == ("no_data", "fail", 0.0)
