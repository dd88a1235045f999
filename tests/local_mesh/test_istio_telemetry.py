"""Istio's standard metrics on the live local mesh: every label, both reporters, peer metadata, Telemetry honoured.

Followed: Istio's "Istio Standard Metrics" reference (metrics and labels), istio/proxy
`istio_stats.cc` (label sources, "unknown" for missing values, the BlackHoleCluster name, REMOVE and
`disabled` semantics), Kiali's graph query as the issue quotes it, and Envoy 1.40's header_to_metadata,
RBAC and stats access logger.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.mesh.telemetry_api import STANDARD_TAGS
from harness.mesh.topology import GATEWAY_NAME
from tests.local_mesh.meshkit import Mesh
from tests.local_mesh.test_external_and_telemetry import query
from tests.local_mesh.test_security import client_for, mesh_ca

USER_POD = "user-v1-us-east-0"
SPIFFE = "spiffe://cluster.local/ns/parallel-ai/sa/"
KIALI = ('sum(rate(istio_requests_total{reporter="source"}[1m])) by (source_workload, source_workload_namespace, '
         'destination_service_name, destination_workload, response_code)')
KIALI_TCP = ('sum(rate(istio_tcp_sent_bytes_total{reporter="source"}[1m])) by (source_workload, '
             'source_workload_namespace, destination_service_name, destination_workload)')


def _chats(mesh: Mesh, count: int) -> None:
    for i in range(count):
        assert mesh.chat(user=f"u{i}").status_code == 200


def _wait(mesh: Mesh, promql: str, check, timeout_s: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    result = query(mesh, promql)
    while not check(result) and time.monotonic() < deadline:
        time.sleep(0.5)
        result = query(mesh, promql)
    return result


def test_kialis_graph_query_yields_the_real_call_graph(mesh: Mesh) -> None:
    _chats(mesh, 40)
    edges = {(r["metric"]["source_workload"], r["metric"]["destination_service_name"],
              r["metric"]["destination_workload"]) for r in _wait(mesh, KIALI, lambda r: len(r) >= 5)}
    expected = {
        ("istio-ingressgateway", "ai-agent-service", "ai-agent-v1-us-east"),
        ("istio-ingressgateway", "ai-agent-service", "ai-agent-v2-eu-west"),
        ("ai-agent-v1-us-east", "user-service", "user-v1-us-east"),
        ("ai-agent-v1-us-east", "analytics-service", "analytics-v1-us-west"),
        ("ai-agent-v2-eu-west", "user-service", "user-v1-eu-west"),
    }
    assert expected <= edges, edges
    assert all(r["metric"]["source_workload_namespace"] == "parallel-ai" for r in query(mesh, KIALI))
    # The external API's port is HTTPS, passed through as TCP: Kiali draws that edge from its TCP query
    # (outside the mesh: no destination workload, as in Istio). A connection is counted when it closes
    # (the stand-in ends idle ones after 5 s), hence the longer wait.
    wanted = {("ai-agent-v1-us-east", "api.openai.com", "unknown"), ("ai-agent-v2-eu-west", "api.openai.com", "unknown")}

    def edges_of(result: list[dict]) -> set[tuple[str, str, str]]:
        return {(r["metric"]["source_workload"], r["metric"]["destination_service_name"],
                 r["metric"]["destination_workload"]) for r in result}

    external = edges_of(_wait(mesh, KIALI_TCP, lambda r: wanted <= edges_of(r), 30.0))
    assert wanted <= external, external


def test_a_dev_proxy_exports_istios_stats_and_the_profiles_not_every_envoy_stat(mesh: Mesh) -> None:
    """Istio's default stats inclusion plus the dev profile's proxyStatsMatcher (".*_cx_.*", ".*_rq_.*"),
    as istio.io "Envoy Statistics" describes; the rest of Envoy's stats are never created, so neither the
    proxy nor Prometheus holds them. The ejection gauge and the xDS versions are the harness's own reads."""
    _chats(mesh, 3)
    admin = mesh.pod(USER_POD)["sidecar_admin_url"]
    names = {line.partition(": ")[0] for line in mesh.client.get(f"{admin}/stats").text.splitlines()}
    inbound = "cluster.inbound|8080||."
    assert f"{inbound}upstream_rq_total" in names and f"{inbound}upstream_cx_active" in names  # the profile's
    outlier = [name for name in names if ".outlier_detection." in name]
    assert outlier and all(name.endswith(".outlier_detection.ejections_active") for name in outlier)  # the gate's
    assert "cluster_manager.cds.version_text" in names and "server.live" in names  # Istio's prefixes
    assert any(name.startswith("istio.requests_total") for name in names)  # the standard metrics
    assert f"{inbound}membership_healthy" not in names and f"{inbound}lb_healthy_panic" not in names
    assert not [name for name in names if name.startswith("tracing.")]
    # Prometheus' first scrape of a new mesh comes about 5 s after it starts (README Benchmarks): wait for it
    by_name = _wait(mesh, 'count by (__name__) ({job="envoy"})', lambda r: any(
        x["metric"]["__name__"] == "envoy_istio_requests_total" for x in r))
    exported = {r["metric"]["__name__"] for r in by_name}
    assert "envoy_cluster_upstream_rq_total" in exported and "envoy_istio_requests_total" in exported
    assert "envoy_cluster_membership_healthy" not in exported


def test_every_standard_label_is_on_every_request_series_of_both_reporters(mesh: Mesh) -> None:
    _chats(mesh, 5)
    expected = set(STANDARD_TAGS) - {"grpc_response_status"}  # empty for HTTP in Istio too: no label
    for metric in ("istio_requests_total", "istio_request_duration_milliseconds_count",
                   "istio_request_bytes_count", "istio_response_bytes_count"):
        for reporter in ("source", "destination"):
            series = _wait(mesh, f'{metric}{{reporter="{reporter}"}}', bool)
            assert series, f"no {metric} for reporter={reporter}"
            for item in series:
                missing = expected - set(item["metric"])
                assert not missing, f"{metric} {item['metric']} lacks {missing}"


def test_the_destination_side_knows_its_caller_from_the_peer_metadata(mesh: Mesh) -> None:
    _chats(mesh, 5)
    promql = ('sum by (source_workload, source_app, source_version, source_principal, source_canonical_service, '
              'connection_security_policy) (istio_requests_total{reporter="destination",destination_app="user"})')
    callers = {tuple(sorted(r["metric"].items())) for r in _wait(mesh, promql, bool)}
    assert (("connection_security_policy", "mutual_tls"), ("source_app", "ai-agent"),
            ("source_canonical_service", "ai-agent"), ("source_principal", SPIFFE + "ai-agent-service"),
            ("source_version", "v1"), ("source_workload", "ai-agent-v1-us-east")) in callers, callers
    gateway = query(mesh, 'sum by (source_workload, source_app) (istio_requests_total{reporter="destination",'
                          'destination_app="ai-agent"})')
    assert {(r["metric"]["source_workload"], r["metric"]["source_app"]) for r in gateway} == {
        ("istio-ingressgateway", "istio-ingressgateway")}


def test_peer_metadata_claiming_another_identity_than_the_peer_certificate_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    ca = mesh_ca(mesh, tmp_path)
    port = mesh.pod(USER_POD)["inbound_port"]
    with client_for(ca.issue_workload("parallel-ai", "analytics-service"), ca.root_cert_path) as client:
        spoofed = client.get(f"https://127.0.0.1:{port}/health", headers={
            "x-mesh-peer": "ai-agent-v1-us-east|parallel-ai|ai-agent|v1|ai-agent|v1|Kubernetes"})
        # the right workload with one field made up: the whole value is checked
        made_up = client.get(f"https://127.0.0.1:{port}/health", headers={
            "x-mesh-peer": "analytics-v1-us-west|parallel-ai|analytics|v9|analytics|v1|Kubernetes"})
        honest = client.get(f"https://127.0.0.1:{port}/health", headers={
            "x-mesh-peer": "analytics-v1-us-west|parallel-ai|analytics|v1|analytics|v1|Kubernetes"})
        # a made-up value first and the honest one second: the sidecar keeps the first before routing
        doubled = client.get(f"https://127.0.0.1:{port}/health", headers=[
            ("x-mesh-peer", "analytics-v1-us-west|parallel-ai|analytics|v9|analytics|v1|Kubernetes"),
            ("x-mesh-peer", "analytics-v1-us-west|parallel-ai|analytics|v1|analytics|v1|Kubernetes")])
        # the identity header the routes match is the sidecar's own, written from the certificate over this one
        claimed_identity = client.get(f"https://127.0.0.1:{port}/health", headers={
            "x-mesh-peer": "ai-agent-v1-us-east|parallel-ai|ai-agent|v1|ai-agent|v1|Kubernetes",
            "x-mesh-peer-identity": SPIFFE + "ai-agent-service"})
        # an empty first value, which the sidecar cannot reduce to one value, beside an honest one
        empty_first = client.get(f"https://127.0.0.1:{port}/health", headers=[
            ("x-mesh-peer", ""), ("x-mesh-peer", "analytics-v1-us-west|parallel-ai|analytics|v1|analytics|v1|Kubernetes")])
        without = client.get(f"https://127.0.0.1:{port}/health")  # no peer metadata: unknown, not refused
    assert without.status_code == 200, without.text
    refusals = (spoofed, made_up, doubled, claimed_identity, empty_first)
    for refused in refusals:
        assert refused.status_code == 403 and "RBAC" in refused.text, [r.status_code for r in refusals]
    assert honest.status_code != 403, honest.text
    # counted as authorization denials, and their tags carry no claimed value: the caller is unknown
    promql = ('sum by (source_workload, source_app, response_code_details) (istio_requests_total{reporter="destination",'
              f'destination_app="user",response_code="403",source_principal="{SPIFFE}analytics-service"}})')
    denied = _wait(mesh, promql, lambda rows: sum(float(r["value"][1]) for r in rows) >= len(refusals))
    assert {tuple(sorted(r["metric"].items())) for r in denied} == {
        (("response_code_details", "rbac_access_denied"), ("source_app", "unknown"), ("source_workload", "unknown"))}


def test_telemetry_overrides_change_what_the_proxies_emit(clean_mesh: Mesh, tmp_path: Path) -> None:
    mesh = clean_mesh
    telemetry = {
        "apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
        "metadata": {"name": "user-metrics", "namespace": "parallel-ai"},
        "spec": {"selector": {"matchLabels": {"app": "user"}}, "metrics": [{"providers": [{"name": "prometheus"}], "overrides": [
            {"match": {"metric": "REQUEST_COUNT", "mode": "SERVER"},
             "tagOverrides": {"request_host": {"value": "request.host"},
                              "caller_app": {"value": "downstream_peer.app"},
                              "user_tier": {"value": "request.headers['x-missing']"},
                              "destination_version": {"value": "request.headers['x-missing']"},
                              "destination_workload": {"operation": "REMOVE"},
                              "source_principal": {"operation": "REMOVE"}}},
            {"match": {"metric": "REQUEST_SIZE", "mode": "SERVER"}, "disabled": True},
        ]}]},
    }
    path = tmp_path / "telemetry.yaml"
    path.write_text(yaml.safe_dump(telemetry), encoding="utf-8")
    mesh.platform.apply([path])
    _chats(mesh, 10)
    added = _wait(mesh, 'istio_requests_total{reporter="destination",destination_app="user",request_host!=""}', bool)
    assert added, "no series with the added request_host tag"
    for item in added:
        assert item["metric"]["request_host"] == "user-service"  # the Host the caller's app sends
        assert "source_principal" not in item["metric"]  # REMOVE: absent, not "unknown"
        assert item["metric"]["caller_app"] == "ai-agent"  # the peer metadata's field, split by Envoy
        assert item["metric"]["user_tier"] == "unknown"  # no such header: istio_stats.cc writes "unknown"
        # An override of one of the proxy's own labels wins over its constant, even with no value; so does REMOVE
        assert item["metric"]["destination_version"] == "unknown"
        assert "destination_workload" not in item["metric"]
        assert item["metric"]["destination_app"] == "user"  # not overridden: the proxy's own, from mesh_self
    # REQUEST_SIZE disabled on the server side: once the old listener has drained (2 s), user's sidecar
    # has no inbound request-size histogram at all, while it still counts requests.
    admin = mesh.pod(USER_POD)["sidecar_admin_url"]

    def inbound_sizes() -> list[str]:
        _chats(mesh, 2)
        text = mesh.client.get(f"{admin}/stats/prometheus").text
        assert 'envoy_istio_requests_total{reporter="destination"' in text
        return [line for line in text.splitlines()
                if line.startswith("envoy_istio_request_bytes_count") and 'reporter="destination"' in line]

    mesh.wait_for(lambda: not inbound_sizes(), 15, "no inbound istio_request_bytes on user's sidecar")
    assert any(line.startswith("envoy_istio_response_bytes_count") and 'reporter="destination"' in line
               for line in mesh.client.get(f"{admin}/stats/prometheus").text.splitlines())
    client_side = query(mesh, 'istio_requests_total{reporter="source",source_app="ai-agent",request_host!=""}')
    assert not client_side  # mode SERVER only, and only pods with app=user


def test_a_cel_value_the_local_proxies_cannot_emit_is_refused_naming_the_field(clean_mesh: Mesh, tmp_path: Path) -> None:
    telemetry = {
        "apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
        "metadata": {"name": "mixed", "namespace": "parallel-ai"},
        "spec": {"metrics": [{"overrides": [{"tagOverrides": {
            "caller": {"value": "downstream_peer.app + '-' + request.method"}}}]}]},
    }
    path = tmp_path / "telemetry.yaml"
    path.write_text(yaml.safe_dump(telemetry), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        clean_mesh.platform.apply([path])
    assert caught.value.field == "spec.metrics[0].overrides[0].tagOverrides.caller.value"
    assert not query(clean_mesh, 'istio_requests_total{caller!=""}')


def test_the_telemetry_lag_is_measured_past_a_telemetry_change_that_restarted_the_counters(
        clean_mesh: Mesh, tmp_path: Path) -> None:
    """Replacing the shipped `custom-metrics` by one without its CLIENT override of source_app: the
    gateway's and sidecars' outbound counters get new Envoy stat names (the label now comes from
    `mesh_self`), for the same Prometheus series. Envoy keeps a stat across a listener update only
    under the same name (its stats allocator is keyed by name); the old one lives until the old filter
    chain has drained (--drain-time-s). The platform records the push, and a run's lag probe right
    after it still counts every probe on the gateway: it waits until no sample of the old counter is
    in the range it matches."""
    from harness.run.evaluation import measure_lag
    from harness.slo.lag import quiet_after

    mesh = clean_mesh
    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "harness/mesh/manifests/istio/telemetry.yaml")
                             .read_text(encoding="utf-8"))
    metrics = shipped["spec"]["metrics"][0]
    metrics["overrides"] = [o for o in metrics["overrides"] if o["match"].get("mode") != "CLIENT"]
    path = tmp_path / "telemetry.yaml"
    path.write_text(yaml.safe_dump(shipped), encoding="utf-8")
    before = time.time()
    mesh.platform.apply([path])
    [record] = [r for r in mesh.platform.status()["stats_redefinitions"] if r["at"] >= before]
    assert GATEWAY_NAME in record["proxies"] and record["reason"] == "apply"
    lag = measure_lag(mesh.platform, time.monotonic() + 60)
    pipeline = mesh.platform.telemetry_pipeline()
    assert lag.measured_at > quiet_after(record, pipeline) + 2 * pipeline.period_s + 1.0
    assert any("redefined" in note for note in lag.notes)
    gateway = [key for key in lag.by_proxy if key.startswith("source ") and key.endswith("(counter)")]
    assert gateway and len(lag.by_proxy[gateway[0]]) >= 4  # every probe (at least MIN_PROBES) timed
