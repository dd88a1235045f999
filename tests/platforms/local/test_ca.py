"""Specifications of the local mesh CA, down to a real mTLS handshake through Envoy."""

from __future__ import annotations

import http.client
import os
import ssl
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from harness.errors import ConfigError
from harness.pki import MeshCA, WorkloadCert

NAMESPACE = "parallel-ai"
ALLOWED_SA = "ai-agent-service"
ALLOWED_ID = f"spiffe://cluster.local/ns/{NAMESPACE}/sa/{ALLOWED_SA}"


def _pem_certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _verify_client_chain(cert: WorkloadCert, trust_anchors: Path) -> list[x509.Certificate]:
    """Verify like a TLS server verifies a client: served chain against the anchors; returns the built chain."""
    leaf, *intermediates = _pem_certs(cert.cert_chain_path)
    verifier = PolicyBuilder().store(Store(_pem_certs(trust_anchors))).build_client_verifier()
    return verifier.verify(leaf, intermediates).chain


def _make_ca_cert(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki_source = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value if issuer_cert else ski
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(aki_source), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture
def user_cacerts(tmp_path: Path) -> SimpleNamespace:
    """A user's CA as Istio's cacerts secret holds it: an offline root and an intermediate that signs."""
    root_key, ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _make_ca_cert("user root", root_key, None)
    intermediate = _make_ca_cert("user intermediate", ca_key, (root, root_key))
    folder = tmp_path / "cacerts"
    folder.mkdir()
    files = SimpleNamespace(
        root_cert=folder / "root-cert.pem",
        cert_chain=folder / "cert-chain.pem",
        ca_cert=folder / "ca-cert.pem",
        ca_key=folder / "ca-key.pem",
        root=root,
        intermediate=intermediate,
    )
    files.root_cert.write_bytes(_pem(root))
    files.cert_chain.write_bytes(_pem(intermediate, root))
    files.ca_cert.write_bytes(_pem(intermediate))
    files.ca_key.write_bytes(_key_pem(ca_key))
    return files


def _from_user_files(files: SimpleNamespace, directory: Path) -> MeshCA:
    return MeshCA.from_files(
        files.root_cert, files.cert_chain, files.ca_cert, files.ca_key, directory=directory
    )


def test_workload_cert_san_is_exactly_the_spiffe_uri(tmp_path: Path) -> None:
    cert = MeshCA.create(tmp_path).issue_workload(NAMESPACE, "user-service")

    leaf = _pem_certs(cert.cert_chain_path)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.spiffe_id == "spiffe://cluster.local/ns/parallel-ai/sa/user-service"
    assert list(san.value) == [x509.UniformResourceIdentifier(cert.spiffe_id)]
    assert san.critical  # the subject is empty, as in Istio's workload certificates
    assert leaf.subject == x509.Name([])
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(hours=24, minutes=5)
    assert leaf.not_valid_after_utc - datetime.now(timezone.utc) > timedelta(hours=23)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"


def test_a_workload_lifetime_can_be_chosen_and_is_reported(tmp_path: Path) -> None:
    cert = MeshCA.create(tmp_path).issue_workload(NAMESPACE, "user-service", validity=timedelta(days=7))

    leaf = _pem_certs(cert.cert_chain_path)[0]
    assert timedelta(days=6, hours=23) < leaf.not_valid_after_utc - datetime.now(timezone.utc) <= timedelta(days=7)
    assert cert.expires_at == leaf.not_valid_after_utc.timestamp()


def test_a_lifetime_of_zero_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="validity: expected a positive certificate lifetime"):
        MeshCA.create(tmp_path).issue_workload(NAMESPACE, "user-service", validity=timedelta(0))


def test_a_server_certificate_lasts_90_days_as_a_public_cas(tmp_path: Path) -> None:
    cert = MeshCA.create(tmp_path).issue_server("api.openai.com")

    leaf = _pem_certs(cert.cert_chain_path)[0]
    assert timedelta(days=89) < leaf.not_valid_after_utc - datetime.now(timezone.utc) <= timedelta(days=90)


def test_trust_domain_is_part_of_the_spiffe_id(tmp_path: Path) -> None:
    cert = MeshCA.create(tmp_path, trust_domain="example.org").issue_workload(NAMESPACE, ALLOWED_SA)

    assert cert.spiffe_id == f"spiffe://example.org/ns/{NAMESPACE}/sa/{ALLOWED_SA}"


def test_created_root_is_a_ten_year_ec_ca(tmp_path: Path) -> None:
    ca = MeshCA.create(tmp_path)

    (root,) = _pem_certs(ca.root_cert_path)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert root.not_valid_after_utc - root.not_valid_before_utc >= timedelta(days=3650)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)


def test_workload_chain_verifies_to_the_mesh_root(tmp_path: Path) -> None:
    ca = MeshCA.create(tmp_path)
    cert = ca.issue_workload(NAMESPACE, ALLOWED_SA)

    chain = _verify_client_chain(cert, cert.root_cert_path)

    assert chain[-1] == _pem_certs(ca.root_cert_path)[0]


def test_a_workload_cert_does_not_verify_against_another_ca(tmp_path: Path) -> None:
    cert = MeshCA.create(tmp_path / "mesh").issue_workload(NAMESPACE, ALLOWED_SA)
    other = MeshCA.create(tmp_path / "other")

    with pytest.raises(x509.verification.VerificationError):
        _verify_client_chain(cert, other.root_cert_path)


def test_private_keys_are_created_0600_and_certs_0644_before_a_byte_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """harness.files.atomic_write sets the mode on its fresh temp file (O_CREAT's mode is masked by the
    umask) while it is still empty; a chmod after the key is written would leave a window."""
    real_fchmod = os.fchmod

    def no_chmod(*args: object, **kwargs: object) -> None:
        raise AssertionError("a key file must be created with its mode, never chmod-ed afterwards")

    def fchmod_while_empty(fd: int, mode: int) -> None:
        assert os.fstat(fd).st_size == 0, "mode changed after data was written"
        assert mode & 0o077 in (0, 0o044), oct(mode)
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", fchmod_while_empty)
    ca = MeshCA.create(tmp_path)
    cert = ca.issue_workload(NAMESPACE, ALLOWED_SA)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(cert.key_path) == 0o600
    assert mode(tmp_path / "ca" / "ca-key.pem") == 0o600
    umask = os.umask(0)
    os.umask(umask)
    assert mode(cert.cert_chain_path) == 0o644 & ~umask
    assert mode(cert.root_cert_path) == 0o644 & ~umask
    assert not list(tmp_path.rglob("*.tmp")), "temp files of the atomic writes were left behind"


def test_reissuing_replaces_the_files_in_place(tmp_path: Path) -> None:
    ca = MeshCA.create(tmp_path)
    first = ca.issue_workload(NAMESPACE, ALLOWED_SA)
    first_leaf = _pem_certs(first.cert_chain_path)[0]

    second = ca.issue_workload(NAMESPACE, ALLOWED_SA)

    assert second.cert_chain_path == first.cert_chain_path
    assert _pem_certs(second.cert_chain_path)[0].serial_number != first_leaf.serial_number


def test_user_supplied_ca_signs_workloads_that_chain_to_its_root(
    tmp_path: Path, user_cacerts: SimpleNamespace
) -> None:
    ca = _from_user_files(user_cacerts, tmp_path / "issued")

    cert = ca.issue_workload(NAMESPACE, ALLOWED_SA)

    served = _pem_certs(cert.cert_chain_path)
    assert served[0].issuer == user_cacerts.intermediate.subject
    assert served[1:] == [user_cacerts.intermediate, user_cacerts.root]  # leaf + cert-chain.pem
    assert _pem_certs(cert.root_cert_path) == [user_cacerts.root]
    chain = _verify_client_chain(cert, user_cacerts.root_cert)
    assert chain[1:] == [user_cacerts.intermediate, user_cacerts.root]


def test_mismatched_ca_key_error_names_the_key_file(tmp_path: Path, user_cacerts: SimpleNamespace) -> None:
    user_cacerts.ca_key.write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))

    with pytest.raises(ConfigError) as error:
        _from_user_files(user_cacerts, tmp_path / "issued")

    assert error.value.file == str(user_cacerts.ca_key)
    assert str(user_cacerts.ca_key) in str(error.value)
    assert "does not match the certificate in ca-cert.pem" in str(error.value)


@pytest.mark.parametrize("missing", ["root_cert", "cert_chain", "ca_cert", "ca_key"])
def test_a_missing_cacerts_file_error_names_it_and_what_was_expected(
    tmp_path: Path, user_cacerts: SimpleNamespace, missing: str
) -> None:
    path: Path = getattr(user_cacerts, missing)
    path.unlink()

    with pytest.raises(ConfigError) as error:
        _from_user_files(user_cacerts, tmp_path / "issued")

    assert error.value.file == str(path)
    assert "file not found; expected" in str(error.value)
    assert path.name in str(error.value)


def test_a_cert_chain_that_does_not_start_with_ca_cert_is_rejected(
    tmp_path: Path, user_cacerts: SimpleNamespace
) -> None:
    user_cacerts.cert_chain.write_bytes(_pem(user_cacerts.root))

    with pytest.raises(ConfigError) as error:
        _from_user_files(user_cacerts, tmp_path / "issued")

    assert error.value.file == str(user_cacerts.cert_chain)
    assert "ca-cert.pem" in str(error.value)


def test_a_chain_leading_to_another_root_is_rejected(tmp_path: Path, user_cacerts: SimpleNamespace) -> None:
    stranger = _make_ca_cert("stranger root", ec.generate_private_key(ec.SECP256R1()), None)
    user_cacerts.root_cert.write_bytes(_pem(stranger))

    with pytest.raises(ConfigError) as error:
        _from_user_files(user_cacerts, tmp_path / "issued")

    assert error.value.file == str(user_cacerts.cert_chain)
    assert "root-cert.pem" in str(error.value)


def test_an_invalid_service_account_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="service account"):
        MeshCA.create(tmp_path).issue_workload(NAMESPACE, "../etc")


def test_server_cert_names_only_its_dns_name(tmp_path: Path) -> None:
    external = MeshCA.create(tmp_path / "external")

    cert = external.issue_server("api.openai.com")

    leaf, *intermediates = _pem_certs(cert.cert_chain_path)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.DNSName("api.openai.com")]
    assert cert.spiffe_id is None
    verifier = (
        PolicyBuilder()
        .store(Store(_pem_certs(cert.root_cert_path)))
        .build_server_verifier(x509.DNSName("api.openai.com"))
    )
    verifier.verify(leaf, intermediates)


# --- a real handshake: Envoy's STRICT-mTLS inbound listener with certificates from MeshCA ---------


def _mtls_inbound_bootstrap(server: WorkloadCert, allowed_id: str, backend_port: int, b: Any) -> dict[str, Any]:
    tls = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": True,
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(server.cert_chain_path)},
                        "private_key": {"filename": str(server.key_path)},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"filename": str(server.root_cert_path)},
                    "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": allowed_id}}],
                },
            },
        },
    }
    return {
        "admin": {"address": b.socket_address(0)},
        "static_resources": {
            "listeners": [
                {
                    "name": "inbound_mtls",
                    "address": b.socket_address(0),
                    "filter_chains": [
                        {
                            "transport_socket": tls,
                            "filters": [b.http_connection_manager("inbound_8080", {"*": "inbound|8080||"})],
                        }
                    ],
                }
            ],
            "clusters": [b.static_cluster("inbound|8080||", backend_port)],
        },
    }


def _get(port: int, mesh_root: Path, client: WorkloadCert | None) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # SPIFFE certs carry no DNS name; the chain is still verified
    context.load_verify_locations(cafile=str(mesh_root))
    if client is not None:
        context.load_cert_chain(str(client.cert_chain_path), str(client.key_path))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    try:
        connection.request("GET", "/", headers={"Host": "user-service"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_envoy_accepts_only_a_mesh_client_cert_with_an_allowed_spiffe_id(
    tmp_path: Path,
    backend: int,
    start_envoy: Callable[[dict[str, Any], str], Any],
    envoy_config: Any,
) -> None:
    mesh = MeshCA.create(tmp_path / "mesh")
    rogue = MeshCA.create(tmp_path / "rogue")
    server = mesh.issue_workload(NAMESPACE, "user-service")
    envoy = start_envoy(_mtls_inbound_bootstrap(server, ALLOWED_ID, backend, envoy_config), "user-sidecar")
    port = envoy.listener_port("inbound_mtls")
    refused = (ssl.SSLError, ConnectionError)

    assert _get(port, mesh.root_cert_path, mesh.issue_workload(NAMESPACE, ALLOWED_SA)) == 200
    with pytest.raises(refused):
        _get(port, mesh.root_cert_path, None)
    with pytest.raises(refused):
        _get(port, mesh.root_cert_path, rogue.issue_workload(NAMESPACE, ALLOWED_SA))  # right SAN, wrong CA
    with pytest.raises(refused):
        _get(port, mesh.root_cert_path, mesh.issue_workload(NAMESPACE, "analytics-service"))

    # Envoy's own counters say each refusal happened in the handshake, for the expected reason
    # (listener stats are named after the configured address, 127.0.0.1_0, not the bound port).
    for reason in ("handshake", "fail_verify_no_cert", "fail_verify_error", "fail_verify_san"):
        assert envoy.counter(f"listener.127.0.0.1_0.ssl.{reason}") == 1, reason
