"""A Telemetry that removes a label or disables a metric the run's SLO queries select on is refused
before anything starts (exit 2), naming the Telemetry's file and field and the SLO that needs it.

Istio's Telemetry API: `tagOverrides.<tag>.operation: REMOVE` drops the label and `disabled: true`
drops the metric on the proxies the resource applies to, merged root namespace -> namespace ->
workload (https://istio.io/latest/docs/reference/config/telemetry/#MetricsOverrides,
https://istio.io/latest/docs/tasks/observability/metrics/customize-metrics/). Without response_code,
availability's `response_code=~"5.."` matches no series and `or vector(0)` reads 1.0 whatever happens;
the lag probe's `response_code="405"` never counts its requests (the old "no gateway series yet", exit 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.mesh.loader import declared_model, declared_topology, merge_documents
from harness.platforms.fake import FakePlatform
from harness.run.mesh_telemetry import check_live_telemetry
from harness.run.runner import prepare
from harness.slo.loader import load_slo_file
from harness.slo.model import DEFAULT_SLO_FILE
from harness.slo.telemetry_needs import check_telemetry_needs, lag_probe_needs, slo_needs

ROOT = Path(__file__).resolve().parents[2]


def telemetry(name: str, override: dict[str, Any], *, namespace: str = "parallel-ai",
              selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"metrics": [{"providers": [{"name": "prometheus"}], "overrides": [override]}]}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return {"apiVersion": "telemetry.istio.io/v1alpha1", "kind": "Telemetry",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


REMOVE_RESPONSE_CODE = {"match": {"metric": "REQUEST_COUNT"},
                        "tagOverrides": {"response_code": {"operation": "REMOVE"}}}
DISABLE_REQUEST_COUNT = {"match": {"metric": "REQUEST_COUNT"}, "disabled": True}


def check(*documents: tuple[dict[str, Any], str]) -> None:
    """The default SLOs and the lag probe against the shipped mesh with `documents` applied over it."""
    needs = [need for slo in load_slo_file(DEFAULT_SLO_FILE) for need in slo_needs(slo)] + lag_probe_needs()
    mesh = merge_documents(declared_model(validate=False).documents, documents)
    check_telemetry_needs(needs, mesh, declared_topology(validate=False))


def test_the_shipped_mesh_keeps_everything_the_default_slos_and_the_lag_probe_read() -> None:
    check()


def test_a_telemetry_removing_response_code_names_its_file_field_and_the_slo() -> None:
    replaced = telemetry("custom-metrics", REMOVE_RESPONSE_CODE)  # replaces the shipped one by name
    with pytest.raises(ConfigError) as raised:
        check((replaced, "no-response-code.yaml"))
    error = raised.value
    assert error.file == "no-response-code.yaml"
    assert error.field == "spec.metrics[0].overrides[0].tagOverrides.response_code"
    assert "removes the label response_code from istio_requests_total" in str(error)
    assert "SLO 'ai-agent-availability'" in str(error) and 'response_code=~"5.."' in str(error)


def test_a_disabled_request_count_names_the_disabled_field() -> None:
    with pytest.raises(ConfigError) as raised:
        check((telemetry("custom-metrics", DISABLE_REQUEST_COUNT), "off.yaml"))
    assert raised.value.field == "spec.metrics[0].overrides[0].disabled"
    assert "disables istio_requests_total" in str(raised.value)


def test_a_root_namespace_remove_that_the_namespace_telemetry_sets_again_is_fine() -> None:
    """Istio merges root namespace first, then the namespace's: the shipped custom-metrics UPSERTs
    response_code for ALL_METRICS, so a mesh-wide REMOVE does not reach parallel-ai's proxies."""
    check((telemetry("mesh-default", REMOVE_RESPONSE_CODE, namespace="istio-system"), "mesh.yaml"))


def test_a_workload_telemetry_removing_a_label_no_query_reads_there_is_fine() -> None:
    """user's sidecars report user-service as destination; the default SLOs read reporter=source."""
    server_only = {**REMOVE_RESPONSE_CODE, "match": {"metric": "REQUEST_COUNT", "mode": "SERVER"}}
    check((telemetry("user-server", server_only, selector={"app": "user"}), "user.yaml"))


def test_a_workload_telemetry_on_ai_agent_names_the_slos_of_its_calls() -> None:
    with pytest.raises(ConfigError) as raised:
        check((telemetry("ai-agent-only", REMOVE_RESPONSE_CODE, selector={"app": "ai-agent"}), "ai.yaml"))
    assert "SLO 'user-availability'" in str(raised.value) and "ai-agent-v1-us-east-0" in str(raised.value)


def test_a_telemetry_applied_to_the_running_mesh_is_checked_before_the_run(tmp_path: Path) -> None:
    platform = FakePlatform()
    platform.apply_documents([telemetry("custom-metrics", REMOVE_RESPONSE_CODE)])
    _, settings = prepare(ROOT / "experiments" / "pod-kill.yaml")
    with pytest.raises(ConfigError) as raised:
        check_live_telemetry(settings, load_slo_file(DEFAULT_SLO_FILE), platform)
    assert raised.value.file == "Telemetry parallel-ai/custom-metrics as applied to the running mesh (harness apply)"
    assert raised.value.field == "spec.metrics[0].overrides[0].tagOverrides.response_code"
    assert "`harness reset` restores the declared one" in str(raised.value)


def test_a_disabled_latency_metric_says_what_a_latency_slo_loses() -> None:
    disabled = {"match": {"metric": "REQUEST_DURATION"}, "disabled": True}
    with pytest.raises(ConfigError) as raised:
        check((telemetry("custom-metrics", disabled), "no-duration.yaml"))
    assert "disables istio_request_duration_milliseconds" in str(raised.value)
    assert "a latency SLO would have no data" in str(raised.value) and "availability" not in str(raised.value)
    assert "harness reset" not in str(raised.value)  # a file of the user's, not the running mesh's


def test_harness_run_on_such_a_mesh_exits_2_before_the_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    platform = FakePlatform()
    platform.apply_documents([telemetry("custom-metrics", REMOVE_RESPONSE_CODE)])
    monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: platform)
    run_dir = tmp_path / "run"
    code = main(["run", str(ROOT / "experiments" / "pod-kill.yaml"), "--report-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "spec.metrics[0].overrides[0].tagOverrides.response_code" in err and "ai-agent-availability" in err
    assert not run_dir.exists(), "nothing started: no load, no journal"
    assert not [c for c in platform.calls if c[0] in ("kill", "hold")]


def test_harness_validate_checks_the_declared_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped telemetry.yaml edited to REMOVE response_code: refused by `harness validate` (prepare)."""
    from harness.mesh.loader import build_model

    edited = merge_documents(declared_model(validate=False).documents,
                             [(telemetry("custom-metrics", REMOVE_RESPONSE_CODE), "istio/telemetry.yaml")])
    monkeypatch.setattr("harness.run.mesh_telemetry.declared_model", lambda **_: build_model(edited))
    with pytest.raises(ConfigError) as raised:
        prepare(ROOT / "experiments" / "pod-kill.yaml")
    assert (raised.value.file, raised.value.field) == (
        "istio/telemetry.yaml", "spec.metrics[0].overrides[0].tagOverrides.response_code")


def test_a_workload_telemetry_that_sets_the_label_again_keeps_its_proxies_out_of_the_refusal() -> None:
    """Istio merges the namespace's Telemetry, then the workload's: ai-agent's sidecars UPSERT
    response_code again, so only the other proxies (the gateway, analytics) are named."""
    namespace_remove = telemetry("custom-metrics", REMOVE_RESPONSE_CODE)
    ai_agent_again = telemetry("ai-agent-codes", {"match": {"metric": "REQUEST_COUNT"}, "tagOverrides": {
        "response_code": {"value": "string(response.code)"}}}, selector={"app": "ai-agent"})
    with pytest.raises(ConfigError) as raised:
        check((namespace_remove, "ns.yaml"), (ai_agent_again, "ai.yaml"))
    message = str(raised.value)
    assert raised.value.file == "ns.yaml" and "istio-ingressgateway-0" in message
    assert "ai-agent-v1-us-east-0" not in message and "reporter=destination" not in message


def test_a_second_namespace_wide_telemetry_on_the_running_mesh_is_refused() -> None:
    """Istio applies only the oldest selector-less Telemetry of a namespace (a kind cluster set up
    before the shipped ones were merged still has two): the run cannot know which one the SLOs read."""
    platform = FakePlatform()
    second = telemetry("tracing-config", {"match": {"metric": "REQUEST_COUNT"}})
    platform.apply_documents([second])
    _, settings = prepare(ROOT / "experiments" / "pod-kill.yaml")
    with pytest.raises(ConfigError, match="harness reset") as raised:
        check_live_telemetry(settings, load_slo_file(DEFAULT_SLO_FILE), platform)
    assert raised.value.field == "spec.selector"


def test_a_server_side_remove_on_ai_agent_leaves_the_lag_probe_its_gateway_series() -> None:
    """The lag probe must count its probes on the gateway; the ai-agent sidecars' own 405 series are
    optional (harness/slo/lag.py _match leaves out a sidecar that never counts its probes), and the
    default SLOs read reporter="source". So a SERVER-side REMOVE on ai-agent is no reason to refuse."""
    server_only = {**REMOVE_RESPONSE_CODE, "match": {"metric": "REQUEST_COUNT", "mode": "SERVER"}}
    check((telemetry("ai-agent-server", server_only, selector={"app": "ai-agent"}), "ai-server.yaml"))
    assert {need.reporter for need in lag_probe_needs()} == {"source"}
