"""The security probes on kind: a client Pod without a sidecar, identities from the mesh's plug-in CA, every
object in the fault ledger and removed, against the kmock API emulator and in dry-run steps; and the Pod's
script itself against real TLS servers on 127.0.0.1.

Followed: Istio's mTLS migration task (a client without a sidecar, `legacy`, is refused by STRICT mTLS:
https://istio.io/latest/docs/tasks/security/authentication/mtls-migration/), the authentication policy
task's "mutual TLS deep dive" (a client presenting workload certificates to the sidecar directly), and
the ALPN a sidecar offers for HTTP/1.1 (istio/istio pilot/pkg/networking/core mtlsHTTP11ALPN:
istio-http/1.1, istio, http/1.1). What only a real cluster shows: README *Security* and
harness/platforms/kind/probes.py.
"""

from __future__ import annotations

import base64
import json
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from harness.chaos.context import run_context
from harness.chaos.ledger import FaultLedger
from harness.chaos.security import mtls_refused, path_bypass_denied, unauthorised_request_denied
from harness.chaos.undo import UndoRegistry
from harness.errors import PlatformError
from harness.net import free_port
from harness.pki import MeshCA
from harness.platforms.kind import KindPlatform
from harness.platforms.kind.probes import ALPN, PROBE_SCRIPT, InClusterProbe
from harness.platforms.kind.settings import KindSettings
from tests.kind.kmockkit import EmulatedCluster

PODS = "/api/v1/namespaces/parallel-ai/pods"
SECRETS = "/api/v1/namespaces/parallel-ai/secrets"


def CA_FOLDER(ca: MeshCA) -> Path:  # noqa: N802 - where MeshCA.create lays out Istio's cacerts files
    return ca.directory / "ca"


# -- the Pod's script, run here against TLS servers that behave as an inbound mTLS listener -----------

class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: Any = self.server
        try:
            with server.context.wrap_socket(self.request, server_side=True) as tls:
                server.alpn.append(tls.selected_alpn_protocol())
                server.peers.append(tls.getpeercert())
                tls.recv(4096)
                tls.sendall(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
        except (ssl.SSLError, OSError):
            return


@pytest.fixture
def mesh_ca(tmp_path: Path) -> MeshCA:
    return MeshCA.create(tmp_path / "mesh")


@pytest.fixture
def strict_listener(mesh_ca: MeshCA) -> Iterator[Any]:
    """A TLS server requiring a client certificate from the mesh root, answering 403 to every request."""
    served = mesh_ca.issue_workload("parallel-ai", "ai-agent-service")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(mesh_ca.root_cert_path))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(served.cert_chain_path, served.key_path)
    context.set_alpn_protocols(["istio-http/1.1", "istio"])
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.context, server.alpn, server.peers = context, [], []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _write(folder: Path, name: str, cert: Any) -> None:
    (folder / f"{name}.crt").write_bytes(cert.cert_chain_path.read_bytes())
    (folder / f"{name}.key").write_bytes(cert.key_path.read_bytes())


def test_the_probe_script_tells_refused_from_answered_as_a_strict_sidecar_would(
        tmp_path: Path, mesh_ca: MeshCA, strict_listener: Any) -> None:
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "root-cert.pem").write_bytes(mesh_ca.root_cert_path.read_bytes())
    _write(folder, "principal", mesh_ca.issue_workload("parallel-ai", "user-service"))
    _write(folder, "foreign", MeshCA.create(tmp_path / "foreign").issue_workload("parallel-ai", "analytics-service"))
    expired = mesh_ca.issue_workload("parallel-ai", "analytics-service", validity=timedelta(seconds=1))
    _write(folder, "expired", expired)
    port = strict_listener.server_address[1]
    base = {"host": "127.0.0.1", "port": port, "path": "/api/v1/chat", "method": "POST", "tls": True, "cert": None,
            "send_after": None}
    attempts = [{**base, "label": "plaintext", "tls": False}, {**base, "label": "no-certificate"},
                {**base, "label": "foreign-ca", "cert": "foreign"},
                {**base, "label": "expired-certificate", "cert": "expired", "send_after": expired.expires_at + 1.0},
                {**base, "label": "as user-service", "cert": "principal"}]
    done = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, json.dumps(attempts), str(folder)],
                          capture_output=True, text=True, timeout=90, check=True)
    assert json.loads(done.stdout) == {"plaintext": "refused", "no-certificate": "refused", "foreign-ca": "refused",
                                       "expired-certificate": "refused", "as user-service": "403"}
    assert "istio-http/1.1" in strict_listener.alpn, "TLS attempts offer a sidecar's ALPN"
    sans = [dict(peer.get("subjectAltName", ())) for peer in strict_listener.peers if peer]
    assert {"URI": "spiffe://cluster.local/ns/parallel-ai/sa/user-service"} in sans


def test_the_probe_script_reports_a_closed_port_as_refused(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    attempts = [{"label": "closed", "host": "127.0.0.1", "port": port, "path": "/", "method": "GET", "tls": False,
                 "cert": None, "send_after": None}]
    done = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, json.dumps(attempts), str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == {"closed": "refused"}


# -- the platform side against kmock ----------------------------------------------------------------

def _cacerts(ca: MeshCA) -> dict:
    folder = CA_FOLDER(ca)
    files = {name: (folder / name).read_bytes() for name in ("ca-cert.pem", "ca-key.pem", "root-cert.pem",
                                                             "cert-chain.pem")}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cacerts", "namespace": "istio-system"},
            "data": {name: base64.b64encode(data).decode() for name, data in files.items()}}


class Kubelet:
    """Plays the kubelet for probe Pods: ends each with the termination message `answer(pod)` gives."""

    def __init__(self, cluster: EmulatedCluster, answer: Any) -> None:
        self.cluster, self.answer = cluster, answer
        self.seen: list[dict] = []
        self.secrets: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Kubelet":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            for pod in self.cluster.items(f"{PODS}?labelSelector=app=harness-probe"):
                if (pod.get("status") or {}).get("phase") or pod in self.seen:
                    continue
                self.seen.append(json.loads(json.dumps(pod)))
                self.secrets.append(self.cluster.get(f"{SECRETS}/{pod['metadata']['name']}"))
                message = self.answer(pod)
                self.cluster.put("v1/pods", {**pod, "status": {"phase": "Succeeded", "containerStatuses": [
                    {"name": "probe", "state": {"terminated": {"exitCode": 0, "message": message}}}]}})


@pytest.fixture
def kind_mesh(mesh: EmulatedCluster, mesh_ca: MeshCA) -> EmulatedCluster:
    mesh.put("v1/secrets", _cacerts(mesh_ca))
    return mesh


def _labels(pod: dict) -> list[str]:
    return [a["label"] for a in json.loads(pod["spec"]["containers"][0]["command"][3])]


def test_mtls_probe_runs_a_sidecarless_client_pod_and_removes_it(
        kind_mesh: EmulatedCluster, platform: KindPlatform, mesh_ca: MeshCA, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    ledger = FaultLedger(platform.ledger_dir)
    during: list[list[Any]] = []

    def answer(pod: dict) -> str:
        during.append([e.undo for e in ledger.entries()])
        return json.dumps({label: "refused" for label in _labels(pod)})

    with Kubelet(kind_mesh, answer) as kubelet, run_context(platform=platform, undo=UndoRegistry()):
        result = mtls_refused()
    assert result["verdict"] == "pass" and result["observed"] == {
        "plaintext": "refused", "no-certificate": "refused", "foreign-ca": "refused", "expired-certificate": "refused"}
    [pod] = kubelet.seen
    name = pod["metadata"]["name"]
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    spec = pod["spec"]
    assert (spec["restartPolicy"], spec["automountServiceAccountToken"]) == ("Never", False)
    assert spec["volumes"][0]["secret"] == {"secretName": name, "defaultMode": 0o440}
    attempts = json.loads(spec["containers"][0]["command"][3])
    target = next(p for p in platform.pods() if p["name"] == "ai-agent-v1-us-east-0")
    assert {(a["host"], a["port"]) for a in attempts} == {(target["pod_ip"], target["app_port"])}
    assert [a["tls"] for a in attempts] == [False, True, True, True]
    expired = next(a for a in attempts if a["label"] == "expired-certificate")
    assert expired["send_after"] and expired["cert"] == "expired"
    # the identities: issued by the cluster's plug-in CA (foreign: not), with the SPIFFE id the policy reads
    files = {k: base64.b64decode(v) for k, v in kubelet.secrets[0]["data"].items()}
    assert files["root-cert.pem"] == mesh_ca.root_cert_path.read_bytes()
    issued = x509.load_pem_x509_certificate(files["expired.crt"])
    foreign = x509.load_pem_x509_certificate(files["foreign.crt"])
    ca_cert = x509.load_pem_x509_certificate((CA_FOLDER(mesh_ca) / "ca-cert.pem").read_bytes())
    issued.verify_directly_issued_by(ca_cert)  # signed by the cluster's plug-in CA key
    with pytest.raises(Exception):  # noqa: B017 - InvalidSignature (or ValueError): another CA's key
        foreign.verify_directly_issued_by(ca_cert)
    san = issued.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/parallel-ai/sa/analytics-service"]
    # in the ledger while it ran, gone afterwards, and nothing left in the cluster
    assert during == [[{"objects": [{"context": "kind-parallel-ai", "kind": "Pod", "name": name},
                                    {"context": "kind-parallel-ai", "kind": "Secret", "name": name}]}]]
    assert ledger.entries() == []
    assert kind_mesh.get(f"{PODS}/{name}") is None and kind_mesh.get(f"{SECRETS}/{name}") is None


def test_a_hole_is_a_failed_verdict_and_the_principal_is_the_one_asked_for(
        kind_mesh: EmulatedCluster, platform: KindPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    with Kubelet(kind_mesh, lambda pod: json.dumps({label: "200" for label in _labels(pod)})) as kubelet, \
            run_context(platform=platform, undo=UndoRegistry()):
        result = unauthorised_request_denied(principal="user-service")
        bypass = path_bypass_denied(paths=["/api/v1/./chat", "/api/v1/%63hat"])
    assert (result["verdict"], result["observed"]) == ("fail", {"POST /api/v1/chat as user-service": "200"})
    assert bypass["verdict"] == "fail" and set(bypass["observed"]) == {"/api/v1/./chat", "/api/v1/%63hat"}
    cert = x509.load_pem_x509_certificate(base64.b64decode(kubelet.secrets[0]["data"]["principal.crt"]))
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier) == ["spiffe://cluster.local/ns/parallel-ai/sa/user-service"]
    paths = [a["path"] for a in json.loads(kubelet.seen[1]["spec"]["containers"][0]["command"][3])]
    assert paths == ["/api/v1/./chat", "/api/v1/%63hat"], "paths go to the Pod byte for byte"


def test_a_probe_that_ends_without_outcomes_is_an_error_and_is_still_removed(
        kind_mesh: EmulatedCluster, platform: KindPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    with Kubelet(kind_mesh, lambda pod: "Traceback ...") as kubelet, \
            run_context(platform=platform, undo=UndoRegistry()):
        with pytest.raises(PlatformError, match="without an outcome for each attempt"):
            mtls_refused()
    name = kubelet.seen[0]["metadata"]["name"]
    assert kind_mesh.get(f"{PODS}/{name}") is None and kind_mesh.get(f"{SECRETS}/{name}") is None
    assert FaultLedger(platform.ledger_dir).entries() == []


def test_an_interrupted_probe_is_removed(kind_mesh: EmulatedCluster, platform: KindPlatform, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while waiting for the Pod: the undo still deletes the Pod and Secret and clears the entry."""
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))

    created: list[str] = []

    def ctrl_c(seconds: float) -> None:
        pods = kind_mesh.items(f"{PODS}?labelSelector=app=harness-probe")
        created.extend(p["metadata"]["name"] for p in pods)
        raise KeyboardInterrupt

    clock = types.SimpleNamespace(sleep=ctrl_c, monotonic=time.monotonic, time=time.time, time_ns=time.time_ns)
    monkeypatch.setattr("harness.platforms.kind.probes.time", clock)  # this module's sleep only
    with run_context(platform=platform, undo=UndoRegistry()), pytest.raises(KeyboardInterrupt):
        mtls_refused()
    assert len(created) == 1, "the Pod existed when Ctrl-C came"
    assert kind_mesh.get(f"{PODS}/{created[0]}") is None and kind_mesh.get(f"{SECRETS}/{created[0]}") is None
    assert FaultLedger(platform.ledger_dir).entries() == []


def test_a_killed_runs_probe_is_removed_from_the_ledger_by_the_next_command(
        kind_mesh: EmulatedCluster, platform: KindPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.chaos.audit import clean_orphans

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    probe = InClusterProbe(platform, "kind-parallel-ai")
    probe_objects = probe.objects
    kind_mesh.put("v1/secrets", probe.secret_document({}))
    kind_mesh.put("v1/pods", probe.pod_document([{"label": "x"}]))
    code = ("import json, sys; from pathlib import Path; from harness.chaos.ledger import FaultLedger; "
            "FaultLedger(Path(sys.argv[1])).record('probe', 'remove security probe', json.loads(sys.argv[2]))")
    subprocess.run([sys.executable, "-c", code, str(platform.ledger_dir), json.dumps({"objects": probe_objects})],
                   check=True, timeout=60)
    [cleaned] = clean_orphans(platform)
    assert cleaned["outcome"] == "undone"
    assert kind_mesh.get(f"{PODS}/{probe.name}") is None and kind_mesh.get(f"{SECRETS}/{probe.name}") is None


def test_without_the_plug_in_ca_the_probe_says_what_is_missing_and_creates_nothing(
        mesh: EmulatedCluster, platform: KindPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    with run_context(platform=platform, undo=UndoRegistry()), \
            pytest.raises(PlatformError, match="no Secret istio-system/cacerts"):
        mtls_refused()
    assert mesh.items(f"{PODS}?labelSelector=app=harness-probe") == [] and mesh.items(SECRETS) == []


def test_the_ledger_undo_deletes_only_probe_objects(platform: KindPlatform) -> None:
    with pytest.raises(PlatformError, match="not a security probe object"):
        platform.remove_probe_objects([{"context": "kind-parallel-ai", "kind": "Pod", "name": "ai-agent-v1-us-east-abc"}])


# -- dry run ------------------------------------------------------------------------------------------

def test_dry_run_lists_the_probe_steps_and_its_verdict_has_no_data(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    platform = KindPlatform(KindSettings(dry_run=True))
    with run_context(platform=platform, undo=UndoRegistry()):
        result = unauthorised_request_denied()
    assert result["verdict"] == "fail" and set(result["observed"].values()) == {"dry-run"}
    api = [step.split(" ", 2)[2] for step in platform.steps if step.startswith("API ")]
    name = next(step.split("(")[1].rstrip(")") for step in api if step.startswith(f"POST {PODS} "))
    assert api[-6:] == [
        "GET /api/v1/namespaces/istio-system/secrets/cacerts",
        f"POST {SECRETS} ({name})", f"POST {PODS} ({name})", f"GET {PODS}/{name}",
        f"DELETE {PODS}/{name} gracePeriodSeconds=0", f"DELETE {SECRETS}/{name}"]
    assert FaultLedger(platform.ledger_dir).entries() == []


def test_the_probe_pod_never_carries_a_sidecar_or_a_token(platform: KindPlatform) -> None:
    pod = InClusterProbe(platform, "kind-parallel-ai").pod_document([{"label": "x"}])
    container = pod["spec"]["containers"][0]
    assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    assert pod["spec"]["automountServiceAccountToken"] is False and pod["spec"]["activeDeadlineSeconds"] > 0
    assert container["image"] == "parallel-ai/sample-service:0.1.0" and container["command"][:2] == ["python", "-c"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert ALPN[0] == "istio-http/1.1"


# -- the security experiments' action on kind --------------------------------------------------------

@pytest.mark.parametrize("manifest, name", [("variants/security-gateway-deny-admin.yaml", "security-gateway-deny-admin"),
                                            ("variants/authz-seed-as-written.yaml", "ai-agent-authz")])
def test_apply_policy_on_kind_is_in_the_ledger_and_a_killed_runs_policy_is_undone(
        mesh: EmulatedCluster, platform: KindPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        manifest: str, name: str) -> None:
    """The gateway DENY selects istio: ingressgateway, which kind's ingress gateway pods in parallel-ai carry."""
    from harness.chaos.audit import clean_orphans
    from harness.chaos.policies import apply_policy

    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    path = f"/apis/security.istio.io/v1beta1/namespaces/parallel-ai/authorizationpolicies/{name}"
    before = mesh.get(path)
    with run_context(platform=platform, undo=UndoRegistry()):  # never run: the run is "killed"
        apply_policy(manifest)
    assert mesh.get(path) is not None and (before is None or mesh.get(path)["spec"] != before["spec"])
    ledger = FaultLedger(platform.ledger_dir)
    [entry] = ledger.entries()
    owner = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True, timeout=60).stdout.strip()
    data = json.loads((ledger.directory / f"{entry.id}.json").read_text())
    (ledger.directory / f"{entry.id}.json").write_text(json.dumps({**data, "owner": {**data["owner"],
                                                                                     "pid": int(owner)}}))
    [cleaned] = clean_orphans(platform)
    assert cleaned["outcome"] == "undone"
    after = mesh.get(path)
    assert (after is None) if before is None else (after["spec"] == before["spec"])
