"""external-ai-api over TLS with a self-signed certificate, as the local mesh's "external" host."""

from __future__ import annotations

import ssl
import stat

import httpx
import pytest
from cryptography import x509

from tests.services.servicekit import Launcher, ServiceProcess, TlsPair

COMPLETION = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "over tls"}]}


@pytest.fixture(scope="module")
def tls_ai(module_launcher: Launcher, tls_pair: TlsPair) -> ServiceProcess:
    return module_launcher.start(
        "external-ai-api",
        "external-ai-api-tls-0",
        scheme="https",
        verify=tls_pair.client_context(),
        AI_LATENCY_MS="1",
        AI_JITTER_MS="0",
        TLS_CERT_FILE=str(tls_pair.cert_file),
        TLS_KEY_FILE=str(tls_pair.key_file),
    )


def test_the_test_key_is_written_readable_by_its_owner_only(tls_pair: TlsPair) -> None:
    assert stat.S_IMODE(tls_pair.key_file.stat().st_mode) == 0o600


def test_external_ai_api_serves_https_with_the_configured_certificate(
    tls_ai: ServiceProcess, tls_pair: TlsPair
) -> None:
    served = ssl.get_server_certificate(("127.0.0.1", tls_ai.port), timeout=5)
    configured = x509.load_pem_x509_certificate(tls_pair.cert_file.read_bytes())
    assert x509.load_pem_x509_certificate(served.encode()) == configured
    with tls_ai.client() as client:
        response = client.post("/v1/chat/completions", json=COMPLETION)
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert response.headers["x-served-by"] == "external-ai-api-tls-0"


def test_a_client_that_does_not_trust_the_certificate_is_refused(tls_ai: ServiceProcess) -> None:
    with (
        httpx.Client(verify=True, trust_env=False, timeout=5) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{tls_ai.url}/health")


def test_plain_http_to_the_tls_port_gets_no_answer(tls_ai: ServiceProcess) -> None:
    with httpx.Client(trust_env=False, timeout=5) as client, pytest.raises(httpx.HTTPError):
        client.get(f"http://127.0.0.1:{tls_ai.port}/health")
