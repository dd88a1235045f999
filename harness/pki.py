"""Mesh certificate authority (Citadel's role): issues SPIFFE workload certificates for either platform."""

# Shared by both platforms (kind installs the same CA as Istio's cacerts secret), so it sits below
# them rather than inside platforms/local, which the kind platform must not import. The local
# platform's daemon creates one MeshCA per run (or plugs in a user's CA laid out like Istio's cacerts
# secret) and asks it for one WorkloadCert per service account; the translator points each sidecar's
# TLS contexts at those files. A second, separate instance stands in for the public CA
# behind api.openai.com (issue_server).

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.errors import ConfigError
from harness.files import atomic_write

ROOT_VALIDITY = timedelta(days=3650)
WORKLOAD_VALIDITY = timedelta(hours=24)  # Istio's default workload certificate lifetime
SERVER_VALIDITY = timedelta(days=90)  # what a public CA (Let's Encrypt) gives a server certificate
# notBefore is backdated so that a peer whose clock runs slightly behind still accepts a fresh cert.
CLOCK_SKEW = timedelta(minutes=5)

_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_NAMESPACE = re.compile(_DNS_LABEL)
_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")

_CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class WorkloadCert:
    """The files of one issued identity, in the layout Envoy's file-based TLS config reads."""

    cert_chain_path: Path  # PEM: the leaf, then the CA's cert-chain.pem (what the proxy serves)
    key_path: Path  # PEM PKCS#8 private key of the leaf, mode 0600
    root_cert_path: Path  # PEM trust anchors (root-cert.pem) to verify peers with
    spiffe_id: str | None  # spiffe://<td>/ns/<ns>/sa/<sa>; None for a DNS server cert
    expires_at: float = 0.0  # the leaf's notAfter, epoch seconds


class MeshCA:
    """Signs workload and server certificates with one CA key; build it with `create` or `from_files`."""

    def __init__(
        self,
        *,
        directory: Path,
        trust_domain: str,
        signing_cert: x509.Certificate,
        signing_key: _CaKey,
        chain: list[x509.Certificate],
        roots: list[x509.Certificate],
    ) -> None:
        self.directory = directory
        self.trust_domain = trust_domain
        self._signing_cert = signing_cert
        self._signing_key = signing_key
        self._chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
        self.root_cert_path = directory / "root-cert.pem"
        atomic_write(
            self.root_cert_path,
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in roots),
            mode=0o644,
            durable=True,
        )

    @classmethod
    def create(cls, directory: Path, *, trust_domain: str = "cluster.local") -> MeshCA:
        """Make a fresh self-signed root (EC P-256, 10 years) under `directory/ca` and use it."""
        _check_trust_domain(trust_domain)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                x509.NameAttribute(NameOID.COMMON_NAME, "harness mesh root CA"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        root = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + ROOT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256())
        )
        ca_dir = directory / "ca"
        root_pem = root.public_bytes(serialization.Encoding.PEM)
        # The same four files as Istio's cacerts secret, so a created CA can be reloaded by from_files.
        for file_name in ("root-cert.pem", "cert-chain.pem", "ca-cert.pem"):
            atomic_write(ca_dir / file_name, root_pem, mode=0o644, durable=True)
        atomic_write(ca_dir / "ca-key.pem", _private_pem(key), mode=0o600, durable=True)
        return cls.from_files(
            ca_dir / "root-cert.pem",
            ca_dir / "cert-chain.pem",
            ca_dir / "ca-cert.pem",
            ca_dir / "ca-key.pem",
            directory=directory,
            trust_domain=trust_domain,
        )

    @classmethod
    def from_files(
        cls,
        root_cert: Path,
        cert_chain: Path,
        ca_cert: Path,
        ca_key: Path,
        *,
        directory: Path,
        trust_domain: str = "cluster.local",
    ) -> MeshCA:
        """Plug in a CA laid out like Istio's cacerts secret; every inconsistency is a ConfigError naming the file.

        ca-cert.pem/ca-key.pem sign workloads, the served chain is the leaf followed by cert-chain.pem
        (which must start with ca-cert.pem and lead to root-cert.pem), and root-cert.pem is the trust anchor.
        """
        _check_trust_domain(trust_domain)
        roots = _load_certs(root_cert, "one or more PEM root certificates (root-cert.pem)")
        chain = _load_certs(cert_chain, "PEM certificates from ca-cert.pem up to the root (cert-chain.pem)")
        signing_certs = _load_certs(ca_cert, "the PEM certificate of the signing CA (ca-cert.pem)")
        if len(signing_certs) != 1:
            raise ConfigError(f"expected exactly one certificate, found {len(signing_certs)}", file=ca_cert)
        signing_cert = signing_certs[0]
        signing_key = _load_ca_key(ca_key)
        _check_signing_pair(signing_cert, ca_cert, signing_key, ca_key)
        _check_chain(signing_cert, chain, cert_chain, roots, root_cert)
        return cls(
            directory=directory,
            trust_domain=trust_domain,
            signing_cert=signing_cert,
            signing_key=signing_key,
            chain=chain,
            roots=roots,
        )

    def spiffe_id(self, namespace: str, service_account: str) -> str:
        """The SPIFFE id Istio gives a pod running as `service_account` in `namespace`."""
        if not _NAMESPACE.fullmatch(namespace):
            raise ConfigError(
                f"{namespace!r} is not a Kubernetes namespace name (a DNS label: a-z, 0-9, '-', at most 63)",
                field="namespace",
            )
        if not (_SUBDOMAIN.fullmatch(service_account) and len(service_account) <= 253):
            raise ConfigError(
                f"{service_account!r} is not a Kubernetes service account name (a-z, 0-9, '-', '.')",
                field="service_account",
            )
        return f"spiffe://{self.trust_domain}/ns/{namespace}/sa/{service_account}"

    def issue_workload(self, namespace: str, service_account: str, *,
                       validity: timedelta = WORKLOAD_VALIDITY) -> WorkloadCert:
        """Issue an EC P-256 leaf whose only identity is the SPIFFE URI SAN (client and server auth)."""
        spiffe_id = self.spiffe_id(namespace, service_account)
        return self._issue(
            validity=validity,
            san=x509.UniformResourceIdentifier(spiffe_id),
            subject=x509.Name([]),
            usages=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            folder=self.directory / "workloads" / namespace / service_account,
            spiffe_id=spiffe_id,
        )

    def issue_server(self, dns_name: str, *, validity: timedelta = SERVER_VALIDITY) -> WorkloadCert:
        """Issue an EC P-256 server certificate for `dns_name` (a DNS SAN), as a public CA would."""
        if not (_SUBDOMAIN.fullmatch(dns_name) and len(dns_name) <= 253):
            raise ConfigError(f"{dns_name!r} is not a lowercase DNS name", field="dns_name")
        return self._issue(
            validity=validity,
            san=x509.DNSName(dns_name),
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]),
            usages=[ExtendedKeyUsageOID.SERVER_AUTH],
            folder=self.directory / "servers" / dns_name,
            spiffe_id=None,
        )

    def _issue(
        self,
        *,
        validity: timedelta,
        san: x509.GeneralName,
        subject: x509.Name,
        usages: list[x509.ObjectIdentifier],
        folder: Path,
        spiffe_id: str | None,
    ) -> WorkloadCert:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(timezone.utc)
        if validity <= timedelta(0):
            raise ConfigError(f"expected a positive certificate lifetime, got {validity}", field="validity")
        not_after = min(now + validity, self._signing_cert.not_valid_after_utc)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._signing_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            # RFC 5280 4.2.1.6: with an empty subject (Istio's workload certs) the SAN must be critical.
            .add_extension(x509.SubjectAlternativeName([san]), critical=len(subject) == 0)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(_authority_key_id(self._signing_cert), critical=False)
            .sign(self._signing_key, hashes.SHA256())
        )
        chain_path = folder / "cert-chain.pem"
        key_path = folder / "key.pem"
        atomic_write(key_path, _private_pem(key), mode=0o600, durable=True)
        atomic_write(chain_path, leaf.public_bytes(serialization.Encoding.PEM) + self._chain_pem, mode=0o644,
                     durable=True)
        return WorkloadCert(
            cert_chain_path=chain_path,
            key_path=key_path,
            root_cert_path=self.root_cert_path,
            spiffe_id=spiffe_id,
            expires_at=leaf.not_valid_after_utc.timestamp(),  # whole seconds, as encoded
        )


def _check_trust_domain(trust_domain: str) -> None:
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise ConfigError(
            f"{trust_domain!r} is not a SPIFFE trust domain (lowercase a-z, 0-9, '.', '-', '_')",
            field="trust_domain",
        )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _private_pem(key: _CaKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _read(path: Path, expected: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"file not found; expected {expected}", file=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read it ({exc.strerror}); expected {expected}", file=path) from exc


def _load_certs(path: Path, expected: str) -> list[x509.Certificate]:
    data = _read(path, expected)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(f"no readable PEM certificate ({exc}); expected {expected}", file=path) from exc


def _load_ca_key(path: Path) -> _CaKey:
    expected = "the unencrypted PEM private key of ca-cert.pem (ca-key.pem)"
    data = _read(path, expected)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # raised by cryptography when the key is password-protected
        raise ConfigError(f"the key is encrypted; expected {expected}", file=path) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"not a readable private key ({exc}); expected {expected}", file=path) from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ConfigError(f"unsupported key type {type(key).__name__}; expected an EC or RSA key", file=path)
    return key


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_signing_pair(cert: x509.Certificate, cert_path: Path, key: _CaKey, key_path: Path) -> None:
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise ConfigError(
            f"the private key does not match the certificate in {cert_path.name}; "
            f"expected the key of {cert.subject.rfc4514_string()!r}",
            file=key_path,
        )
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ConfigError("not a CA certificate; expected basicConstraints CA:TRUE", file=cert_path)
    if cert.not_valid_after_utc <= datetime.now(timezone.utc):
        raise ConfigError(f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z; expected a valid CA", file=cert_path)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_chain(
    signing_cert: x509.Certificate,
    chain: list[x509.Certificate],
    chain_path: Path,
    roots: list[x509.Certificate],
    roots_path: Path,
) -> None:
    if chain[0] != signing_cert:
        raise ConfigError(
            "the first certificate is not the one in ca-cert.pem; expected ca-cert.pem, its "
            "intermediates, then the root (as in Istio's cacerts)",
            file=chain_path,
        )
    for position, (cert, issuer) in enumerate(zip(chain, chain[1:]), start=1):
        if not _issued_by(cert, issuer):
            raise ConfigError(
                f"certificate {position} ({cert.subject.rfc4514_string()}) is not signed by certificate "
                f"{position + 1}; expected each certificate to be issued by the next",
                file=chain_path,
            )
    last = chain[-1]
    if last not in roots and not any(_issued_by(last, root) for root in roots):
        raise ConfigError(
            f"does not lead to a root in {roots_path.name}: the last certificate was issued by "
            f"{last.issuer.rfc4514_string()!r}, which is not a trusted root",
            file=chain_path,
        )
