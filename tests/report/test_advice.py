"""Specifications of "what to fix": each breached SLO, the fault it broke during, and the mesh setting behind it.

The mesh is the shipped one (harness/mesh/manifests): ai-agent-routing's premium route has retries
(without reset) and a 60 s timeout, its canary and default routes neither; user-service has no
VirtualService; outlier detection checks every 30 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.report import Fix, analyse, read_run, what_to_fix, write_reports
from tests.report.reportkit import FAILING, PASSING, SLOW, RunFactory, journal_of


def _fixes(directory: Path) -> list[Fix]:
    return what_to_fix(read_run(directory))


def _by_field(fixes: list[Fix]) -> dict[tuple[str, str], Fix]:
    return {(f.resource, f.field): f for f in fixes}


def _breach(results: list[dict[str, Any]], name: str, phase: str, value: float) -> list[dict[str, Any]]:
    return [dict(r, verdict="fail", value=value) if (r["name"], r["phase"]) == (name, phase) else r for r in results]


def _fault(kind: str, target: str, start: float, end: float | None, **details: Any) -> dict[str, Any]:
    return {"kind": kind, "target": target, "details": details, "requested_at": start - 0.01, "applied_at": start,
            "reverted_requested_at": end, "reverted_at": end, "inject_latency_ms": 10.0, "revert_latency_ms": 5.0}


def _chaos(name: str) -> tuple[float, float]:
    phases = journal_of(name)["harness"]["phases"]
    return phases["chaos"]["start"], phases["chaos"]["end"]


def test_a_passing_run_has_nothing_to_fix(run_dir: RunFactory) -> None:
    assert _fixes(run_dir(PASSING)) == []


def test_an_abort_on_user_points_at_the_missing_retries_for_user_service(run_dir: RunFactory) -> None:
    (fix,) = _fixes(run_dir(FAILING))

    assert (fix.resource, fix.field) == ("VirtualService (none for user-service)", "spec.http[].retries")
    assert fix.faults == ("abort 503 50% user-service",)
    assert fix.slos == ("ai-agent-availability in chaos (0.572 against >= 0.995)",
                        "client-availability in chaos (0.5893 against >= 0.995)")
    assert "source-side Istio fault" in fix.text and "istio#13705" in fix.text
    assert "give that call a fallback in ai-agent-service" in fix.text


def test_a_delay_breaking_p99_points_at_route_timeouts(run_dir: RunFactory) -> None:
    fixes = _by_field(_fixes(run_dir(SLOW)))

    premium = fixes[("VirtualService/ai-agent-routing", "spec.http[0].timeout")]
    assert "timeout 60s, above the SLO's 500 ms" in premium.text
    assert premium.file == "harness/mesh/manifests/istio/virtual-services.yaml"
    default = fixes[("VirtualService/ai-agent-routing", "spec.http[2].timeout")]
    assert "spec.http[2] (default -> v1 90%, v2 10%) declares no timeout" in default.text
    user = fixes[("VirtualService (none for user-service)", "spec.http[].timeout")]
    assert "wait out the 1500 ms delay" in user.text and user.faults == ("delay 1500 ms user-service",)


def test_a_breach_in_recovery_after_the_fault_is_matched_to_that_fault(run_dir: RunFactory) -> None:
    fixes = _by_field(_fixes(run_dir(SLOW)))

    slos = fixes[("VirtualService (none for user-service)", "spec.http[].timeout")].slos
    assert slos == ("ai-agent-latency-p99 in chaos (1490 against <= 500)",
                    "ai-agent-latency-p99 in recovery (1442 against <= 500), after the fault was reverted")


def test_whole_pod_kills_point_at_retries_without_reset_and_slow_outlier_detection(run_dir: RunFactory) -> None:
    journal = journal_of(PASSING)
    for fault in journal["harness"]["chaos"]["faults"]:
        fault["details"]["app_only"] = False
    results = _breach(journal["harness"]["slo_results"], "client-availability", "chaos", 0.97)
    directory = run_dir(PASSING, slo_results=results, chaos=journal["harness"]["chaos"], exit_code=1)

    fixes = _by_field(_fixes(directory))

    retry_on = fixes[("VirtualService/ai-agent-routing", "spec.http[0].retries.retryOn")]
    assert "retries only on 5xx,gateway-error,connect-failure,refused-stream: add reset" in retry_on.text
    default = fixes[("VirtualService/ai-agent-routing", "spec.http[2].retries")]
    assert "declares no retries" in default.text and "does not retry a connection reset" in default.text
    assert set(default.faults) == {"kill ai-agent-v1-us-west-0", "kill ai-agent-v1-us-east-0"}
    outlier = fixes[("DestinationRule/ai-agent-destination", "spec.trafficPolicy.outlierDetection")]
    assert "consecutive5xxErrors 5" in outlier.text and "interval 30s" in outlier.text
    assert "ejected too late" in outlier.text


def test_a_tier_slo_looks_only_at_the_route_that_tier_takes(run_dir: RunFactory) -> None:
    journal = journal_of(PASSING)
    chaos_start, chaos_end = _chaos(PASSING)
    results = [{"name": "premium-availability", "phase": "chaos", "value": 0.9, "objective": 0.995,
                "comparator": ">=", "verdict": "fail", "window_start": chaos_start, "window_end": chaos_end,
                "source": "client", "detail": "80 samples",
                "query": "client samples: share of samples with ok and 0 < status < 500 where tier=premium"}]
    directory = run_dir(PASSING, slo_results=results, chaos=journal["harness"]["chaos"], exit_code=1)

    fixes = _fixes(directory)

    assert not [f for f in fixes if f.resource == "VirtualService/ai-agent-routing"], \
        "the premium route retries on 5xx, which an app-only kill returns; the other routes are not premium's"
    budget, outlier = fixes  # the seed's maxRetries: 3 caps the retries the premium route makes
    assert (budget.resource, budget.field) == ("DestinationRule/ai-agent-destination",
                                               "spec.trafficPolicy.connectionPool.http.maxRetries")
    assert (outlier.resource, outlier.field) == ("DestinationRule/ai-agent-destination",
                                                 "spec.trafficPolicy.outlierDetection")
    assert outlier.faults == ("kill ai-agent-v1-us-west-0", "kill ai-agent-v1-us-east-0"), "one fix for the kills"


def test_pod_kills_breaking_availability_name_the_seeds_max_retries(run_dir: RunFactory) -> None:
    """Istio's DestinationRule reference, ConnectionPoolSettings.HTTPSettings.maxRetries: the retries
    outstanding to all hosts of a cluster at once (Envoy's circuit breaker max_retries); unset, Istio
    allows 2^32-1. The seed declares 3 on ai-agent-destination."""
    journal = journal_of(PASSING)
    chaos_start, chaos_end = _chaos(PASSING)
    results = [{"name": "ai-agent-availability", "phase": "chaos", "value": 0.98, "objective": 0.99,
                "comparator": ">=", "verdict": "fail", "window_start": chaos_start, "window_end": chaos_end,
                "source": "mesh", "detail": "", "query": "sum(rate(istio_requests_total{destination_service_name="
                                                         "\"ai-agent-service\"}[10s]))"}]
    directory = run_dir(PASSING, slo_results=results, chaos=journal["harness"]["chaos"], exit_code=1)

    fixes = {f.field: f for f in _fixes(directory)}

    budget = fixes["spec.trafficPolicy.connectionPool.http.maxRetries"]
    assert budget.resource == "DestinationRule/ai-agent-destination"
    assert "maxRetries 3" in budget.text and "upstream_rq_retry_overflow" in budget.text


def test_a_breach_no_declared_setting_explains_is_still_listed(run_dir: RunFactory) -> None:
    start, end = _chaos(FAILING)
    directory = run_dir(FAILING, chaos={"faults": [_fault("region", "ap-south", start + 0.5, end - 0.5)],
                                        "pod_kills": []})

    fixes = _fixes(directory)

    assert [(f.resource, f.field) for f in fixes] == [("(no mesh setting found)", "ai-agent-availability"),
                                                      ("(no mesh setting found)", "client-availability")]
    assert fixes[0].faults == ("region ap-south down",) and len(fixes[0].slos) == 1


def test_a_region_failure_with_no_target_points_at_the_subset_and_the_failover_chain(run_dir: RunFactory) -> None:
    start, end = _chaos(FAILING)
    chaos = {"faults": [_fault("region", "us-east", start + 0.5, end - 0.5, pods=[]),
                        _fault("region", "us-west", start + 0.5, end - 0.5, pods=[])], "pod_kills": []}
    directory = run_dir(FAILING, chaos=chaos)

    fixes = _by_field(_fixes(directory))

    subset = fixes[("VirtualService/ai-agent-routing", "spec.http[2].route[0]")]
    assert "sends 90% to subset v1, whose pods all run in us-east, us-west, which failed" in subset.text
    assert set(subset.faults) == {"region us-east down", "region us-west down"}
    analytics = fixes[("DestinationRule/connection-pool-settings",
                       "spec.trafficPolicy.loadBalancer.localityLbSetting.failover")]
    assert "every region with analytics-service pods" in analytics.text


def test_a_region_failure_losing_requests_names_the_pool_of_the_hosts_left_in_other_regions(run_dir: RunFactory) -> None:
    """With us-east down, user-service's one host left (eu-west) takes all its calls through the same
    per-host limits (Istio ConnectionPoolSettings.HTTPSettings; Envoy's max_pending_requests circuit
    breaker answers 503 past it). cluster-failover on the seed's pools at 30 requests/s broke
    availability after the failover this way, while the same run on connection-pool-for-load.yaml held
    (bench/results/experiment_loads.json). A service with no host left (v1 in the no-target case) gets no
    pool advice: there is nothing to size."""
    start, end = _chaos(FAILING)
    directory = run_dir(FAILING, chaos={"faults": [_fault("region", "us-east", start + 0.5, end - 0.5, pods=[])],
                                        "pod_kills": []})

    fixes = _by_field(_fixes(directory))

    user = fixes[("DestinationRule/failover-config", "spec.trafficPolicy.connectionPool.http")]
    assert "with us-east down, user-service's hosts in eu-west take all its traffic" in user.text
    assert "http1MaxPendingRequests 10" in user.text and "maxRequestsPerConnection 2" in user.text
    assert "upstream_rq_pending_overflow" in user.text and user.faults == ("region us-east down",)
    assert "ai-agent-availability in chaos (0.572 against >= 0.995)" in user.slos
    ai_agent = fixes[("DestinationRule/ai-agent-destination", "spec.trafficPolicy.connectionPool.http")]
    assert "hosts in eu-west, us-west take all its traffic" in ai_agent.text


def test_a_region_failure_without_a_failover_entry_names_the_missing_entry(run_dir: RunFactory, tmp_path: Path) -> None:
    from harness.mesh.loader import declared_model
    from harness.mesh.schema import default_manifest_paths
    from harness.report import MeshView

    rules = tmp_path / "destination-rules.yaml"
    shipped = Path("harness/mesh/manifests/istio/destination-rules.yaml").read_text()
    rules.write_text(shipped.replace("        - from: us-east\n          to: us-west\n", "", 1))
    paths = [p if p.name != "destination-rules.yaml" else rules for p in default_manifest_paths()]
    start, end = _chaos(FAILING)
    directory = run_dir(FAILING, chaos={"faults": [_fault("region", "us-east", start + 0.5, end - 0.5)],
                                        "pod_kills": []})

    fixes = _by_field(what_to_fix(read_run(directory), MeshView(declared_model(paths))))

    failover = "spec.trafficPolicy.loadBalancer.localityLbSetting.failover"
    missing = fixes[("DestinationRule/ai-agent-destination", failover)]
    assert "no failover entry from us-east for ai-agent-service: add {from: us-east, to: eu-west}" in missing.text
    assert missing.file == str(rules)


def test_scaling_down_points_at_the_connection_pool(run_dir: RunFactory) -> None:
    start, end = _chaos(FAILING)
    directory = run_dir(FAILING, chaos={"faults": [_fault("scale", "user-service", start + 0.5, end - 0.5,
                                                          replicas=1, version=None, held=["user-v1-eu-west-0"])],
                                        "pod_kills": []})

    (fix,) = _fixes(directory)

    assert (fix.resource, fix.field) == ("DestinationRule/failover-config", "spec.trafficPolicy.connectionPool")
    assert "tcp.maxConnections 50 and http.http1MaxPendingRequests 10" in fix.text


def test_a_breach_with_no_fault_points_at_capacity(run_dir: RunFactory) -> None:
    results = _breach(journal_of(PASSING)["harness"]["slo_results"], "ai-agent-latency-p99", "baseline", 900.0)

    (fix,) = _fixes(run_dir(PASSING, slo_results=results, exit_code=1))

    assert (fix.resource, fix.field) == ("DestinationRule/ai-agent-destination", "spec.trafficPolicy.connectionPool")
    assert fix.faults == () and fix.text.startswith("breached with no fault in effect")


def test_chats_lost_with_no_fault_name_the_connection_pools_of_the_services_ai_agent_calls(run_dir: RunFactory) -> None:
    """Istio's DestinationRule reference, ConnectionPoolSettings.HTTPSettings: http1MaxPendingRequests caps
    the requests waiting for a connection to a host (Envoy's circuit breaker max_pending_requests: past it
    the caller's sidecar answers 503, upstream_rq_pending_overflow) and maxRequestsPerConnection closes a
    connection after that many; Istio leaves both unlimited when unset. At 30 requests/s the seed's 10 and
    2 on user-service (failover-config) and analytics (connection-pool-settings) overflowed in ai-agent's
    sidecars in the baseline, and ai-agent answered those chats 502 (bench/results/experiment_loads.json)."""
    results = _breach(journal_of(PASSING)["harness"]["slo_results"], "ai-agent-availability", "baseline", 0.87)

    fixes = _by_field(_fixes(run_dir(PASSING, slo_results=results, exit_code=1)))

    user = fixes[("DestinationRule/failover-config", "spec.trafficPolicy.connectionPool.http")]
    analytics = fixes[("DestinationRule/connection-pool-settings", "spec.trafficPolicy.connectionPool.http")]
    assert "ai-agent-service calls user-service for each request" in user.text
    assert "ai-agent-service calls analytics-service for each request" in analytics.text
    for fix in (user, analytics):
        assert "http1MaxPendingRequests 10 requests waiting" in fix.text and "maxRequestsPerConnection 2" in fix.text
        assert "upstream_rq_pending_overflow" in fix.text and "connection-pool-for-load.yaml" in fix.text
        assert fix.faults == () and fix.slos == ("ai-agent-availability in baseline (0.87 against >= 0.995)",)
        assert fix.file == "harness/mesh/manifests/istio/destination-rules.yaml"


def test_a_leaf_service_losing_requests_with_no_fault_is_pointed_only_at_its_own_pool(run_dir: RunFactory) -> None:
    """The seed gives every app the same *_SERVICE_HOST variables, so only the ingress service's calls are
    known from the manifests: user-service's breach names user-service's rule, not analytics'."""
    results = _breach(journal_of(PASSING)["harness"]["slo_results"], "user-availability", "baseline", 0.96)

    fixes = _fixes(run_dir(PASSING, slo_results=results, exit_code=1))

    assert [(f.resource, f.field) for f in fixes] == [("DestinationRule/failover-config",
                                                       "spec.trafficPolicy.connectionPool")]


def test_a_baseline_breach_is_not_matched_to_the_first_fault_though_its_samples_reach_into_the_chaos(
        run_dir: RunFactory) -> None:
    """A mesh SLO's window is in Prometheus' sample time, later than its requests by the telemetry lag
    (about 1.5 to 2.5 s here), so the baseline's reaches into the chaos phase; fault times are request
    times, so a breach is matched with its phase's requests: a baseline breach had no fault in effect."""
    lag = 2.5
    shifted = [dict(r, window_start=r["window_start"] + lag, window_end=r["window_end"] + lag)
               if r["source"] == "mesh" else r for r in journal_of(PASSING)["harness"]["slo_results"]]
    results = _breach(shifted, "ai-agent-availability", "baseline", 0.9)

    fixes = _fixes(run_dir(PASSING, slo_results=results, exit_code=1))

    assert fixes and all(f.faults == () for f in fixes), [(f.resource, f.faults) for f in fixes]
    assert fixes[0].text.startswith("breached with no fault in effect")


def test_a_breach_in_recovery_after_a_kill_points_at_the_base_ejection_time(run_dir: RunFactory) -> None:
    results = _breach(journal_of(PASSING)["harness"]["slo_results"], "ai-agent-availability", "recovery", 0.98)

    fixes = _by_field(_fixes(run_dir(PASSING, slo_results=results, exit_code=1)))

    ejection = fixes[("DestinationRule/ai-agent-destination", "spec.trafficPolicy.outlierDetection.baseEjectionTime")]
    assert "baseEjectionTime 30s" in ejection.text and "beyond the 5s recovery window" in ejection.text
    assert ejection.slos == ("ai-agent-availability in recovery (0.98 against >= 0.995), after the fault was reverted",)


def test_an_unreadable_mesh_config_leaves_a_note_instead_of_fixes(run_dir: RunFactory, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "broken.yaml").write_text("kind: VirtualService\nmetadata: {name: x}\nspec: {http: 3}\n")
    monkeypatch.setenv("HARNESS_MANIFESTS_DIR", str(manifests))
    directory = run_dir(FAILING)

    analysis = analyse(directory)
    write_reports(directory)

    assert analysis.fixes == () and analysis.fix_note.startswith("the mesh configuration could not be read")
    assert "broken.yaml" in analysis.fix_note
    assert "the mesh configuration could not be read" in (directory / "summary.md").read_text()
