"""Security probes: what an attacker on the machine gets from a sidecar or the ingress, as real requests.

Each probe makes requests a caller outside the policy could make (plaintext, a certificate from
another CA, an expired certificate, an identity the policy does not name, paths written to slip
past a DENY) and returns a verdict shaped like an SLO result: `name`, `expected`, `observed` per
attempt, `verdict` `pass`/`fail`. The row is also recorded with the run's SLO results (source
`security`), so the report, junit and the exit code show it. Experiments check it with a regex
tolerance on `verdict` (`^pass$`), so a hole fails the steady-state hypothesis and the run (exit 1).
The identities come from the running mesh's own CA: locally from the state directory; on kind from
the plug-in CA istiod signs with (Secret istio-system/cacerts), read through the Kubernetes API, and
the requests are made inside the cluster by a short-lived client Pod without a sidecar
(harness/platforms/kind/probes.py), recorded in the fault ledger (kind `probe`) before it is created
and removed after (also on Ctrl-C; by the next command after SIGKILL). The gateway probe calls the
ingress on 127.0.0.1 on both platforms. Any other platform: the probes refuse to run.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from harness.chaos.context import current, current_platform
from harness.chaos.ledger import ledger_for
from harness.errors import ConfigError, HarnessError
from harness.files import atomic_write
from harness.mesh.resources import NAMESPACE
from harness.pki import MeshCA, WorkloadCert

__all__ = ["gateway_request_denied", "mtls_refused", "path_bypass_denied", "unauthorised_request_denied"]

REFUSED = "refused"  # the connection was closed or the handshake failed: no HTTP answer at all
TIMEOUT_S = 5.0
# Request paths that mean POST /api/v1/chat once normalised (RFC 3986, as Istio's BASE does), taken from
# Istio's security best practices ("Authorization policies ... path normalization").
BYPASS_PATHS = ("/api/v1/./chat", "/api/v1/x/../chat", "/api/v1/%63hat", "/api/v1/%2E/chat", "/api/v1\\chat")


@dataclass(frozen=True)
class Target:
    """Where a probe sends its requests: a sidecar's inbound (mTLS) address, as the local platform lays it out."""

    state_dir: Path
    host: str
    port: int


def _status() -> dict[str, Any]:
    status = current_platform().status()
    platform = status.get("platform")
    if platform not in ("local", "kind") or (platform == "local" and "state_dir" not in status):
        raise HarnessError(f"the security probes issue identities from the mesh's CA and reach its sidecars "
                           f"(local, kind); not implemented on the {platform!r} platform")
    return status


# -- kind: the same attempts from a client Pod in the cluster ---------------------------------------------

@dataclass(frozen=True)
class ClusterAttempt:
    """One request of the in-cluster client: `cert` names an identity `_in_cluster`'s issue() made (None:
    TLS without a client certificate; ignored without tls)."""

    label: str
    path: str
    method: str = "POST"
    tls: bool = True
    cert: str | None = None


def _in_cluster(status: dict[str, Any], pod: str, attempts: list[ClusterAttempt],
                issue: dict[str, Any]) -> dict[str, str]:
    """Run the attempts against `pod` from a probe Pod of its cluster. `issue` maps a cert name to
    (principal, kind) with kind "mesh", "foreign" or "expired"."""
    from harness.platforms.kind import probes  # kind's API client only when probing kind

    row, platform = _pod_row(status, pod), current_platform()
    if not row.get("pod_ip") and not platform.dry_run:
        raise HarnessError(f"pod {pod} has no IP (not running): nothing to probe")
    ca_files = probes.mesh_ca_files(platform, row["context"])
    files: dict[str, bytes] = {}
    send_after: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        work = Path(tmp)
        if ca_files is not None:
            for name, data in ca_files.items():
                atomic_write(work / "ca" / name, data, mode=0o600)
            ca = mesh_ca(work, work / "issued", layout=work / "ca")
            files["root-cert.pem"] = ca.root_cert_path.read_bytes()
            for name, (principal, kind) in issue.items():
                if kind == "foreign":
                    cert = MeshCA.create(work / "foreign").issue_workload(NAMESPACE, principal)
                else:
                    validity = {"validity": timedelta(seconds=1)} if kind == "expired" else {}
                    cert = ca.issue_workload(NAMESPACE, principal, **validity)
                    if kind == "expired":
                        send_after[name] = cert.expires_at + 1.0  # notAfter is whole seconds
                files[f"{name}.crt"] = cert.cert_chain_path.read_bytes()
                files[f"{name}.key"] = cert.key_path.read_bytes()
    requests = [{"label": a.label, "host": row.get("pod_ip") or "<pod IP>", "port": int(row["app_port"]),
                 "path": a.path, "method": a.method, "tls": a.tls, "cert": a.cert,
                 "send_after": send_after.get(a.cert or "")} for a in attempts]
    probe = probes.InClusterProbe(platform, row["context"])
    token = current().undo.register(f"remove security probe {probe.name}", probe.remove,
                                    ledger=ledger_for(platform), kind="probe", undo={"objects": probe.objects})
    try:
        return probe.run(files, requests)
    finally:
        current().undo.run(token)


def _pod_row(status: dict[str, Any], pod: str) -> dict[str, Any]:
    """The status row of `pod`; ConfigError naming the pods there are."""
    pods = {p["name"]: p for p in status["pods"]}
    if pod not in pods:
        raise ConfigError(f"no pod {pod!r}; pods: {', '.join(sorted(pods))}", field="pod")
    return pods[pod]


def sidecar(status: dict[str, Any], pod: str) -> Target:
    return Target(Path(status["state_dir"]), "127.0.0.1", int(_pod_row(status, pod)["inbound_port"]))


def mesh_ca(state_dir: Path, workdir: Path, *, layout: Path | None = None) -> MeshCA:
    """The running mesh's CA, reloaded from its state directory (or a folder in Istio's cacerts `layout`)
    to issue probe identities into `workdir`."""
    ca = layout or state_dir / "pki" / "mesh" / "ca"
    return MeshCA.from_files(ca / "root-cert.pem", ca / "cert-chain.pem", ca / "ca-cert.pem", ca / "ca-key.pem",
                             directory=workdir)


def tls_context(cert: WorkloadCert | None, trust: Path) -> ssl.SSLContext:
    """A client TLS context presenting `cert` (None: no certificate) and trusting the mesh root."""
    context = ssl.create_default_context(cafile=str(trust))
    context.check_hostname = False  # SPIFFE certificates carry no DNS name
    if cert is not None:
        context.load_cert_chain(cert.cert_chain_path, cert.key_path)
    return context


def attempt(context: ssl.SSLContext | None, target: Target, path: str, method: str = "POST",
            host: str = "probe") -> str:
    """One request written byte for byte (an HTTP client would normalise the path first): the status
    code as text, `refused` when no HTTP answer came (closed, reset, handshake failed), or `timeout`."""
    body = b'{"user_id": "u1", "prompt": "hi"}'
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    try:
        with socket.create_connection((target.host, target.port), timeout=TIMEOUT_S) as raw:
            sock = context.wrap_socket(raw) if context is not None else raw
            with sock:
                sock.sendall(head.encode("latin-1") + body)
                answer = _status_line(sock)
    except socket.timeout:
        return "timeout"
    except (ssl.SSLError, OSError):
        return REFUSED
    if not answer.startswith("HTTP/"):
        return REFUSED
    return answer.split(" ")[1]


def _status_line(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data and len(data) < 4096:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def plaintext_attempt(target: Target) -> str:
    """A plaintext HTTP/1.1 request on the mTLS port: the status code, or `refused`."""
    return attempt(None, target, "/health", "GET")


def verdict(name: str, expected: str, observed: dict[str, str]) -> dict[str, Any]:
    """An SLO-style result (the share of attempts answered as expected, objective 1.0), recorded for the
    run's report, plus `expected` and `observed` per attempt."""
    matching = sum(1 for answer in observed.values() if answer == expected)
    now = time.time()
    row = {"name": f"security:{name}", "phase": current().recorder.phase_now(), "source": "security",
           "query": f"every attempt answers {expected}", "value": matching / len(observed), "objective": 1.0,
           "comparator": ">=", "verdict": "pass" if matching == len(observed) else "fail",
           "window_start": now, "window_end": now,
           "detail": "; ".join(f"{attempt}: {answer}" for attempt, answer in observed.items())}
    current().recorder.check(row)
    return {**row, "expected": expected, "observed": observed}


def mtls_refused(pod: str = "ai-agent-v1-us-east-0") -> dict[str, Any]:
    """Plaintext, no certificate, a certificate from a foreign CA, an expired certificate: all refused."""
    status = _status()
    if status["platform"] == "kind":
        allowed = "analytics-service"
        observed = _in_cluster(status, pod, [
            ClusterAttempt("plaintext", "/health", "GET", tls=False), ClusterAttempt("no-certificate", "/api/v1/chat"),
            ClusterAttempt("foreign-ca", "/api/v1/chat", cert="foreign"),
            ClusterAttempt("expired-certificate", "/api/v1/chat", cert="expired")],
            {"foreign": (allowed, "foreign"), "expired": (allowed, "expired")})
        return verdict(f"mtls-refused/{pod}", REFUSED, observed)
    target = sidecar(status, pod)
    observed = {"plaintext": plaintext_attempt(target)}
    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        work = Path(tmp)
        ca = mesh_ca(target.state_dir, work / "issued")
        allowed = "analytics-service"
        foreign = MeshCA.create(work / "foreign").issue_workload(NAMESPACE, allowed)
        expired = ca.issue_workload(NAMESPACE, allowed, validity=timedelta(seconds=1))
        for label, cert in (("no-certificate", None), ("foreign-ca", foreign)):
            observed[label] = attempt(tls_context(cert, ca.root_cert_path), target, "/api/v1/chat")
        time.sleep(max(0.0, expired.expires_at - time.time()) + 1.0)  # notAfter is whole seconds
        observed["expired-certificate"] = attempt(tls_context(expired, ca.root_cert_path), target, "/api/v1/chat")
    return verdict(f"mtls-refused/{pod}", REFUSED, observed)


def unauthorised_request_denied(pod: str = "ai-agent-v1-us-east-0", principal: str = "user-service",
                                path: str = "/api/v1/chat", method: str = "POST") -> dict[str, Any]:
    """A valid mesh identity the authorization policy does not name gets 403 from the sidecar."""
    status = _status()
    if status["platform"] == "kind":
        label = f"{method} {path} as {principal}"
        observed = _in_cluster(status, pod, [ClusterAttempt(label, path, method, cert="principal")],
                               {"principal": (principal, "mesh")})
        return verdict(f"unauthorised-denied/{pod}", "403", observed)
    target = sidecar(status, pod)
    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        ca = mesh_ca(target.state_dir, Path(tmp))
        context = tls_context(ca.issue_workload(NAMESPACE, principal), ca.root_cert_path)
        observed = {f"{method} {path} as {principal}": attempt(context, target, path, method)}
    return verdict(f"unauthorised-denied/{pod}", "403", observed)


def path_bypass_denied(pod: str = "ai-agent-v1-us-east-0", principal: str = "analytics-service",
                       paths: list[str] | None = None) -> dict[str, Any]:
    """Each path variant of a denied path gets 403 (the experiment applies the DENY first)."""
    status = _status()
    if status["platform"] == "kind":
        observed = _in_cluster(status, pod, [ClusterAttempt(path, path, cert="principal")
                                             for path in paths or BYPASS_PATHS], {"principal": (principal, "mesh")})
        return verdict(f"path-bypass-denied/{pod}", "403", observed)
    target = sidecar(status, pod)
    observed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="harness-probe-") as tmp:
        ca = mesh_ca(target.state_dir, Path(tmp))
        context = tls_context(ca.issue_workload(NAMESPACE, principal), ca.root_cert_path)
        for path in paths or BYPASS_PATHS:
            observed[path] = attempt(context, target, path)
    return verdict(f"path-bypass-denied/{pod}", "403", observed)


def gateway_request_denied(path: str = "/api/v1/chat", method: str = "POST") -> dict[str, Any]:
    """A request through the ingress gateway gets 403 (the experiment applies a DENY at the gateway first).
    On kind too the ingress is on 127.0.0.1 (the gateway's NodePort mapped by kind-config)."""
    status = _status()
    url = httpx.URL(status["ingress_url"])
    code = attempt(None, Target(Path(status.get("state_dir") or "."), url.host, url.port or 80), path, method,
                   host=status["ingress_host"])
    return verdict("gateway-denied", "403", {f"{method} {path} via ingress": code})
