"""Security probes on kind: a short-lived client Pod without a sidecar makes the requests inside the cluster.

Istio's own tasks test mTLS and authorization this way: a client outside the mesh (the `curl`/`sleep`
sample in a namespace without injection) calls a workload with STRICT mTLS and is refused
(https://istio.io/latest/docs/tasks/security/authentication/mtls-migration/), and a client
presenting a workload certificate calls the sidecar directly
(https://istio.io/latest/docs/tasks/security/authentication/authn-policy/, "mutual TLS deep dive").
Here the client is one Pod in parallel-ai, annotated `sidecar.istio.io/inject: "false"` (so nothing
rewrites its requests: an outbound sidecar would normalise the very paths a bypass probe sends),
running the sample-service image's Python (PROBE_SCRIPT) with the probe's identities mounted from a
Secret. It connects to each target pod's IP and app port, which the target's sidecar captures
(iptables) into its inbound listener, and writes one outcome per attempt as JSON to its termination
message (and stdout): the harness reads it from the Pod's status, through the API only.

Identities: istiod signs workload certificates with the plug-in CA in Secret istio-system/cacerts,
which `harness up` made (install.py). `mesh_ca_files` reads that Secret through the API; the chaos
side (harness.chaos.security) issues the probe's certificates from it in-process, so they chain to
the same root as istiod's (SPIFFE `spiffe://cluster.local/ns/<ns>/sa/<sa>`). TLS attempts offer the
ALPN a sidecar offers for HTTP/1.1 (`istio-http/1.1`, `istio`, `http/1.1`: istio/istio
pilot/pkg/networking/core/v1alpha3 mtlsHTTP11ALPN), so they land on the inbound mTLS filter chain.

The Pod and Secret are created by `InClusterProbe.run` and removed by `remove`; the caller records
`objects` in the fault ledger first (kind `probe`), so a killed run's probe is removed by the next
command (`KindPlatform.remove_probe_objects`).

What the tests (kmock, and PROBE_SCRIPT against TLS servers on 127.0.0.1) cannot show, and only a real
cluster will: that the sample-service image runs this script as uid 65534 with a read-only root and
the Secret mounted 0440/fsGroup; that the kubelet writes the termination message back; that istio-init's
iptables capture a sidecarless pod's connection to the target pod IP into the inbound listener; that
Envoy's STRICT chain closes plaintext, no-certificate, foreign-CA and expired attempts (`refused`) and
answers the harness-issued identity (chained to cacerts, trust domain cluster.local) with RBAC's 403
or the app's answer; that Istio's BASE normalisation meets each bypass path as the local mesh does;
and how long the Pod takes to start on a loaded node (RESULT_TIMEOUT_S bounds it).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.errors import PlatformError
from harness.platforms.kind import render
from harness.platforms.kind.kube import PODS, SECRETS, NamespaceGuard
from harness.platforms.kind.settings import NAMESPACE

if TYPE_CHECKING:
    from harness.platforms.kind.platform import KindPlatform

__all__ = ["InClusterProbe", "PROBE_SCRIPT", "mesh_ca_files", "remove_objects"]

PROBE_LABEL = "harness.parallel-ai/probe"
RESULT_TIMEOUT_S = 180.0  # from create to the Pod's end: image present (up loaded it), a few s of requests
POLL_S = 1.0
DEADLINE_S = 120  # activeDeadlineSeconds: the kubelet stops a probe that hangs, whatever the harness does
MAX_ATTEMPTS = 16  # the termination message holds 4096 bytes
CACERTS_FILES = render.CACERTS_FILES
ALPN = ["istio-http/1.1", "istio", "http/1.1"]
MOUNT = "/probe"

# Runs in the probe Pod: argv[1] the attempts (JSON list), argv[2] the folder of the identities. Each
# attempt: label, host, port, path, method, tls (bool), cert (file stem or null), send_after (epoch s or
# null: an expired certificate is used once its notAfter has passed). Outcome per attempt: the status
# code, `refused` (closed, reset or handshake failed: no HTTP answer) or `timeout`.
PROBE_SCRIPT = r'''
import json, os, socket, ssl, sys, time
attempts, folder = json.loads(sys.argv[1]), sys.argv[2]
alpn = %(alpn)s
outcomes = {}
for a in attempts[:%(max)d]:
    if a.get("send_after"):
        time.sleep(min(30.0, max(0.0, a["send_after"] - time.time())))
    body = b'{"user_id": "u1", "prompt": "hi"}'
    head = ("%%s %%s HTTP/1.1\r\nHost: probe\r\nContent-Type: application/json\r\nContent-Length: %%d\r\n"
            "Connection: close\r\n\r\n" %% (a["method"], a["path"], len(body))).encode("latin-1")
    try:
        with socket.create_connection((a["host"], a["port"]), timeout=5.0) as raw:
            sock = raw
            if a["tls"]:
                context = ssl.create_default_context(cafile=os.path.join(folder, "root-cert.pem"))
                context.check_hostname = False
                context.set_alpn_protocols(alpn)
                if a.get("cert"):
                    context.load_cert_chain(os.path.join(folder, a["cert"] + ".crt"),
                                            os.path.join(folder, a["cert"] + ".key"))
                sock = context.wrap_socket(raw)
            sock.sendall(head + body)
            data = b""
            while b"\r\n" not in data and len(data) < 4096:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                data += chunk
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        outcomes[a["label"]] = line.split(" ")[1] if line.startswith("HTTP/") and " " in line else "refused"
    except socket.timeout:
        outcomes[a["label"]] = "timeout"
    except (ssl.SSLError, OSError):
        outcomes[a["label"]] = "refused"
text = json.dumps(outcomes, sort_keys=True)
print(text)
try:
    with open("/dev/termination-log", "w") as log:
        log.write(text)
except OSError:
    pass
''' % {"alpn": json.dumps(ALPN), "max": MAX_ATTEMPTS}


def mesh_ca_files(platform: "KindPlatform", context: str) -> dict[str, bytes] | None:
    """The plug-in CA istiod signs with (Secret istio-system/cacerts), read through the API; None in a
    dry run (the read is recorded). The guard admits istio-system for this one read only."""
    platform._guard(context)  # noqa: SLF001 - the context guard before any client exists
    api = NamespaceGuard(platform._factory(context), "istio-system")  # noqa: SLF001
    secret = api.get(SECRETS, "istio-system", "cacerts")
    if platform.settings.dry_run:
        return None
    if secret is None:
        raise PlatformError(f"no Secret istio-system/cacerts in {context}: the security probes issue their "
                            "identities from the mesh CA `harness up --platform kind` plugs in; run `up` again")
    data = secret.get("data") or {}
    missing = [name for name in CACERTS_FILES if name not in data]
    if missing:
        raise PlatformError(f"Secret istio-system/cacerts in {context} has no {', '.join(missing)}")
    return {name: base64.b64decode(data[name]) for name in CACERTS_FILES}


class InClusterProbe:
    """One probe client (a Pod and the Secret of its identities) in one cluster of the mesh."""

    def __init__(self, platform: "KindPlatform", context: str) -> None:
        self.platform = platform
        self.context = context
        self.name = f"harness-probe-{os.getpid()}-{time.time_ns() % 10**9:09d}"

    @property
    def objects(self) -> list[dict[str, str]]:
        """What `run` creates, for the fault ledger (deleted in this order)."""
        return [{"context": self.context, "kind": "Pod", "name": self.name},
                {"context": self.context, "kind": "Secret", "name": self.name}]

    def _api(self) -> Any:
        return _api(self.platform, self.context)

    def run(self, files: Mapping[str, bytes], attempts: list[dict[str, Any]]) -> dict[str, str]:
        """Create the Secret and the Pod, wait for the Pod's end, return its outcome per attempt label.
        In a dry run the calls are recorded and every attempt's outcome is `dry-run` (no data: a failure)."""
        if not attempts or len(attempts) > MAX_ATTEMPTS:
            raise PlatformError(f"a probe makes 1 to {MAX_ATTEMPTS} attempts, got {len(attempts)}")
        api = self._api()
        api.create(SECRETS, NAMESPACE, self.secret_document(files))
        api.create(PODS, NAMESPACE, self.pod_document(attempts))
        if self.platform.settings.dry_run:
            api.get(PODS, NAMESPACE, self.name)
            return {attempt["label"]: "dry-run" for attempt in attempts}
        deadline = time.monotonic() + RESULT_TIMEOUT_S
        while True:
            pod = api.get(PODS, NAMESPACE, self.name) or {}
            status = pod.get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed"):
                return self._outcomes(status, attempts)
            if time.monotonic() > deadline:
                raise PlatformError(f"security probe Pod {NAMESPACE}/{self.name} in {self.context} did not end "
                                    f"within {RESULT_TIMEOUT_S:.0f} s (phase {status.get('phase')!r}, "
                                    f"{_waiting_reason(status)})")
            time.sleep(POLL_S)

    def _outcomes(self, status: dict[str, Any], attempts: list[dict[str, Any]]) -> dict[str, str]:
        terminated = next((s.get("state", {}).get("terminated") for s in status.get("containerStatuses") or []
                           if s.get("name") == "probe"), None) or {}
        try:
            outcomes = json.loads(terminated.get("message") or "")
        except ValueError:
            outcomes = None
        labels = {attempt["label"] for attempt in attempts}
        if not isinstance(outcomes, dict) or set(outcomes) != labels:
            raise PlatformError(f"security probe Pod {NAMESPACE}/{self.name} ended {status.get('phase')} "
                                f"(exit {terminated.get('exitCode')}, {terminated.get('reason')}) without an "
                                f"outcome for each attempt; its message: {str(terminated.get('message'))[:300]!r}")
        return {label: str(outcomes[label]) for label in sorted(labels)}

    def secret_document(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.name, "namespace": NAMESPACE, "labels": {PROBE_LABEL: self.name}},
                "data": {name: base64.b64encode(data).decode("ascii") for name, data in sorted(files.items())}}

    def pod_document(self, attempts: list[dict[str, Any]]) -> dict[str, Any]:
        """No sidecar, no service-account token, non-root, read-only root, bounded by the kubelet too."""
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name, "namespace": NAMESPACE,
                         # the label is what Istio's injector reads today; the annotation, older Istio
                         "labels": {"app": "harness-probe", PROBE_LABEL: self.name,
                                    "sidecar.istio.io/inject": "false"},
                         "annotations": {"sidecar.istio.io/inject": "false"}},
            "spec": {
                "restartPolicy": "Never", "activeDeadlineSeconds": DEADLINE_S,
                "automountServiceAccountToken": False, "terminationGracePeriodSeconds": 0,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534},
                "containers": [{
                    "name": "probe", "image": render.sample_image(), "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", PROBE_SCRIPT, json.dumps(attempts), MOUNT],
                    "terminationMessagePolicy": "File",
                    "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "identities", "mountPath": MOUNT, "readOnly": True}],
                }],
                # 0440 + fsGroup: readable by the probe's user only (keys are never world-readable).
                "volumes": [{"name": "identities", "secret": {"secretName": self.name, "defaultMode": 0o440}}],
            },
        }

    def remove(self) -> None:
        remove_objects(self.platform, self.objects)


def remove_objects(platform: "KindPlatform", objects: list[dict[str, str]]) -> None:
    """Delete a probe's Pod and Secret (absent ones are fine), e.g. from the fault ledger of a killed run."""
    kinds = {"Pod": PODS, "Secret": SECRETS}
    for obj in objects:
        if obj.get("kind") not in kinds or not str(obj.get("name", "")).startswith("harness-probe-"):
            raise PlatformError(f"not a security probe object: {obj}")
        api = _api(platform, obj["context"])
        api.delete(kinds[obj["kind"]], NAMESPACE, obj["name"], grace_period_s=0 if obj["kind"] == "Pod" else None)


def _api(platform: "KindPlatform", context: str) -> Any:
    """The guarded API (parallel-ai only) of the mesh's cluster with this context."""
    spec = next((s for s in platform.settings.cluster_specs() if s.context == context), None)
    if spec is None:
        raise PlatformError(f"no cluster of this mesh has the context {context!r}")
    return platform._kube(spec)  # noqa: SLF001 - the platform's guarded, cached client


def _waiting_reason(status: dict[str, Any]) -> str:
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return f"{waiting.get('reason')}: {str(waiting.get('message'))[:200]}"
    return "no container status"
