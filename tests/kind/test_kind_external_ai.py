"""The external AI API on kind: a stand-in in namespace external-ai that the mesh reaches as api.openai.com.

What is checked without a cluster: every document validates strictly; the ServiceEntry overlay is the
shipped one plus one endpoint (the local platform's file is untouched); the endpoint, Service,
container and Secret agree on names and ports; the callers trust the external CA and nothing else
changes; `up` makes a separate CA whose root the callers get and whose certificate the stand-in serves
(a TLS handshake checks the trust path the app takes), never printing or keeping the key.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import socket
import ssl
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from harness.errors import ManifestError
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents, validate_document
from harness.mesh.loader import load_documents
from harness.mesh.schema import default_manifest_paths
from harness.platforms.kind import Command, KindPlatform, KindSettings, Recorder, RecordingRunner, render
from harness.platforms.kind.install import Installer
from harness.platforms.kind.validation import validate_kind_document
from harness.services import from_env
from tests.kind.kindkit import ScriptedRunner

ONE = KindSettings().cluster_specs()[0]
THREE = KindSettings(clusters=3).cluster_specs()
SHIPPED_SERVICE_ENTRY = MANIFESTS_DIR / "istio" / "service-entry.yaml"
OVERLAY = render.KIND_MANIFESTS / render.SERVICE_ENTRY_OVERLAY
STAND_IN_FQDN = "external-ai-api.external-ai.svc.cluster.local"


def _of(docs: list[dict], kind: str, name: str | None = None) -> dict:
    (found,) = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def _app(deployment: dict) -> dict:
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app")


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


# --- the ServiceEntry overlay ------------------------------------------------------------------------------


def test_the_overlay_service_entry_validates_strictly_against_istios_crd() -> None:
    (overlay,) = load_yaml_documents(OVERLAY)
    validate_document(overlay, file=OVERLAY, index=0)
    validate_kind_document(overlay, source=OVERLAY)


def test_a_misspelt_endpoint_field_is_rejected_so_the_schema_really_checks_endpoints() -> None:
    (overlay,) = load_yaml_documents(OVERLAY)
    overlay["spec"]["endpoints"][0]["adress"] = overlay["spec"]["endpoints"][0].pop("address")
    with pytest.raises(ManifestError, match="adress"):
        validate_document(overlay, file=OVERLAY, index=0)


def test_the_overlay_is_the_shipped_service_entry_plus_one_endpoint_at_the_stand_in() -> None:
    (shipped,) = load_yaml_documents(SHIPPED_SERVICE_ENTRY)
    (overlay,) = load_yaml_documents(OVERLAY)
    assert overlay["metadata"] == shipped["metadata"] == {"name": "external-ai-api", "namespace": "parallel-ai"}
    assert {k: v for k, v in overlay["spec"].items() if k != "endpoints"} == shipped["spec"]
    assert overlay["spec"]["resolution"] == "DNS" and overlay["spec"]["location"] == "MESH_EXTERNAL"
    assert overlay["spec"]["endpoints"] == [{"address": STAND_IN_FQDN}]


def test_the_local_platforms_service_entry_is_left_as_shipped() -> None:
    (shipped,) = load_yaml_documents(SHIPPED_SERVICE_ENTRY)
    assert "endpoints" not in shipped["spec"]


def test_everything_kind_applies_and_reset_restores_carries_the_overlay_in_place_of_the_shipped_entry() -> None:
    docs = render.istio_documents()
    mesh = [doc for doc, _ in load_documents(default_manifest_paths(("istio",)))]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [(d["kind"], d["metadata"]["name"]) for d in mesh]
    (overlay,) = load_yaml_documents(OVERLAY)
    assert _of(docs, "ServiceEntry") == render.exported_here(overlay)  # exported to parallel-ai only
    for index, doc in enumerate(docs):
        validate_kind_document(doc, source="istio (kind)", index=index)


def test_an_overlay_that_names_no_shipped_resource_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    (overlay,) = load_yaml_documents(OVERLAY)
    overlay["metadata"]["name"] = "external-ai-api-typo"
    monkeypatch.setattr(render, "template", lambda relative: [overlay])
    with pytest.raises(ManifestError, match="the overlay names no shipped Istio resource: "
                                            r"\[\('ServiceEntry', 'parallel-ai', 'external-ai-api-typo'\)\]"):
        render.istio_documents()


def test_reset_on_kind_reapplies_the_overlay_not_the_shipped_entry(mesh, platform) -> None:
    platform.reset()
    path = "/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/serviceentries/external-ai-api"
    assert mesh.get(path)["spec"]["endpoints"] == [{"address": STAND_IN_FQDN}]


# --- the stand-in ------------------------------------------------------------------------------------------


def test_every_stand_in_document_validates_strictly_with_placeholders() -> None:
    docs = render.external_ai_documents()
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Namespace", "external-ai"), ("Secret", "external-ai-api-tls"), ("Service", "external-ai-api"),
        ("Deployment", "external-ai-api")]
    for index, doc in enumerate(docs):
        validate_kind_document(doc, source="external-ai", index=index)


def test_the_stand_in_lives_outside_the_mesh_in_its_own_namespace_without_a_sidecar() -> None:
    docs = render.external_ai_documents()
    assert _of(docs, "Namespace")["metadata"]["labels"] == {"istio-injection": "disabled"}
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"external-ai"}


def test_the_endpoint_service_and_container_agree_on_the_name_and_port_443() -> None:
    docs = render.external_ai_documents()
    service, deployment = _of(docs, "Service"), _of(docs, "Deployment")
    assert f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local" == STAND_IN_FQDN
    (entry_port,) = _of(render.istio_documents(), "ServiceEntry")["spec"]["ports"]
    (port,) = service["spec"]["ports"]
    assert port["port"] == entry_port["number"] == 443  # the endpoint inherits the entry's port
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (container_port,) = _app(deployment)["ports"]
    assert container_port == {"name": port["targetPort"], "containerPort": 443, "protocol": "TCP"}
    assert _env(_app(deployment))["PORT"] == "443"
    sysctls = deployment["spec"]["template"]["spec"]["securityContext"]["sysctls"]
    assert {"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"} in sysctls  # 443 without root


def test_the_stand_in_runs_the_sample_image_as_external_ai_api_with_the_secrets_certificate() -> None:
    deployment = _of(render.external_ai_documents(), "Deployment")
    app, pod = _app(deployment), deployment["spec"]["template"]["spec"]
    assert app["image"] == render.sample_image()
    env = _env(app)
    assert env["SERVICE_NAME"] == "external-ai-api" and "MESH_OUTBOUND" not in env
    (mount,) = app["volumeMounts"]
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"] and mount["readOnly"] is True
    assert volume["secret"]["secretName"] == render.EXTERNAL_AI_TLS_SECRET
    assert volume["secret"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 10001
    secret_keys = sorted(render.external_ai_tls_secret()["data"])
    assert secret_keys == ["tls.crt", "tls.key"]
    assert (env["TLS_CERT_FILE"], env["TLS_KEY_FILE"]) == tuple(f"{mount['mountPath']}/{k}" for k in secret_keys)


def test_the_tls_secret_holds_placeholders_unless_a_ca_was_made() -> None:
    secret = render.external_ai_tls_secret()
    assert secret["type"] == "kubernetes.io/tls"
    assert secret["metadata"] == {"name": "external-ai-api-tls", "namespace": "external-ai"}
    assert all(base64.b64decode(v) == render.PLACEHOLDER_PEM for v in secret["data"].values())


def test_no_key_material_or_secret_is_committed_under_the_kind_manifests() -> None:
    for path in render.KIND_MANIFESTS.rglob("*.yaml"):
        text = path.read_text()
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text, path
        assert all(doc.get("kind") != "Secret" for doc in load_yaml_documents(path)), path


# --- the callers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [ONE, *THREE], ids=lambda s: s.name)
def test_every_ai_agent_trusts_the_external_ca_from_the_configmap_in_its_cluster(spec) -> None:
    docs = render.workload_documents(spec)
    configmap = _of(docs, "ConfigMap", render.EXTERNAL_AI_CA_CONFIGMAP)
    assert configmap["metadata"]["namespace"] == "parallel-ai"
    assert configmap["data"] == {"root-cert.pem": render.PLACEHOLDER_PEM.decode()}
    agents = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["labels"].get("app") == "ai-agent"]
    assert agents, "every cluster runs an ai-agent"
    for agent in agents:
        app, pod = _app(agent), agent["spec"]["template"]["spec"]
        assert _env(app)["EXTERNAL_AI_CA_FILE"] == "/etc/external-ai-ca/root-cert.pem"
        assert "MESH_OUTBOUND" not in _env(app)  # direct mode, where the file is used
        assert {"name": "external-ai-ca", "mountPath": "/etc/external-ai-ca", "readOnly": True} in app["volumeMounts"]
        assert {"name": "external-ai-ca", "configMap": {"name": "external-ai-ca"}} in pod["volumes"]
    for index, doc in enumerate(docs):
        validate_kind_document(doc, source=f"workloads of {spec.name}", index=index)


def test_only_the_ai_agent_deployments_change_and_the_shipped_deployments_stay_as_they_are() -> None:
    shipped = {d["metadata"]["name"]: d for d in render.mesh_kubernetes_documents() if d["kind"] == "Deployment"}
    rendered = {d["metadata"]["name"]: d for d in render.workload_documents(ONE) if d["kind"] == "Deployment"}
    # Every Deployment shares its pod's PID namespace on kind (render.kill_ready); only ai-agent's change more.
    assert all(rendered[name]["spec"]["template"]["spec"]["shareProcessNamespace"] is True for name in shipped)
    changed = sorted(name for name in shipped if rendered[name] != render.kill_ready(shipped[name]))
    assert changed == ["ai-agent-v1-us-east", "ai-agent-v1-us-west", "ai-agent-v2-eu-west"]
    assert all("EXTERNAL_AI_CA_FILE" not in _env(_app(d)) for d in shipped.values())
    assert "EXTERNAL_AI_CA_FILE" not in (MANIFESTS_DIR / "kubernetes" / "deployments.yaml").read_text()
    assert render.kill_ready(render.trust_external_ai_ca(shipped["ai-agent-v1-us-east"])) == rendered["ai-agent-v1-us-east"]


def test_patching_twice_changes_nothing_more_and_the_input_is_left_alone() -> None:
    agent = next(d for d in render.mesh_kubernetes_documents() if d["kind"] == "Deployment"
                 and d["metadata"]["labels"]["app"] == "ai-agent")
    before = copy.deepcopy(agent)
    once = render.trust_external_ai_ca(agent)
    assert render.trust_external_ai_ca(once) == once and agent == before
    validate_kind_document(once, source="patched")


# --- the run-time CA, end to end -----------------------------------------------------------------------------


@pytest.fixture
def made_at_up(tmp_path: Path) -> render.ExternalAiTls:
    tls = Installer(KindSettings(), ScriptedRunner())._make_external_ca(tmp_path)
    assert tls is not None
    return tls


def test_up_makes_a_certificate_for_api_openai_com_from_a_separate_external_ca(made_at_up) -> None:
    leaf, *chain = x509.load_pem_x509_certificates(made_at_up.cert_chain)
    (root,) = x509.load_pem_x509_certificates(made_at_up.root)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["api.openai.com"]
    leaf.verify_directly_issued_by(root)
    assert b"PRIVATE KEY" in made_at_up.key and chain == [root]


def test_a_dry_run_makes_no_ca_and_leaves_nothing_behind(tmp_path: Path) -> None:
    assert Installer(KindSettings(dry_run=True), RecordingRunner(Recorder()))._make_external_ca(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str) -> bytes:
    """One TLS connection on 127.0.0.1 (the server sends b"ok"); the client's verification error is raised."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve_once() -> None:
            connection, _ = listener.accept()
            with connection, contextlib.suppress(ssl.SSLError, OSError), \
                    server.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve_once, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=5) as raw, \
                    client.wrap_socket(raw, server_hostname=server_hostname) as tls:
                return tls.recv(2)
        finally:
            thread.join(5)


def test_the_app_trusts_the_stand_in_with_the_root_it_is_given_and_checks_the_name(
        made_at_up: render.ExternalAiTls, tmp_path: Path) -> None:
    """The trust path on kind, in one handshake on 127.0.0.1: the stand-in serves the Secret's tls.crt and
    tls.key, ai-agent's context (harness.services' own, from EXTERNAL_AI_CA_FILE = the ConfigMap's root)
    verifies it for api.openai.com, as the sidecar passes the app's TLS through untouched."""
    from harness.services.outbound import external_tls_context

    secret = render.external_ai_tls_secret(made_at_up)
    configmap = render.external_ai_ca_configmap(made_at_up.root)
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).write_bytes(base64.b64decode(secret["data"][name]))
    (tmp_path / "root-cert.pem").write_text(configmap["data"]["root-cert.pem"])
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    config = from_env({"SERVICE_NAME": "ai-agent", "EXTERNAL_AI_CA_FILE": str(tmp_path / "root-cert.pem")})
    client = external_tls_context(config)
    assert client is not None
    assert _handshake(server, client, "api.openai.com") == b"ok"
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(server, client, "api.anthropic.com")
    with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
        _handshake(server, ssl.create_default_context(), "api.openai.com")  # public CAs only: kind's old gap


def test_the_stand_in_and_ai_agent_environments_pass_the_services_own_validation(
        made_at_up: render.ExternalAiTls, tmp_path: Path) -> None:
    """The rendered env with the mounted files in place of the mount paths starts both services."""
    files = {"tls.crt": made_at_up.cert_chain, "tls.key": made_at_up.key, "root-cert.pem": made_at_up.root}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    def local(env: dict[str, str]) -> dict[str, str]:
        return {k: str(tmp_path / Path(v).name) if v.startswith("/etc/") else v for k, v in env.items()}

    stand_in_env = _env(_app(_of(render.external_ai_documents(), "Deployment")))
    stand_in = from_env({**local(stand_in_env), "POD_NAME": "external-ai-api-0"})
    assert (stand_in.service_name, stand_in.port) == ("external-ai-api", 443)
    assert (stand_in.tls_cert_file, stand_in.tls_key_file) == (tmp_path / "tls.crt", tmp_path / "tls.key")
    agent = _of(render.workload_documents(ONE), "Deployment", "ai-agent-v1-us-east")
    config = from_env({**local(_env(_app(agent))), "POD_NAME": "ai-agent-v1-us-east-0"})
    assert config.external_ai_ca_file == tmp_path / "root-cert.pem" and config.mesh_outbound is None
    (host,) = _of(render.istio_documents(), "ServiceEntry")["spec"]["hosts"]
    assert config.external_ai_host == render.EXTERNAL_AI_HOST == host


def test_a_real_up_gives_the_stand_in_and_the_callers_the_same_fresh_external_ca_not_the_mesh_one() -> None:
    seen: dict[str, list[dict]] = {}

    def reply(command: Command) -> str:
        if command.argv[:2] == ("docker", "info"):
            return f"27.3.1 {16 * 1024 ** 3}"
        if command.argv[:2] == ("istioctl", "version"):
            return "client version: 1.30.3"
        if command.stdin_summary and command.argv[-2:] == ("-f", "-"):
            seen[command.stdin_summary] = list(yaml.safe_load_all(command.stdin or ""))
        return ""

    installer = Installer(KindSettings(), ScriptedRunner(reply))
    installer._probe = lambda url, host, what: None  # type: ignore[method-assign]
    installer.up()
    docs = [doc for applied in seen.values() for doc in applied]
    secret = _of(docs, "Secret", render.EXTERNAL_AI_TLS_SECRET)
    leaf = x509.load_pem_x509_certificates(base64.b64decode(secret["data"]["tls.crt"]))[0]
    assert b"PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"])
    root_pem = _of(docs, "ConfigMap", "external-ai-ca")["data"]["root-cert.pem"]
    (root,) = x509.load_pem_x509_certificates(root_pem.encode())
    leaf.verify_directly_issued_by(root)
    mesh_root_pem = base64.b64decode(_of(docs, "Secret", "cacerts")["data"]["root-cert.pem"])
    mesh_root = x509.load_pem_x509_certificate(mesh_root_pem)
    assert mesh_root != root and mesh_root.public_key() != root.public_key()


# --- the order of `up` -----------------------------------------------------------------------------------------


def test_dry_run_applies_the_stand_in_in_every_cluster_before_its_workloads_and_waits_for_it() -> None:
    steps = KindPlatform(KindSettings(dry_run=True, clusters=3)).up()["dry_run"]
    for spec in THREE:
        apply = f"$ kubectl --context {spec.context} apply --server-side --field-manager=harness --force-conflicts -f -"
        stand_in = steps.index(f"{apply} <<< Namespace external-ai, Secret external-ai/external-ai-api-tls, "
                               "Service external-ai/external-ai-api, Deployment external-ai/external-ai-api")
        workloads = next(i for i, s in enumerate(steps) if s.startswith(f"{apply} <<< Namespace parallel-ai,"))
        istio = next(i for i, s in enumerate(steps) if s.startswith(f"{apply} <<< AuthorizationPolicy"))
        install = steps.index(f"$ istioctl install --context {spec.context} -y -f "
                              f"/tmp/harness-kind-dry-run/istio-operator-{spec.name}.yaml")
        wait = steps.index(f"$ kubectl --context {spec.context} -n external-ai wait --for=condition=Available "
                           "deployment/external-ai-api --timeout=600s")
        assert install < stand_in < workloads < istio < wait
        assert "ConfigMap parallel-ai/external-ai-ca" in steps[workloads]
