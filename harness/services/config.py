"""Reads a service's environment into one frozen ServiceConfig; the same variables on kind and locally.

MESH_OUTBOUND is set by the local platform only (no iptables there: every outbound call goes to the
sidecar's outbound address). EXTERNAL_AI_CA_FILE is set by both platforms: the app originates TLS to
EXTERNAL_AI_HOST itself (the sidecar passes it through, as Istio does for a ServiceEntry port of protocol
HTTPS), and the stand-in behind it has a certificate from a run-time CA, not a public one.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from harness.errors import ConfigError

ServiceName = Literal["ai-agent", "analytics", "user", "external-ai-api"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("ai-agent", "analytics", "user", "external-ai-api")

# Pod, version and region names travel in a response header and metric labels: keep them to name characters.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
# A destination host as a Kubernetes Service name, DNS name or IP, optionally with a port.
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$")


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    """Everything a sample service process needs, validated once at start."""

    service_name: ServiceName  # SERVICE_NAME: the pod's `app` label
    service_version: str  # SERVICE_VERSION: the pod's `version` label
    pod_name: str  # POD_NAME: sent back as `x-served-by` on every response
    region: str  # REGION: the pod's `istio-locality`
    host: str  # HOST: bind address; 0.0.0.0 in a pod, 127.0.0.1 locally
    port: int  # PORT: the HTTP (or, for external-ai-api with TLS, HTTPS) port
    user_service_host: str  # USER_SERVICE_HOST: `Host` of user calls
    analytics_service_host: str  # ANALYTICS_SERVICE_HOST: `Host` of analytics calls
    external_ai_host: str  # EXTERNAL_AI_HOST: `Host` of AI API calls
    ai_latency_ms: float  # AI_LATENCY_MS: external-ai-api mean inference time, milliseconds
    ai_jitter_ms: float  # AI_JITTER_MS: +/- uniform jitter around it, milliseconds
    mesh_outbound: str | None  # MESH_OUTBOUND: sidecar outbound listener URL, local only
    tls_cert_file: Path | None  # TLS_CERT_FILE: external-ai-api serves HTTPS with it
    tls_key_file: Path | None  # TLS_KEY_FILE: the key of TLS_CERT_FILE
    # EXTERNAL_AI_CA_FILE: PEM roots trusted besides the public CAs for the TLS to EXTERNAL_AI_HOST
    external_ai_ca_file: Path | None
    upstream_timeout_s: float  # UPSTREAM_TIMEOUT_S: whole-request timeout of one outbound call, seconds
    # UDS: listen on this Unix socket instead of HOST:PORT (local only: a 0700 folder keeps every process
    # but the sidecar and the harness out, as a pod's network namespace does on Kubernetes)
    uds: Path | None = None
    # KNOBS_TOKEN_FILE: /admin/knobs needs `Authorization: Bearer <the file's content>` (local only)
    knobs_token: str | None = None


def from_env(environ: Mapping[str, str]) -> ServiceConfig:
    """A ServiceConfig from environment variables; ConfigError names the variable and what was expected."""
    env = _Env(environ)
    service_name = env.choice("SERVICE_NAME", SERVICE_NAMES)
    cert, key = env.path("TLS_CERT_FILE"), env.path("TLS_KEY_FILE")
    _check_tls(service_name, cert, key)
    mesh_outbound = env.base_url("MESH_OUTBOUND")
    external_ai_ca_file = env.path("EXTERNAL_AI_CA_FILE")
    _check_external_ai_ca(external_ai_ca_file)
    return ServiceConfig(
        service_name=service_name,
        service_version=env.name("SERVICE_VERSION", "v1"),
        pod_name=env.name("POD_NAME", socket.gethostname()),
        region=env.name("REGION", "local"),
        host=env.bind_address("HOST", "0.0.0.0"),
        port=env.port("PORT", 8080),
        user_service_host=env.host("USER_SERVICE_HOST", "user-service"),
        analytics_service_host=env.host("ANALYTICS_SERVICE_HOST", "analytics-service"),
        external_ai_host=env.host("EXTERNAL_AI_HOST", "api.openai.com"),
        ai_latency_ms=env.number("AI_LATENCY_MS", 20.0, minimum=0.0),
        ai_jitter_ms=env.number("AI_JITTER_MS", 5.0, minimum=0.0),
        mesh_outbound=mesh_outbound,
        tls_cert_file=cert,
        tls_key_file=key,
        external_ai_ca_file=external_ai_ca_file,
        upstream_timeout_s=env.number("UPSTREAM_TIMEOUT_S", 10.0, minimum=0.001),
        uds=env.socket_path("UDS"),
        knobs_token=env.secret_file("KNOBS_TOKEN_FILE"),
    )


class _Env:
    """Typed getters over the environment; an empty value counts as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def bind_address(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOST_RE.match(value) or ":" in value:
                raise ConfigError(
                    f"expected an IP address or host name to bind; got {value!r}", field=name
                ) from None
        return value

    def name(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not _NAME_RE.match(value):
            raise ConfigError(
                f"expected letters, digits, '.', '_' or '-' (at most 253); got {value!r}", field=name
            )
        return value

    def choice(self, name: str, choices: tuple[ServiceName, ...]) -> ServiceName:
        value = self._raw(name)
        if value not in choices:
            got = "unset" if value is None else repr(value)
            raise ConfigError(f"expected one of {', '.join(choices)}; got {got}", field=name)
        return value

    def port(self, name: str, default: int) -> int:
        value = self._raw(name)
        if value is None:
            return default
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            raise ConfigError(f"expected a port number 1-65535; got {value!r}", field=name)
        return int(value)

    def number(self, name: str, default: float, *, minimum: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < minimum:
            raise ConfigError(f"expected a number >= {minimum:g}; got {value!r}", field=name)
        return number

    def host(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not _HOST_RE.match(value):
            raise ConfigError(
                f"expected a host name, optionally with :port (no scheme, no path); got {value!r}", field=name
            )
        return value

    def base_url(self, name: str) -> str | None:
        value = self._raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
        ):
            raise ConfigError(
                f"expected a URL like http://127.0.0.1:15001 (scheme, host, port, no path); got {value!r}",
                field=name,
            )
        try:
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as exc:
            raise ConfigError(f"expected a port number in the URL; got {value!r}", field=name) from exc
        return f"{parts.scheme}://{parts.netloc}"

    def socket_path(self, name: str) -> Path | None:
        value = self._raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.is_absolute() or len(value.encode()) > 107 or not path.parent.is_dir():
            raise ConfigError(f"expected an absolute Unix socket path (at most 107 bytes) in an existing "
                              f"folder; got {value!r}", field=name)
        return path

    def secret_file(self, name: str) -> str | None:
        path = self.path(name)
        if path is None:
            return None
        token = path.read_text().strip()
        if len(token) < 16:
            raise ConfigError(f"expected a token of at least 16 characters in {path}", field=name)
        return token

    def path(self, name: str) -> Path | None:
        value = self._raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.is_file():
            raise ConfigError(
                f"expected a readable file; {value!r} does not exist or is not a file", field=name
            )
        return path


def _check_tls(service_name: ServiceName, cert: Path | None, key: Path | None) -> None:
    """Only external-ai-api serves TLS, and only with both files, which must form a usable pair."""
    if cert is None and key is None:
        return
    if service_name != "external-ai-api":
        raise ConfigError(
            f"only external-ai-api serves TLS; unset it for {service_name}",
            field="TLS_CERT_FILE" if cert else "TLS_KEY_FILE",
        )
    if cert is None or key is None:
        missing = "TLS_CERT_FILE" if cert is None else "TLS_KEY_FILE"
        raise ConfigError(
            "expected TLS_CERT_FILE and TLS_KEY_FILE together; this one is unset", field=missing
        )
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"expected a PEM certificate matching TLS_KEY_FILE; loading failed: {exc}", field="TLS_CERT_FILE"
        ) from exc


def _check_external_ai_ca(ca_file: Path | None) -> None:
    """The extra roots are for the app's own TLS to the external AI API; the file must hold a PEM certificate."""
    if ca_file is None:
        return
    try:
        ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"expected a readable PEM bundle of CA certificates; loading {str(ca_file)!r} failed: {exc}",
            field="EXTERNAL_AI_CA_FILE",
        ) from exc
