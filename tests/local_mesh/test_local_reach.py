"""What another local process can reach: the apps only through their sidecars (mTLS and authorization),
the knobs only with the run's token, the state folder and logs only as the user running the mesh."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from harness.chaos.security import REFUSED, attempt, sidecar
from harness.net import free_port
from harness.platforms.local.private import KNOBS_TOKEN_FILE, SOCKETS_DIR, app_socket
from tests.local_mesh.meshkit import Mesh

POD = "user-v1-us-east-0"


def test_an_app_listens_on_a_private_unix_socket_and_on_no_tcp_port(mesh: Mesh) -> None:
    """The app's process holds no listening TCP socket: a local process reaches it only through the sidecar
    (Kubernetes: the pod's network namespace; locally: a socket in a 0700 folder)."""
    state = Path(mesh.status["state_dir"])
    path = app_socket(state, POD)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE((state / SOCKETS_DIR).stat().st_mode) == 0o700
    app_pid = mesh.pod(POD)["pid"]
    inodes = {os.readlink(f"/proc/{app_pid}/fd/{fd}") for fd in os.listdir(f"/proc/{app_pid}/fd")}
    listening = _tcp_listen_inodes()
    assert not {i for i in inodes if i.startswith("socket:[") and i[8:-1] in listening}


def _tcp_listen_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def test_the_app_port_serves_only_metrics_through_the_sidecar(mesh: Mesh) -> None:
    """Prometheus scrapes the app's /metrics through its sidecar (Istio's metrics merging); any other
    path on that port is answered by Envoy with 404, never by the app."""
    port = mesh.pod(POD)["app_port"]
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        metrics = client.get(f"http://127.0.0.1:{port}/metrics")
        assert metrics.status_code == 200 and "# TYPE" in metrics.text
        for method, path in (("GET", "/admin/knobs"), ("PUT", "/admin/knobs"), ("GET", "/api/v1/users/u1"),
                             ("GET", "/health"), ("POST", "/metrics")):
            response = client.request(method, f"http://127.0.0.1:{port}{path}", json={"latency_ms": 5})
            assert response.status_code == 404 and "x-served-by" not in response.headers, (method, path)


def test_plaintext_to_the_sidecar_is_still_refused(mesh: Mesh) -> None:
    assert attempt(None, sidecar(mesh.platform.status(), POD), "/admin/knobs", "GET") == REFUSED


def test_the_knobs_need_the_runs_token(mesh: Mesh) -> None:
    state = Path(mesh.status["state_dir"])
    token_file = state / KNOBS_TOKEN_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    transport = httpx.HTTPTransport(uds=str(app_socket(state, POD)))
    with httpx.Client(base_url="http://127.0.0.1", transport=transport, trust_env=False, timeout=5.0) as client:
        assert client.put("/admin/knobs", json={"latency_ms": 5}).status_code == 401
        wrong = {"authorization": "Bearer " + "x" * 43}
        assert client.get("/admin/knobs", headers=wrong).status_code == 401
    assert mesh.platform.get_knobs(POD)["latency_ms"] == 0, "the refused PUT changed nothing"


def test_the_harness_sets_knobs_with_a_dead_proxy_in_the_environment(clean_mesh: Mesh,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert clean_mesh.platform.set_knobs(POD, latency_ms=3)["latency_ms"] == 3
    assert clean_mesh.platform.get_knobs(POD)["latency_ms"] == 3


def test_the_state_folder_and_logs_are_the_users_only(mesh: Mesh) -> None:
    state = Path(mesh.status["state_dir"])
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    logs = state / "logs"
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    files = [p for p in logs.iterdir() if p.is_file()]
    assert files and {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}


def test_prometheus_cannot_be_quit_or_wiped_by_a_local_process(mesh: Mesh) -> None:
    """No --web.enable-lifecycle or --web.enable-admin-api: Prometheus answers 403 and keeps running."""
    url = mesh.status["prometheus_url"]
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        assert client.post(f"{url}/-/quit").status_code == 403
        assert client.post(f"{url}/api/v1/admin/tsdb/delete_series", params={"match[]": "up"}).status_code != 204
        assert client.get(f"{url}/-/ready").status_code == 200
