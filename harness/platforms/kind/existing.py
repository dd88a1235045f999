"""What `up` finds already in place, read before it changes anything: so that a second `up` (after a
partial failure) or a cluster the user already has is completed, never silently replaced.

- the mesh root in istio-system/cacerts: re-used, so pods started by the first `up` keep trusting the
  sidecars started by the second (a new root would break mTLS until every pod restarts);
- the external CA's server certificate and root (external-ai/external-ai-api-tls, parallel-ai/external-ai-ca);
- an installed Istio (istiod's image tag): on a cluster the harness did not create, Istio is installed
  only when absent, and one of another minor version is reported, not replaced;
- each node's address on the `kind` Docker network (the east-west gateways' address, meshNetworks).
Every read is a command in the runner, so a dry run shows it (and finds nothing).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from harness.errors import PlatformError
from harness.platforms.kind import render
from harness.platforms.kind.commands import Command, CommandRunner
from harness.platforms.kind.settings import EXTERNAL_NAMESPACE, NAMESPACE, ClusterSpec

KIND_NETWORK = "kind"  # the Docker network kind puts every node on


def _get_json(runner: CommandRunner, spec: ClusterSpec, namespace: str, what: str) -> dict | None:
    result = runner.run(Command(("kubectl", "--context", spec.context, "-n", namespace, "get", what, "-o", "json",
                                 "--ignore-not-found"), timeout_s=60))
    if not result.stdout.strip():
        return None
    try:
        return json.loads(result.stdout)
    except ValueError as exc:
        raise PlatformError(f"`kubectl get {what}` in {spec.context} answered no JSON: {exc}") from exc


def _decoded(data: dict, key: str, where: str) -> bytes:
    try:
        return base64.b64decode(data[key], validate=True)
    except (KeyError, binascii.Error) as exc:
        raise PlatformError(f"{where} has no valid {key!r}; delete it (or the cluster) and run `up` again") from exc


def existing_cacerts(runner: CommandRunner, specs: tuple[ClusterSpec, ...]) -> dict[str, bytes] | None:
    """The mesh CA already in the clusters (every cluster must hold the same root), or None."""
    found: dict[str, dict[str, bytes]] = {}
    for spec in specs:
        secret = _get_json(runner, spec, "istio-system", "secret/cacerts")
        if secret is not None:
            where = f"Secret istio-system/cacerts in {spec.context}"
            found[spec.name] = {name: _decoded(secret.get("data") or {}, name, where) for name in render.CACERTS_FILES}
    roots = {files["root-cert.pem"] for files in found.values()}
    if len(roots) > 1:
        raise PlatformError(f"the clusters {', '.join(sorted(found))} hold different mesh roots in istio-system/cacerts: "
                            "their sidecars cannot trust each other; `harness down --platform kind` and `up` again")
    return next(iter(found.values())) if found else None


def existing_external_tls(runner: CommandRunner, spec: ClusterSpec) -> render.ExternalAiTls | None:
    """The external AI API stand-in's certificate and its CA's root, when a previous `up` left both."""
    secret = _get_json(runner, spec, EXTERNAL_NAMESPACE, f"secret/{render.EXTERNAL_AI_TLS_SECRET}")
    configmap = _get_json(runner, spec, NAMESPACE, f"configmap/{render.EXTERNAL_AI_CA_CONFIGMAP}")
    if secret is None or configmap is None:
        return None
    where = f"Secret {EXTERNAL_NAMESPACE}/{render.EXTERNAL_AI_TLS_SECRET} in {spec.context}"
    root = ((configmap.get("data") or {}).get(render.EXTERNAL_AI_CA_KEY) or "").encode()
    if not root.strip():
        return None
    return render.ExternalAiTls(cert_chain=_decoded(secret.get("data") or {}, "tls.crt", where),
                                key=_decoded(secret.get("data") or {}, "tls.key", where), root=root)


@dataclass(frozen=True)
class IstioFound:
    """Istio found in a cluster: istiod's image and its version (tag), None when there is no istiod."""

    image: str | None

    @property
    def version(self) -> str | None:
        return self.image.rpartition(":")[2] if self.image and ":" in self.image else None

    def same_minor(self, wanted: str) -> bool:
        return self.version is not None and self.version.split(".")[:2] == wanted.split(".")[:2]


def installed_istio(runner: CommandRunner, spec: ClusterSpec) -> IstioFound:
    result = runner.run(Command(("kubectl", "--context", spec.context, "-n", "istio-system", "get", "deployment/istiod",
                                 "--ignore-not-found", "-o", "jsonpath={.spec.template.spec.containers[0].image}"),
                                timeout_s=60))
    return IstioFound(result.stdout.strip() or None)


def node_address(runner: CommandRunner, spec: ClusterSpec) -> str:
    """The cluster's control-plane node's address on the `kind` network (a placeholder in a dry run)."""
    node = f"{spec.name}-control-plane"
    result = runner.run(Command(("docker", "inspect", "-f",
                                 f'{{{{(index .NetworkSettings.Networks "{KIND_NETWORK}").IPAddress}}}}', node),
                                timeout_s=60))
    address = result.stdout.strip()
    if runner.dry_run:
        return address or f"<address of {node} on the {KIND_NETWORK} network>"
    if not address:
        raise PlatformError(f"the node {node} has no address on the Docker network {KIND_NETWORK!r}; is the cluster "
                            "up (`kind get clusters`)?")
    return address
