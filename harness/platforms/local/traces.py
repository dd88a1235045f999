"""Where the local proxies send their spans: the user's loopback OTLP endpoint, else the platform's receiver.

OTEL_EXPORTER_OTLP_ENDPOINT is the OpenTelemetry exporter's standard base URL (the traces path
/v1/traces is appended, https://opentelemetry.io/docs/specs/otel/protocol/exporter/); the proxies send
OTLP/HTTP protobuf in plaintext, so it must be an http:// URL on 127.0.0.0/8 (or localhost): the local
mesh's traffic stays on loopback, and anything else is refused naming the variable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from harness.errors import ConfigError
from harness.mesh.translate.model import TraceCollector

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
RECEIVER = "otlp-receiver"  # the receiver's thread name, in the daemon (launch.MeshProcesses._start_receiver)


def user_collector(environ: Mapping[str, str]) -> TraceCollector | None:
    """The user's OTLP/HTTP endpoint, checked; None when the variable is unset or empty."""
    raw = (environ.get(ENDPOINT_ENV) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        loopback = False
    if parts.scheme != "http" or not loopback:
        raise ConfigError(f"{ENDPOINT_ENV}={raw!r}: the local mesh's proxies send spans only to a plaintext "
                          "OTLP/HTTP endpoint on loopback (http://127.x.y.z:PORT); unset it to use the "
                          "platform's own receiver", field=ENDPOINT_ENV)
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ConfigError(f"{ENDPOINT_ENV}={raw!r}: {exc}", field=ENDPOINT_ENV) from exc
    return TraceCollector(host="127.0.0.1" if host == "localhost" else host, port=port,
                          path=parts.path.rstrip("/") + "/v1/traces")


def collector_for(receiver_port: int, environ: Mapping[str, str]) -> tuple[TraceCollector, bool]:
    """The collector and whether the platform runs it (True: its own receiver on receiver_port)."""
    user = user_collector(environ)
    if user is not None:
        return user, False
    return TraceCollector(host="127.0.0.1", port=receiver_port), True

