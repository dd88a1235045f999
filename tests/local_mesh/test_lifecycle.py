"""`harness up/down/status/apply/kill` as a user runs them, and bad input refused before anything starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import ConfigError, ManifestError, MissingDependencyError, PortInUseError, UnsupportedFieldError
from harness.platforms.local.platform import LocalPlatform
from harness.platforms.local.settings import LocalSettings
from tests.local_mesh.meshkit import Mesh, alive, free_base, settings_for

STATUS_POD_FIELDS = {"name", "service", "version", "region", "ready", "restarts", "pid", "sidecar_pid",
                     "sidecar_admin_url", "inbound_port"}
MANIFESTS = Path(__file__).parents[2] / "harness/mesh/manifests"


def cli(settings: LocalSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_STATE_DIR": str(settings.state_dir), "HARNESS_BASE_PORT": str(settings.base_port),
           "HARNESS_INGRESS_PORT": str(settings.ingress_port),
           "HARNESS_PROMETHEUS_PORT": str(settings.prometheus_port)}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_status_json_describes_every_pod(mesh: Mesh) -> None:
    result = cli(mesh.platform.settings, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["platform"] == "local"
    assert status["ingress_url"].startswith("http://127.0.0.1:") and status["prometheus_url"].startswith("http://")
    assert {p["service"] for p in status["pods"]} == {"ai-agent-service", "analytics-service", "user-service"}
    assert {p["region"] for p in status["pods"]} == {"us-east", "us-west", "eu-west"}
    for pod in status["pods"]:
        assert STATUS_POD_FIELDS <= set(pod) and pod["ready"] and alive(pod["pid"]) and alive(pod["sidecar_pid"])
    assert 23 * 3600 < status["workload_certs_expire_at"] - time.time() <= 24 * 3600  # HARNESS_CERT_VALIDITY_H


def test_up_again_while_up_says_so_and_changes_nothing(mesh: Mesh) -> None:
    before = mesh.platform.status()
    result = cli(mesh.platform.settings, "up")
    assert result.returncode == 0, result.stderr
    assert "already up" in result.stdout
    after = mesh.platform.status()
    assert [(p["pid"], p["sidecar_pid"]) for p in after["pods"]] == [(p["pid"], p["sidecar_pid"]) for p in before["pods"]]


def test_kill_from_the_command_line_restarts_the_pod(clean_mesh: Mesh) -> None:
    mesh = clean_mesh
    before = mesh.pod("user-v1-us-east-0")
    result = cli(mesh.platform.settings, "kill", "user-v1-us-east-0")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["killed_pids"]["app"] == before["pid"]
    mesh.wait_for(lambda: mesh.pod("user-v1-us-east-0")["restarts"] == before["restarts"] + 1
                  and mesh.pod("user-v1-us-east-0")["ready"], 20, "restart")


def test_kill_of_an_unknown_pod_names_the_pods(mesh: Mesh) -> None:
    result = cli(mesh.platform.settings, "kill", "no-such-pod")
    assert result.returncode == 2
    assert "no-such-pod" in result.stderr and "ai-agent-v1-us-east-0" in result.stderr


def test_apply_of_malformed_yaml_names_the_file_and_line(mesh: Mesh, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: x\n")
    result = cli(mesh.platform.settings, "apply", "-f", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "line" in result.stderr


def test_apply_of_an_unknown_field_names_the_field(mesh: Mesh, tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("""apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ai-agent-routing, namespace: parallel-ai}
spec:
  hosts: [ai-agent-service]
  http:
  - route:
    - destination: {host: ai-agent-service, subset: v1}
      weigth: 100
""")
    with pytest.raises(ManifestError, match=r"weigth"):
        mesh.platform.apply([bad])


def test_apply_of_an_unsupported_istio_field_is_refused_and_changes_nothing(mesh: Mesh, tmp_path: Path) -> None:
    bad = tmp_path / "mirror.yaml"
    bad.write_text("""apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ai-agent-routing, namespace: parallel-ai}
spec:
  hosts: [ai-agent-service]
  gateways: [ai-agent-gateway, mesh]
  http:
  - route:
    - destination: {host: ai-agent-service, subset: v1}
    mirror: {host: user-service}
""")
    pushed = mesh.platform.status()["last_push"]
    with pytest.raises(UnsupportedFieldError, match=r"spec\.http\[0\]\.mirror"):
        mesh.platform.apply([bad])
    assert mesh.platform.status()["last_push"] == pushed
    assert mesh.chat({"x-user-tier": "premium"}).json()["version"] == "v2"


def test_apply_to_an_undefined_subset_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    bad = tmp_path / "subset.yaml"
    bad.write_text("""apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ai-agent-routing, namespace: parallel-ai}
spec:
  hosts: [ai-agent-service]
  http:
  - route:
    - destination: {host: ai-agent-service, subset: v3}
""")
    with pytest.raises(ConfigError, match=r"subset 'v3'"):
        mesh.platform.apply([bad])


def test_apply_delete_of_a_resource_the_mesh_lacks_exits_2_naming_it_and_deletes_nothing(
        mesh: Mesh, tmp_path: Path) -> None:
    """kubectl delete -f answers `Error from server (NotFound)` (exit 1) for a missing object; here
    exit 2 (bad input) naming the file and resource, and the batch's present resource stays."""
    batch = tmp_path / "batch.yaml"
    batch.write_text((MANIFESTS / "istio/gateway.yaml").read_text().rstrip() + """
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: no-such-routing, namespace: parallel-ai}
spec:
  hosts: [user-service]
  http:
  - route:
    - destination: {host: user-service}
""")
    pushed = mesh.platform.status()["last_push"]
    result = cli(mesh.platform.settings, "apply", "--delete", "-f", str(batch))
    assert result.returncode == 2, result.stderr
    assert str(batch) in result.stderr
    assert "VirtualService parallel-ai/no-such-routing not found" in result.stderr
    assert mesh.platform.status()["last_push"] == pushed
    assert "ai-agent-gateway" in {d["metadata"]["name"] for d in mesh.platform.resources()}


def test_a_run_on_a_mesh_whose_applied_telemetry_removes_response_code_exits_2_before_its_load(
        clean_mesh: Mesh, tmp_path: Path) -> None:
    """The run reads the Telemetry the mesh has (here applied after `up`), not only the declared files:
    without response_code the availability SLOs and the lag probe have no series to select
    (harness/slo/telemetry_needs.py), so the run stops before the load, naming the file's field."""
    telemetry = tmp_path / "no-response-code.yaml"
    shipped = (MANIFESTS / "istio/telemetry.yaml").read_text()
    telemetry.write_text(shipped.replace('        response_code:\n          value: "string(response.code)"\n',
                                         "        response_code:\n          operation: REMOVE\n"))
    assert "operation: REMOVE" in telemetry.read_text()
    applied = cli(clean_mesh.platform.settings, "apply", "-f", str(telemetry))
    assert applied.returncode == 0, applied.stderr
    run_dir = tmp_path / "run"
    result = cli(clean_mesh.platform.settings, "run", str(MANIFESTS.parents[2] / "experiments/pod-kill.yaml"),
                 "--report-dir", str(run_dir), "--no-progress")
    assert result.returncode == 2, result.stderr
    assert "spec.metrics[0].overrides[0].tagOverrides.response_code" in result.stderr
    assert "Telemetry parallel-ai/custom-metrics" in result.stderr and "ai-agent-availability" in result.stderr
    assert not run_dir.exists(), "no load, no journal: nothing started"


def test_down_stops_every_process_and_is_safe_twice(tmp_path: Path) -> None:
    platform = LocalPlatform(settings_for(tmp_path / "state", free_base()))
    status = platform.up()
    pids = [status["daemon_pid"], status["gateway"]["pid"], status["prometheus"]["pid"], status["traces"]["pid"]]
    pids += [pid for pod in status["pods"] for pid in (pod["pid"], pod["sidecar_pid"])]
    assert all(alive(pid) for pid in pids)
    platform.down()
    assert [pid for pid in pids if alive(pid)] == []
    assert not (tmp_path / "state").exists()
    assert platform.down() == []


def test_down_after_a_crashed_control_plane_finds_the_leftovers(tmp_path: Path) -> None:
    platform = LocalPlatform(settings_for(tmp_path / "state", free_base()))
    status = platform.up()
    pods = [pid for pod in status["pods"] for pid in (pod["pid"], pod["sidecar_pid"])]
    os.kill(status["daemon_pid"], 9)  # the children die with it (PDEATHSIG) or are reaped by down
    platform.down()
    assert [pid for pid in pods + [status["prometheus"]["pid"], status["traces"]["pid"]] if alive(pid)] == []
    assert not (tmp_path / "state").exists()


def test_a_port_in_use_is_named_and_nothing_is_started(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "state", free_base())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", settings.ingress_port))
        holder.listen()
        with pytest.raises(PortInUseError, match=str(settings.ingress_port)):
            LocalPlatform(settings).up()
    assert not (tmp_path / "state").exists()


def test_a_missing_envoy_is_named(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "state", free_base(), envoy_bin=tmp_path / "no-envoy")
    with pytest.raises(MissingDependencyError, match="envoy"):
        LocalPlatform(settings).up()
    assert not (tmp_path / "state").exists()


def test_a_missing_prometheus_is_named_with_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependencyError, match="apt-get install prometheus"):
        LocalPlatform(settings_for(tmp_path / "state", free_base())).up()
    assert not (tmp_path / "state").exists()


def test_a_malformed_manifest_stops_up_before_anything_starts(tmp_path: Path) -> None:
    manifests = tmp_path / "mesh"
    manifests.mkdir()
    for path in (MANIFESTS / "kubernetes").glob("*.yaml"):
        (manifests / path.name).write_text(path.read_text())
    (manifests / "broken.yaml").write_text("kind: VirtualService\napiVersion: networking.istio.io/v1beta1\n"
                                           "metadata: {name: x}\nspec: {hosts: [a], http: [{route: 5}]}\n")
    settings = settings_for(tmp_path / "state", free_base(), manifests_dir=manifests)
    with pytest.raises(ManifestError, match=r"(?s)broken\.yaml.*spec\.http\[0\]\.route: expected array"):
        LocalPlatform(settings).up()
    assert not (tmp_path / "state").exists()
