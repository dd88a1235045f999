"""Specifications of the local Prometheus: config, targets, recording rules, and a real scrape of Envoy."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import yaml

from harness.errors import ConfigError, MissingDependencyError
from harness.mesh.translate.stats import (
    ISTIO_CLUSTER_NAME_REGEX,
    envoy_stats_bootstrap,
    envoy_stats_config,
)
from harness.mesh.loader import declared_model
from harness.mesh.translate.model import CertPaths, MeshState, ProxyNode, TraceCollector
from harness.mesh.translate.telemetry import (
    cluster_metadata,
    pod_metadata,
    request_stats_for,
    self_value,
)
from harness.net import free_port
from harness.platforms.local.prometheus import (
    RECORDING_RULES,
    ScrapeTarget,
    find_binaries,
    prometheus_argv,
    render_config,
    targets_file,
    write_targets,
)

RULE_TESTS = Path(__file__).with_name("data") / "recording-rules.test.yaml"
USER_V1 = "outbound|8080|v1|user-service.parallel-ai.svc.cluster.local"


def _labels(pod: str, app: str, service: str, *, proxy_kind: str | None = "sidecar") -> dict[str, str]:
    labels = {
        "pod": pod,
        "app": app,
        "version": "v1",
        "region": "us-east",
        "service": service,
        "namespace": "parallel-ai",
    }
    if proxy_kind is not None:  # an Envoy: its own side of Istio's labels too (translate/telemetry.self_value)
        labels["proxy_kind"] = proxy_kind
        labels["mesh_self"] = self_value(STATE, _node(pod)) if pod in {p.name for p in MODEL.topology.pods} else "x"
    return labels


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    _, promtool = find_binaries()
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=30, check=False)


def test_envoy_stats_config_is_the_one_in_the_architecture_doc() -> None:
    assert envoy_stats_config() == {
        "use_all_default_tags": True,
        "stats_tags": [{"tag_name": "cluster_name", "regex": r"^cluster\.((.+?(\..+?\.svc\.cluster\.local)?)\.)"}],
    }
    assert envoy_stats_bootstrap()["stats_flush_interval"] == "1s"


def test_external_hosts_are_matched_whole_before_istios_regex() -> None:
    (tag,) = envoy_stats_config(external_hosts=["api.openai.com"])["stats_tags"]  # type: ignore[misc]

    assert tag["regex"] == (
        r"^cluster\.((outbound\|[0-9]+\|[^|]*\|(?:api\.openai\.com)|.+?(\..+?\.svc\.cluster\.local)?)\.)"
    )
    assert ISTIO_CLUSTER_NAME_REGEX[len(r"^cluster\.((") :] in tag["regex"]


def test_rendered_config_passes_promtool_check_config(tmp_path: Path) -> None:
    sidecar = ScrapeTarget("127.0.0.1:15000", "envoy", _labels("user-v1-us-east-0", "user", "user-service"))
    write_targets(tmp_path / "targets", [sidecar])
    config = tmp_path / "prometheus.yml"
    config.write_text(render_config(targets_dir=tmp_path / "targets", rules_path=RECORDING_RULES))

    result = _promtool("check", "config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rendered_config_scrapes_envoy_and_apps_every_second_from_file_sd(tmp_path: Path) -> None:
    config = yaml.safe_load(render_config(targets_dir=tmp_path, rules_path=RECORDING_RULES))

    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "1s"
    assert config["rule_files"] == [str(RECORDING_RULES)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert jobs["apps"]["metrics_path"] == "/metrics"
    assert jobs["envoy"]["file_sd_configs"][0]["files"] == [str(tmp_path / "envoy.json")]


def test_a_scrape_interval_out_of_range_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scrape_interval_s"):
        render_config(targets_dir=tmp_path, rules_path=RECORDING_RULES, scrape_interval_s=0)


def test_recording_rules_pass_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(RECORDING_RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout  # 10 HTTP series + 4 TCP counters


def test_the_recording_rules_file_is_what_its_generator_renders() -> None:
    from harness.platforms.local.recording_rules import render

    assert RECORDING_RULES.read_text(encoding="utf-8") == render(), "run python -m harness.platforms.local.recording_rules"


def test_recording_rules_pass_their_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr


def test_write_targets_writes_one_file_sd_file_per_job(tmp_path: Path) -> None:
    sidecar = ScrapeTarget("127.0.0.1:15000", "envoy", _labels("user-v1-us-east-0", "user", "user-service"))

    write_targets(tmp_path, [sidecar])

    assert json.loads(targets_file(tmp_path, "envoy").read_text()) == [
        {"targets": ["127.0.0.1:15000"], "labels": dict(sorted(sidecar.labels.items()))}
    ]
    assert json.loads(targets_file(tmp_path, "apps").read_text()) == []  # so removed apps are dropped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apps.json", "envoy.json"]  # no temp files left


def test_scrape_target_requires_the_architecture_labels_for_its_job() -> None:
    with pytest.raises(ConfigError, match=r"missing \['mesh_self', 'proxy_kind'\]"):
        ScrapeTarget("127.0.0.1:15000", "envoy", _labels("p", "user", "user-service", proxy_kind=None))
    with pytest.raises(ConfigError, match=r"unexpected \['mesh_self', 'proxy_kind'\]"):
        ScrapeTarget("127.0.0.1:8080", "apps", _labels("p", "user", "user-service"))
    with pytest.raises(ConfigError, match="127.0.0.1:<port>"):
        ScrapeTarget("0.0.0.0:8080", "apps", _labels("p", "user", "user-service", proxy_kind=None))


def test_prometheus_listens_on_loopback_only_without_lifecycle_or_admin_api(tmp_path: Path) -> None:
    """Any local process could otherwise POST /-/quit or delete series (README Security)."""
    argv = prometheus_argv(binary="prometheus", config_path=tmp_path / "p.yml", data_dir=tmp_path / "d", port=9999)

    assert "--web.listen-address=127.0.0.1:9999" in argv
    assert not [arg for arg in argv if arg.startswith(("--web.enable-lifecycle", "--web.enable-admin-api"))]
    assert any(arg.startswith("--storage.tsdb.retention.time=") for arg in argv)


def test_missing_prometheus_names_the_binary_and_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(MissingDependencyError) as error:
        find_binaries()

    assert "prometheus not found" in str(error.value)
    assert "apt-get install prometheus" in str(error.value)


# --- end to end: two real Envoys, a real Prometheus, Istio's series out of the recording rules ------

RBAC_DENY_ON_X_DENY = {
    "name": "envoy.filters.http.rbac",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {
            "action": "ALLOW",
            "policies": {
                "all-but-x-deny": {
                    "permissions": [{"any": True}],
                    "principals": [{"not_id": {"header": {"name": "x-deny", "present_match": True}}}],
                }
            },
        },
    },
}


def _sidecar(b: Any, listener: str, hcm: dict[str, Any], clusters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        **envoy_stats_bootstrap(external_hosts=["api.openai.com"]),
        "admin": {"address": b.socket_address(0)},
        "static_resources": {
            "listeners": [
                {"name": listener, "address": b.socket_address(0), "filter_chains": [{"filters": [hcm]}]}
            ],
            "clusters": clusters,
        },
    }


MODEL = declared_model()
STATE = MeshState(istio=MODEL.istio, topology=MODEL.topology, endpoints={},
                  trace_collector=TraceCollector("127.0.0.1", 4318))


def _node(pod: str) -> ProxyNode:
    found = MODEL.topology.pod(pod)
    nowhere = Path("/nonexistent")
    return ProxyNode(name=found.name, kind="sidecar", namespace=found.namespace, labels=found.labels,
                     region=found.region, service_account=found.service_account,
                     certs=CertPaths(nowhere, nowhere, nowhere), xds_dir=nowhere, admin_port=0)


def _with_metadata(cluster: dict[str, Any], pod: str | None) -> dict[str, Any]:
    """Cluster and endpoint metadata as the translator writes them (translate/telemetry.py)."""
    cluster["metadata"] = {"filter_metadata": {"istio": cluster_metadata(STATE, cluster["name"])}}
    if pod is not None:
        (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        endpoint["metadata"] = {"filter_metadata": {"istio": pod_metadata(MODEL.topology.pod(pod))}}
    return cluster


def _user_sidecar(b: Any, backend_port: int) -> dict[str, Any]:
    """user-v1's sidecar: plaintext inbound listener with RBAC in front of `inbound|8080||`."""
    hcm = b.http_connection_manager("inbound_8080", {"*": "inbound|8080||"},
                                    http_filters=[RBAC_DENY_ON_X_DENY])
    hcm["typed_config"]["access_log"] = [request_stats_for(STATE, _node("user-v1-us-east-0"), "destination",
                                                           mtls=False, telemetry=MODEL.istio.telemetry)]
    return _sidecar(b, "inbound", hcm, [b.static_cluster("inbound|8080||", backend_port)])


def _ai_agent_sidecar(b: Any, user_inbound_port: int, backend_port: int) -> dict[str, Any]:
    """ai-agent-v1's sidecar: outbound listener routing by Host to user-service v1 and the external API."""
    routes = {"user-service": USER_V1, "api.openai.com": "outbound|443||api.openai.com"}
    clusters = [
        _with_metadata(b.static_cluster(USER_V1, user_inbound_port), "user-v1-us-east-0"),
        # plain HTTP: only the name and metadata matter here
        _with_metadata(b.static_cluster("outbound|443||api.openai.com", backend_port), None),
    ]
    hcm = b.http_connection_manager("outbound_http", routes)
    hcm["typed_config"]["access_log"] = [request_stats_for(STATE, _node("ai-agent-v1-us-east-0"), "source",
                                                           mtls=None, telemetry=MODEL.istio.telemetry)]
    return _sidecar(b, "outbound", hcm, clusters)


def _send_traffic(outbound_port: int) -> list[int]:
    """45 allowed and 5 RBAC-denied calls to user-service, 3 to the external API: 53 requests in all."""
    url = f"http://127.0.0.1:{outbound_port}/"
    calls = [{"Host": "user-service"}] * 45 + [{"Host": "user-service", "x-deny": "1"}] * 5
    calls += [{"Host": "api.openai.com"}] * 3
    with httpx.Client(timeout=5) as client:
        return [client.get(url, headers=headers).status_code for headers in calls]


def _query(port: int, promql: str) -> dict[tuple[str, ...], float]:
    """Instant query; each result keyed by its sorted label values."""
    response = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": promql}, timeout=2)
    return {tuple(sorted(r["metric"].values())): float(r["value"][1]) for r in response.json()["data"]["result"]}


def test_prometheus_records_istio_requests_from_real_envoys(
    tmp_path: Path,
    backend: int,
    processes: Any,
    start_envoy: Callable[[dict[str, Any], str], Any],
    envoy_config: Any,
    wait_for: Callable[..., Any],
) -> None:
    prometheus, _ = find_binaries()
    user = start_envoy(_user_sidecar(envoy_config, backend), "user-sidecar")
    ai_agent = start_envoy(_ai_agent_sidecar(envoy_config, user.listener_port("inbound"), backend), "ai-agent-sidecar")
    # Targets are written before Prometheus starts, so its first discovery tick carries them all.
    targets = [
        ScrapeTarget(user.address, "envoy", _labels("user-v1-us-east-0", "user", "user-service")),
        ScrapeTarget(ai_agent.address, "envoy", _labels("ai-agent-v1-us-east-0", "ai-agent", "ai-agent-service")),
    ]
    write_targets(tmp_path / "targets", targets)
    config = tmp_path / "prometheus.yml"
    config.write_text(render_config(targets_dir=tmp_path / "targets", rules_path=RECORDING_RULES))
    port = free_port()
    argv = prometheus_argv(binary=prometheus, config_path=config, data_dir=tmp_path / "data", port=port)
    started = time.monotonic()
    processes.start(argv, name="prometheus")

    assert _send_traffic(ai_agent.listener_port("outbound")) == [200] * 45 + [403] * 5 + [200] * 3

    by_destination = "sum by (destination_service_name, destination_version, reporter) (istio_requests_total)"
    expected = {
        ("source", "user-service", "v1"): 50,
        ("destination", "user-service", "v1"): 50,  # 45 through the inbound cluster + 5 denied by RBAC
        ("api.openai.com", "source", "unknown"): 3,
    }
    wait_for(
        lambda: _query(port, by_destination) == expected,
        timeout_s=30,
        step_s=0.25,
        what=lambda: f"{by_destination} == {expected}; last {_query(port, by_destination)}",
    )
    print(f"istio_requests_total complete {time.monotonic() - started:.1f} s after Prometheus started")
    by_code = 'sum by (response_code, response_code_details) (istio_requests_total{reporter="destination"})'
    assert _query(port, by_code) == {("200",): 45, ("403", "rbac_access_denied"): 5}
    # Empty labels read "unknown" (written at scrape time): the external API has no workload, and the
    # plaintext caller of user's inbound no peer metadata.
    external = 'sum by (destination_workload, destination_principal) (istio_requests_total{destination_service_name="api.openai.com"})'
    assert _query(port, external) == {("unknown", "unknown"): 3}
    callers = 'sum by (source_workload, connection_security_policy) (istio_requests_total{reporter="destination"})'
    assert _query(port, callers) == {("none", "unknown"): 50}
    # Histograms reach the admin endpoint on Envoy's stats flush (1 s with envoy_stats_bootstrap()).
    # Requests denied by RBAC are timed too: the duration is the whole request's, as in Istio.
    latency = "sum by (reporter) (istio_request_duration_milliseconds_count)"
    wait_for(
        lambda: _query(port, latency) == {("source",): 53, ("destination",): 50},
        timeout_s=10,
        step_s=0.25,
        what=lambda: f"{latency}; last {_query(port, latency)}",
    )
