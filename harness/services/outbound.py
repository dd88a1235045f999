"""Outbound calls of a service: where they go (MESH_OUTBOUND or direct), which headers travel, what failed.

The app itself originates TLS to the external AI API on both platforms, as with Istio for a ServiceEntry
port of protocol HTTPS (the sidecar passes the TLS through by SNI), and verifies its certificate against
the public CAs plus the roots of EXTERNAL_AI_CA_FILE when set (the stand-in behind api.openai.com has a
run-time CA's certificate). In direct mode (no MESH_OUTBOUND: Kubernetes, where iptables hand every
connection to the sidecar) it calls https://EXTERNAL_AI_HOST. With MESH_OUTBOUND (local, no iptables) it
makes the same TLS connection to the sidecar's outbound address, with EXTERNAL_AI_HOST as the TLS server
name (SNI, which the sidecar routes on, and the name the certificate must carry) and `Host`; mesh
services are plain HTTP to that address with the destination as `Host`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.services.config import ServiceConfig
from harness.services.metrics import Metrics

if TYPE_CHECKING:
    import httpx

# Tracing context (W3C, B3, Envoy's request id) and the routing headers VirtualServices match on.
PROPAGATED_HEADERS: tuple[str, ...] = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-user-id",
    "x-user-tier",
    "x-canary",
)
MESH_PORT = 8080
# In-flight outbound requests at once: a chat makes at most two at a time, so ~200 concurrent chats fit.
MAX_CONNECTIONS = 400
# Below uvicorn's 5 s idle timeout, so an idle connection is dropped here before the server drops it.
KEEPALIVE_EXPIRY_S = 4.0


@dataclass(frozen=True)
class Destination:
    """Where a call goes: a host as configured, and whether it is outside the mesh (HTTPS when direct)."""

    host: str
    external: bool = False


@dataclass(frozen=True, kw_only=True)
class UpstreamReply:
    """A 2xx answer with a JSON object body, and the pod that served it (`x-served-by`)."""

    destination: str
    status: int
    served_by: str | None
    body: dict[str, Any]


class UpstreamError(Exception):
    """An outbound call failed: no response (`status` None), a non-2xx status, or a body that is not JSON."""

    def __init__(self, destination: str, status: int | None, reason: str) -> None:
        super().__init__(
            f"upstream {destination} failed ({status if status is not None else 'no response'}): {reason}"
        )
        self.destination = destination
        self.status = status
        self.reason = reason

    def as_json(self) -> dict[str, Any]:
        return {"upstream": self.destination, "status": self.status, "reason": self.reason}


def target(config: ServiceConfig, destination: Destination, path: str) -> tuple[str, str | None]:
    """The URL to call and the `Host` header to set (None: the URL's own) for `path` at `destination`."""
    if config.mesh_outbound is not None:
        if destination.external:  # TLS to the sidecar, which passes it through (see server_name)
            return f"https://{urlsplit(config.mesh_outbound).netloc}{path}", destination.host
        return f"{config.mesh_outbound}{path}", destination.host
    if destination.external:
        return f"https://{destination.host}{path}", None
    host = destination.host if ":" in destination.host else f"{destination.host}:{MESH_PORT}"
    return f"http://{host}{path}", None


def server_name(config: ServiceConfig, destination: Destination) -> str | None:
    """The TLS server name (SNI) to send when the URL's host is not the destination's: the external host
    through MESH_OUTBOUND; None otherwise (the URL's host is the name)."""
    if config.mesh_outbound is None or not destination.external:
        return None
    return urlsplit(f"//{destination.host}").hostname


def external_tls_context(config: ServiceConfig) -> ssl.SSLContext | None:
    """The roots that verify HTTPS calls: the public CAs plus EXTERNAL_AI_CA_FILE's; None for public only.

    The transport has one context for every HTTPS origin; the external AI API is the only one a service
    calls (mesh services are plain HTTP to the app, mTLS is the sidecars' business).
    """
    if config.external_ai_ca_file is None:
        return None
    import httpx

    context = httpx.create_ssl_context(trust_env=False)
    context.load_verify_locations(cafile=str(config.external_ai_ca_file))
    return context


def propagated(inbound: Mapping[str, str]) -> dict[str, str]:
    """The headers of an inbound request that every outbound call it causes must carry."""
    return {name: inbound[name] for name in PROPAGATED_HEADERS if name in inbound}


class Outbound:
    """One shared keep-alive client for the process; `start` and `aclose` follow the ASGI lifespan."""

    def __init__(self, config: ServiceConfig, metrics: Metrics) -> None:
        self._config = config
        self._metrics = metrics
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        import httpx  # only services that call out pay for httpx

        from harness.services.transport import PooledTransport

        self._client = httpx.AsyncClient(
            transport=PooledTransport(
                max_connections=MAX_CONNECTIONS,
                keepalive_expiry_s=KEEPALIVE_EXPIRY_S,
                ssl_context=external_tls_context(self._config),
            ),
            timeout=httpx.Timeout(self._config.upstream_timeout_s),
            # Proxy variables must not reroute mesh traffic; the destination is what the config says.
            trust_env=False,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(
        self,
        method: str,
        destination: Destination,
        path: str,
        *,
        inbound_headers: Mapping[str, str],
        json: Any = None,
    ) -> UpstreamReply:
        """Call `destination`; UpstreamError unless it answers 2xx with a JSON object."""
        import httpx

        if self._client is None:
            raise RuntimeError("Outbound.call before start(): the ASGI lifespan did not run")
        url, host_header = target(self._config, destination, path)
        sni = server_name(self._config, destination)
        extensions = {"sni_hostname": sni} if sni is not None else None
        headers = propagated(inbound_headers)
        if host_header is not None:
            headers["host"] = host_header
        name = destination.host
        timeout_s = self._config.upstream_timeout_s
        try:
            async with asyncio.timeout(timeout_s):  # the whole call, however its time is spent
                response = await self._client.request(method, url, headers=headers, json=json,
                                                      extensions=extensions)
        except TimeoutError as exc:
            self._metrics.count_upstream(destination=name, code=0)
            raise UpstreamError(name, None, f"Timeout: no answer within {timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            self._metrics.count_upstream(destination=name, code=0)
            raise UpstreamError(name, None, f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        self._metrics.count_upstream(destination=name, code=response.status_code)
        if not 200 <= response.status_code < 300:
            raise UpstreamError(name, response.status_code, f"answered {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise UpstreamError(name, response.status_code, "body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise UpstreamError(name, response.status_code, "body is not a JSON object")
        return UpstreamReply(
            destination=name,
            status=response.status_code,
            served_by=response.headers.get("x-served-by"),
            body=body,
        )
