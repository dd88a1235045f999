"""A lean HTTP/1.1 keep-alive transport for the shared httpx client (httpcore's pool costs O(connections²)).

Measured here with httpcore 1.0.9: at 100 concurrent chats its pool bookkeeping
(`_assign_requests_to_connections` calling `is_idle` 28 million times) took 97 ms of CPU per chat; with this
transport a chat (three outbound calls) costs ai-agent 2 to 4 ms of CPU from 1 to 200 concurrent chats.
It speaks what the mesh needs: HTTP/1.1 with Content-Length or chunked bodies, optional TLS, small responses
read in full. Failures are raised as httpx's own exceptions, so callers catch `httpx.HTTPError` as usual.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

import httpx

# Responses here are small JSON documents; a larger one is a broken upstream, not data.
MAX_RESPONSE_BYTES = 8 << 20
MAX_HEAD_BYTES = 64 << 10
_NO_BODY_STATUSES = frozenset({204, 304})

# scheme, host, port and the TLS server name (the `sni_hostname` request extension, as httpcore names it;
# None: the host): a connection is reused only for the same name.
Origin = tuple[str, str, int, str | None]


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed by the peer before any response byte: safe to retry once."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0
    reused: bool = False
    closed: bool = field(default=False)

    def usable(self, now: float, expiry_s: float) -> bool:
        return not (
            self.closed
            or self.reader.at_eof()
            or self.writer.is_closing()
            or now - self.idle_since > expiry_s
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class PooledTransport(httpx.AsyncBaseTransport):
    """Keep-alive connections per origin, at most `max_connections` requests in flight at once.

    `keepalive_expiry_s` stays below uvicorn's 5 s idle timeout so a connection is dropped here before the
    server drops it; a reused connection that the server closed anyway is retried once on a fresh one.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry_s: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._expiry_s = keepalive_expiry_s
        self._ssl_context = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        origin = _origin(request.url, request.extensions.get("sni_hostname"))
        data = _request_head(request) + await request.aread()
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no free connection slot in time", request=request) from exc
        try:
            for _attempt in range(2):
                connection = self._take_idle(origin) or await self._connect(origin, timeouts, request)
                try:
                    return await self._exchange(connection, origin, data, timeouts, request)
                except _StaleConnection:
                    connection.close()
            raise httpx.RemoteProtocolError(
                "server closed the connection without a response", request=request
            )
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if connection.usable(now, self._expiry_s):
                connection.reused = True
                return connection
            connection.close()
        return None

    def _put_idle(self, origin: Origin, connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _connect(
        self, origin: Origin, timeouts: dict[str, float | None], request: httpx.Request
    ) -> _Connection:
        scheme, host, port, sni = origin
        tls = self._tls_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=(sni or host) if tls else None, limit=MAX_HEAD_BYTES
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out", request=request) from exc
        except OSError as exc:  # refused, unreachable, DNS failure, TLS handshake and verification errors
            raise httpx.ConnectError(f"connect to {host}:{port} failed: {exc}", request=request) from exc
        return _Connection(reader, writer)

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # built on first use: services that never call HTTPS skip the CA bundle
            self._ssl_context = httpx.create_ssl_context(trust_env=False)
        return self._ssl_context

    async def _exchange(
        self,
        connection: _Connection,
        origin: Origin,
        data: bytes,
        timeouts: dict[str, float | None],
        request: httpx.Request,
    ) -> httpx.Response:
        """Send one request and read its whole response; the connection goes back to the pool if it can."""
        try:
            await _send(connection, data, timeouts.get("write"), request)
            try:
                async with asyncio.timeout(timeouts.get("read")):
                    version, status, reason, headers = await _read_head(connection, request)
                    body, delimited = await _read_body(connection.reader, request, status, headers)
            except TimeoutError as exc:
                raise httpx.ReadTimeout("timed out waiting for the response", request=request) from exc
        except BaseException:  # whatever happened, the connection's state is unknown now
            connection.close()
            raise
        if delimited and _keeps_alive(version, headers):
            self._put_idle(origin, connection)
        else:
            connection.close()
        return httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": version, "reason_phrase": reason},
            request=request,
        )


def _origin(url: httpx.URL, sni: str | None = None) -> Origin:
    default_port = 443 if url.scheme == "https" else 80
    return url.scheme, url.host, url.port or default_port, sni if url.scheme == "https" else None


async def _send(
    connection: _Connection, data: bytes, timeout_s: float | None, request: httpx.Request
) -> None:
    try:
        connection.writer.write(data)
        async with asyncio.timeout(timeout_s):
            await connection.writer.drain()
    except TimeoutError as exc:
        raise httpx.WriteTimeout("timed out sending the request", request=request) from exc
    except ConnectionError as exc:
        if connection.reused:
            raise _StaleConnection from exc
        raise httpx.WriteError(str(exc), request=request) from exc


def _request_head(request: httpx.Request) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise httpx.LocalProtocolError(f"header {name!r} contains a line break", request=request)
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _read_head(
    connection: _Connection, request: httpx.Request
) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    """Status line and headers, skipping interim 1xx responses."""
    while True:
        try:
            head = await connection.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if connection.reused and not exc.partial:
                raise _StaleConnection from exc
            raise httpx.RemoteProtocolError(
                "server closed the connection mid-response", request=request
            ) from exc
        except asyncio.LimitOverrunError as exc:
            raise httpx.RemoteProtocolError("response head too large", request=request) from exc
        except ConnectionError as exc:
            if connection.reused:
                raise _StaleConnection from exc
            raise httpx.ReadError(str(exc), request=request) from exc
        status_line, *header_lines = head[:-4].split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"malformed status line {status_line[:80]!r}", request=request)
        status = int(parts[1])
        if 100 <= status < 200:
            continue
        headers = []
        for line in header_lines:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}", request=request)
            headers.append((name.strip(), value.strip()))
        return parts[0], status, parts[2] if len(parts) > 2 else b"", headers


async def _read_body(
    reader: asyncio.StreamReader, request: httpx.Request, status: int, headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, bool]:
    """The body and whether its end was delimited (so the connection may carry another request)."""
    if request.method == "HEAD" or status in _NO_BODY_STATUSES:
        return b"", True
    values = {name.lower(): value for name, value in headers}
    try:
        if b"chunked" in values.get(b"transfer-encoding", b"").lower():
            return await _read_chunked(reader, request), True
        length = values.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > MAX_RESPONSE_BYTES:
                raise httpx.RemoteProtocolError(f"unusable content-length {length[:40]!r}", request=request)
            return await reader.readexactly(int(length)), True
        body = await reader.read(MAX_RESPONSE_BYTES + 1)  # no length: the body ends when the server closes
        while len(body) <= MAX_RESPONSE_BYTES and not reader.at_eof():
            body += await reader.read(MAX_RESPONSE_BYTES + 1 - len(body))
        if len(body) > MAX_RESPONSE_BYTES:
            raise httpx.RemoteProtocolError("response body too large", request=request)
        return body, False
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("server closed the connection mid-body", request=request) from exc
    except asyncio.LimitOverrunError as exc:
        raise httpx.RemoteProtocolError("chunk header too large", request=request) from exc
    except ConnectionError as exc:
        raise httpx.ReadError(str(exc), request=request) from exc


async def _read_chunked(reader: asyncio.StreamReader, request: httpx.Request) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise httpx.RemoteProtocolError(
                f"malformed chunk size {size_line[:40]!r}", request=request
            ) from exc
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, ignored
                pass
            return b"".join(chunks)
        total += size
        if total > MAX_RESPONSE_BYTES:
            raise httpx.RemoteProtocolError("response body too large", request=request)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _keeps_alive(version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    tokens = b",".join(value for name, value in headers if name.lower() == b"connection").lower()
    if version == b"HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens
