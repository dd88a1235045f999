"""EXTERNAL_AI_CA_FILE: in direct mode (no MESH_OUTBOUND, as on kind) ai-agent calls https://EXTERNAL_AI_HOST
itself and trusts the file's roots besides the public CAs; a bad file stops the process with exit 2.

The stand-in is a real external-ai-api serving TLS on 127.0.0.1 with a self-signed certificate for
DNS:localhost; direct mode resolves the name, so the agents call it as localhost:<port>.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.errors import ConfigError
from harness.services import from_env
from harness.services.outbound import external_tls_context
from tests.services.servicekit import REPO, Launcher, ServiceProcess, TlsPair, make_self_signed, service_env

CHAT = {"user_id": "alice", "prompt": "who answers on kind?"}


@dataclass(frozen=True)
class Direct:
    """user, analytics and two external-ai-api stand-ins, and ai-agents calling them directly."""

    localhost_pair: TlsPair
    ai: ServiceProcess  # certificate for DNS:localhost
    trusting: ServiceProcess  # EXTERNAL_AI_CA_FILE = the stand-in's certificate
    public_only: ServiceProcess  # no EXTERNAL_AI_CA_FILE: the gap kind had
    wrong_name: ServiceProcess  # trusts a certificate for api.openai.com, served where localhost is called

    @staticmethod
    def chat(agent: ServiceProcess) -> httpx.Response:
        with agent.client() as client:
            return client.post("/api/v1/chat", json=CHAT)


@pytest.fixture(scope="module")
def localhost_pair(tmp_path_factory: pytest.TempPathFactory) -> TlsPair:
    return make_self_signed(tmp_path_factory.mktemp("localhost-tls"), host="localhost")


@pytest.fixture(scope="module")
def direct(module_launcher: Launcher, localhost_pair: TlsPair, tls_pair: TlsPair) -> Iterator[Direct]:
    def stand_in(pod: str, pair: TlsPair) -> ServiceProcess:
        return module_launcher.spawn(
            "external-ai-api", pod, scheme="https", verify=pair.client_context(), AI_LATENCY_MS="1",
            AI_JITTER_MS="0", TLS_CERT_FILE=str(pair.cert_file), TLS_KEY_FILE=str(pair.key_file),
        )

    user = module_launcher.spawn("user", "user-direct-0")
    analytics = module_launcher.spawn("analytics", "analytics-direct-0")
    ai = stand_in("external-ai-api-localhost-0", localhost_pair)
    openai_named = stand_in("external-ai-api-openai-0", tls_pair)
    for proc in (user, analytics, ai, openai_named):
        proc.wait_healthy()
    mesh = {"USER_SERVICE_HOST": f"127.0.0.1:{user.port}", "ANALYTICS_SERVICE_HOST": f"127.0.0.1:{analytics.port}",
            "UPSTREAM_TIMEOUT_S": "5"}
    trusting = module_launcher.spawn("ai-agent", "ai-agent-trusting-0", EXTERNAL_AI_HOST=f"localhost:{ai.port}",
                                     EXTERNAL_AI_CA_FILE=str(localhost_pair.cert_file), **mesh)
    public_only = module_launcher.spawn("ai-agent", "ai-agent-public-0", EXTERNAL_AI_HOST=f"localhost:{ai.port}",
                                        **mesh)
    wrong_name = module_launcher.spawn("ai-agent", "ai-agent-wrong-name-0",
                                       EXTERNAL_AI_HOST=f"localhost:{openai_named.port}",
                                       EXTERNAL_AI_CA_FILE=str(tls_pair.cert_file), **mesh)
    for proc in (trusting, public_only, wrong_name):
        proc.wait_healthy()
    yield Direct(localhost_pair, ai, trusting, public_only, wrong_name)


# --- the call over TLS -----------------------------------------------------------------------------------


def test_with_the_ca_file_a_direct_chat_reaches_the_stand_in_over_verified_tls(direct: Direct) -> None:
    response = direct.chat(direct.trusting)
    assert response.status_code == 200, response.text
    assert response.json()["reply"].startswith("[external-ai-api-localhost-0] simulated answer to: who answers")


def test_without_the_ca_file_the_stand_in_is_refused_and_the_chat_is_a_502_naming_the_certificate(
    direct: Direct,
) -> None:
    response = direct.chat(direct.public_only)
    assert response.status_code == 502
    body = response.json()
    assert body["upstream"] == f"localhost:{direct.ai.port}" and body["status"] is None
    assert "CERTIFICATE_VERIFY_FAILED" in body["reason"]


def test_a_trusted_root_does_not_excuse_a_certificate_for_another_name(direct: Direct) -> None:
    response = direct.chat(direct.wrong_name)
    assert response.status_code == 502
    assert "CERTIFICATE_VERIFY_FAILED" in response.json()["reason"]
    assert "Hostname mismatch" in response.json()["reason"], response.json()["reason"]


def test_the_ca_file_adds_to_the_public_roots_instead_of_replacing_them(localhost_pair: TlsPair) -> None:
    public = len(ssl.create_default_context(cafile=_certifi()).get_ca_certs())
    config = from_env({"SERVICE_NAME": "ai-agent", "EXTERNAL_AI_CA_FILE": str(localhost_pair.cert_file)})
    context = external_tls_context(config)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    roots = context.get_ca_certs()
    assert len(roots) == public + 1
    assert ((("commonName", "localhost"),),) in [root["subject"] for root in roots]


def test_without_the_ca_file_the_transport_keeps_its_public_only_default() -> None:
    assert external_tls_context(from_env({"SERVICE_NAME": "ai-agent"})) is None


def test_a_bundle_of_several_roots_is_read_whole(tmp_path: Path, localhost_pair: TlsPair, tls_pair: TlsPair) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(localhost_pair.cert_file.read_bytes() + tls_pair.cert_file.read_bytes())
    context = external_tls_context(from_env({"SERVICE_NAME": "ai-agent", "EXTERNAL_AI_CA_FILE": str(bundle)}))
    assert context is not None
    subjects = [root["subject"] for root in context.get_ca_certs()]
    assert ((("commonName", "localhost"),),) in subjects and ((("commonName", "api.openai.com"),),) in subjects


# --- validation ------------------------------------------------------------------------------------------


def test_the_variable_is_optional_and_read_as_a_path(localhost_pair: TlsPair) -> None:
    assert from_env({"SERVICE_NAME": "ai-agent"}).external_ai_ca_file is None
    config = from_env({"SERVICE_NAME": "ai-agent", "EXTERNAL_AI_CA_FILE": str(localhost_pair.cert_file)})
    assert config.external_ai_ca_file == localhost_pair.cert_file


@pytest.mark.parametrize("name", ["missing.pem", "."], ids=["missing", "a-directory"])
def test_a_ca_file_that_is_not_a_file_is_an_error_naming_the_variable(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"SERVICE_NAME": "ai-agent", "EXTERNAL_AI_CA_FILE": str(tmp_path / name)})
    assert caught.value.field == "EXTERNAL_AI_CA_FILE"
    assert str(caught.value).startswith("EXTERNAL_AI_CA_FILE: expected a readable file;")


def test_a_ca_file_without_a_pem_certificate_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PLACEHOLDER-----\nnot a certificate\n-----END PLACEHOLDER-----\n")
    with pytest.raises(ConfigError, match="EXTERNAL_AI_CA_FILE: expected a readable PEM bundle of CA certificates"):
        from_env({"SERVICE_NAME": "ai-agent", "EXTERNAL_AI_CA_FILE": str(garbage)})


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_ca_file_is_an_error_naming_the_variable(tmp_path: Path, localhost_pair: TlsPair) -> None:
    locked = tmp_path / "locked.pem"
    locked.write_bytes(localhost_pair.cert_file.read_bytes())
    locked.chmod(0)
    with pytest.raises(ConfigError, match="EXTERNAL_AI_CA_FILE: expected a readable PEM bundle .*Permission denied"):
        from_env({"SERVICE_NAME": "ai-agent", "EXTERNAL_AI_CA_FILE": str(locked)})


def test_the_ca_file_applies_with_mesh_outbound_too_because_the_app_originates_the_tls(
    localhost_pair: TlsPair,
) -> None:
    """Locally the sidecar passes the app's TLS through by SNI (Istio's treatment of a ServiceEntry port of
    protocol HTTPS), so the app verifies the certificate on both platforms."""
    config = from_env({"SERVICE_NAME": "ai-agent", "MESH_OUTBOUND": "http://127.0.0.1:15001",
                       "EXTERNAL_AI_CA_FILE": str(localhost_pair.cert_file)})
    assert config.external_ai_ca_file == localhost_pair.cert_file
    assert external_tls_context(config) is not None


def test_a_missing_ca_file_makes_the_process_exit_2_naming_the_variable(tmp_path: Path) -> None:
    env = service_env("ai-agent", "ai-agent-bad-ca-0", 8080, EXTERNAL_AI_CA_FILE=str(tmp_path / "nope.pem"))
    result = subprocess.run([sys.executable, "-m", "harness.services"], env=env, cwd=REPO, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert f"EXTERNAL_AI_CA_FILE: expected a readable file; '{tmp_path / 'nope.pem'}' does not exist" in result.stderr


def _certifi() -> str:
    import certifi

    return certifi.where()
