"""STRICT mTLS and AuthorizationPolicy, tested against a real sidecar's inbound port."""

from __future__ import annotations

import socket
import ssl
import stat
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from harness.pki import MeshCA, WorkloadCert
from harness.platforms.local.platform import LocalPlatform
from tests.local_mesh.meshkit import Mesh, free_base, settings_for

AI_AGENT_POD = "ai-agent-v1-us-east-0"
VARIANT = Path(__file__).parents[2] / "harness/mesh/manifests/variants/authz-seed-as-written.yaml"


def mesh_ca(mesh: Mesh, tmp_path: Path) -> MeshCA:
    """The running mesh's own CA, reloaded from its state directory to issue test identities."""
    ca = Path(mesh.status["state_dir"]) / "pki" / "mesh" / "ca"
    return MeshCA.from_files(ca / "root-cert.pem", ca / "cert-chain.pem", ca / "ca-cert.pem", ca / "ca-key.pem",
                             directory=tmp_path / "issued")


def client_for(cert: WorkloadCert | None, trust: Path) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(trust))
    context.check_hostname = False  # SPIFFE certificates carry no DNS name
    if cert is not None:
        context.load_cert_chain(cert.cert_chain_path, cert.key_path)
    return httpx.Client(verify=context, timeout=5.0)


def chat_direct(mesh: Mesh, client: httpx.Client, path: str = "/api/v1/chat") -> httpx.Response:
    port = mesh.pod(AI_AGENT_POD)["inbound_port"]
    return client.post(f"https://127.0.0.1:{port}{path}", json={"user_id": "u1", "prompt": "hi"})


def test_a_plaintext_client_is_refused_by_a_strict_sidecar(mesh: Mesh) -> None:
    port = mesh.pod(AI_AGENT_POD)["inbound_port"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = sock.recv(1024)
        except ConnectionResetError:
            answer = b""
    assert answer == b""


def test_a_client_without_a_certificate_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    ca = mesh_ca(mesh, tmp_path)
    with client_for(None, ca.root_cert_path) as client, pytest.raises((httpx.ConnectError, httpx.ReadError,
                                                                         httpx.RemoteProtocolError)):
        chat_direct(mesh, client)


def test_a_client_certificate_from_another_ca_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    rogue = MeshCA.create(tmp_path / "rogue").issue_workload("parallel-ai", "analytics-service")
    trust = mesh_ca(mesh, tmp_path).root_cert_path
    with client_for(rogue, trust) as client, pytest.raises((httpx.ConnectError, httpx.ReadError,
                                                            httpx.RemoteProtocolError)):
        chat_direct(mesh, client)


def test_an_allowed_principal_is_served(mesh: Mesh, tmp_path: Path) -> None:
    ca = mesh_ca(mesh, tmp_path)
    with client_for(ca.issue_workload("parallel-ai", "analytics-service"), ca.root_cert_path) as client:
        response = chat_direct(mesh, client)
    assert response.status_code == 200, response.text
    assert response.headers["x-served-by"] == AI_AGENT_POD


def test_a_principal_outside_the_authorization_policy_gets_403(mesh: Mesh, tmp_path: Path) -> None:
    ca = mesh_ca(mesh, tmp_path)
    with client_for(ca.issue_workload("parallel-ai", "user-service"), ca.root_cert_path) as client:
        response = chat_direct(mesh, client)
    assert response.status_code == 403
    assert "RBAC" in response.text


def test_an_allowed_principal_outside_the_allowed_paths_gets_403(mesh: Mesh, tmp_path: Path) -> None:
    ca = mesh_ca(mesh, tmp_path)
    with client_for(ca.issue_workload("parallel-ai", "api-gateway"), ca.root_cert_path) as client:
        port = mesh.pod(AI_AGENT_POD)["inbound_port"]
        assert client.get(f"https://127.0.0.1:{port}/health").status_code == 403
        assert client.delete(f"https://127.0.0.1:{port}/api/v1/chat").status_code == 403


def test_the_seed_policy_as_written_lets_any_principal_in(clean_mesh: Mesh, tmp_path: Path) -> None:
    """Istio ORs rules: the seed's two-rule policy allows every caller on /api/v1/*."""
    mesh = clean_mesh
    ca = mesh_ca(mesh, tmp_path)
    outsider = ca.issue_workload("parallel-ai", "user-service")
    mesh.platform.apply([VARIANT])
    with client_for(outsider, ca.root_cert_path) as client:
        assert chat_direct(mesh, client).status_code == 200
    mesh.platform.reset()
    with client_for(outsider, ca.root_cert_path) as client:
        assert chat_direct(mesh, client).status_code == 403


def _served_certificate(admin_url: str) -> tuple[str, float]:
    """Serial number and notAfter (epoch s) of the workload certificate a proxy serves now."""
    certs = httpx.get(f"{admin_url}/certs", timeout=5).json()["certificates"]
    leaves = [chain["cert_chain"][0] for chain in certs if chain.get("cert_chain")]
    leaf = leaves[0]
    expires = datetime.fromisoformat(leaf["expiration_time"].replace("Z", "+00:00")).timestamp()
    return leaf["serial_number"], expires


def test_workload_certificates_are_rotated_through_sds_before_they_expire(tmp_path: Path) -> None:
    """Certificates that last 10.8 s, reissued at half their lifetime: traffic outlives the first ones."""
    platform = LocalPlatform(settings_for(tmp_path / "state", free_base(), cert_validity_h=0.003))
    status = platform.up()
    try:
        with httpx.Client(timeout=10.0) as client:
            mesh = Mesh(platform, status, client)
            admin = mesh.pod(AI_AGENT_POD)["sidecar_admin_url"]
            first_serial, first_expiry = _served_certificate(admin)
            pids = [(p["pid"], p["sidecar_pid"]) for p in platform.status()["pods"]]
            mesh.wait_for(lambda: time.time() > first_expiry + 1 and platform.status()["workload_cert_rotations"] >= 2,
                          30, "two rotations and the first certificates expired")
            assert [mesh.chat().status_code for _ in range(10)] == [200] * 10
            serial, expiry = _served_certificate(admin)
            assert serial != first_serial and expiry > time.time()
            assert [(p["pid"], p["sidecar_pid"]) for p in platform.status()["pods"]] == pids, "no proxy restarted"
            sds = Path(status["state_dir"]) / "proxies" / AI_AGENT_POD / "xds" / "sds" / "default.json"
            assert stat.S_IMODE(sds.stat().st_mode) == 0o600, "the SDS file holds a private key"
    finally:
        platform.down()
