"""The outbound transport under the shared httpx client: keep-alive, retries of stale connections, framing,
limits, TLS and errors as httpx exceptions, against raw asyncio servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from harness.services.transport import PooledTransport
from tests.services.servicekit import TlsPair

Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]
OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


class RawServer:
    """An HTTP server written by hand on 127.0.0.1: `reply(reader, writer, n)` answers the n-th request
    of a connection and returns whether to keep the connection open."""

    def __init__(self, reply: Reply, tls: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.tls = tls
        self.connections = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                if length:
                    await reader.readexactly(length)
                n += 1
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    keep = await self.reply(reader, writer, n)
                    await writer.drain()
                finally:
                    self.in_flight -= 1
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def ok(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
    writer.write(OK)
    return True


def client(**kwargs: Any) -> httpx.AsyncClient:
    transport_args = {"max_connections": 16, "keepalive_expiry_s": 4.0, **kwargs}
    return httpx.AsyncClient(transport=PooledTransport(**transport_args), timeout=5.0, trust_env=False)


def test_sequential_requests_reuse_one_keep_alive_connection() -> None:
    async def scenario() -> None:
        async with RawServer(ok) as server, client() as http:
            responses = [await http.get(f"{server.url}/x") for _ in range(5)]
            assert [r.json() for r in responses] == [{"ok": True}] * 5
            assert server.connections == 1

    asyncio.run(scenario())


def test_a_kept_alive_connection_the_server_dropped_is_retried_once_on_a_fresh_one() -> None:
    async def once_per_connection(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n == 1:
            writer.write(OK)  # no "connection: close", so the client keeps it for the next request
            return True
        return False  # the next request on it finds the connection closed without an answer

    async def scenario() -> None:
        async with RawServer(once_per_connection) as server, client() as http:
            codes = [(await http.post(f"{server.url}/events", json={"n": i})).status_code for i in range(3)]
            assert codes == [200, 200, 200]
            assert server.connections == 3

    asyncio.run(scenario())


def test_a_connection_that_fails_on_its_first_request_is_not_retried() -> None:
    async def hang_up(_r: asyncio.StreamReader, _w: asyncio.StreamWriter, _n: int) -> bool:
        return False

    async def scenario() -> None:
        async with RawServer(hang_up) as server, client() as http:
            with pytest.raises(httpx.RemoteProtocolError, match="closed the connection"):
                await http.get(f"{server.url}/x")
            assert server.connections == 1

    asyncio.run(scenario())


def test_chunked_responses_are_read_whole_and_keep_the_connection() -> None:
    async def chunked(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b'5\r\n{"a":\r\n4;ext=1\r\n1234\r\n1\r\n}\r\n0\r\nx-trailer: t\r\n\r\n')
        return True

    async def scenario() -> None:
        async with RawServer(chunked) as server, client() as http:
            bodies = [(await http.get(f"{server.url}/x")).json() for _ in range(2)]
            assert bodies == [{"a": 1234}] * 2
            assert server.connections == 1

    asyncio.run(scenario())


def test_a_body_without_length_ends_at_close_and_its_connection_is_not_reused() -> None:
    async def until_close(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it")
        return False

    async def scenario() -> None:
        async with RawServer(until_close) as server, client() as http:
            texts = [(await http.get(f"{server.url}/x")).text for _ in range(2)]
            assert texts == ["all of it"] * 2
            assert server.connections == 2

    asyncio.run(scenario())


def test_gzip_bodies_are_decoded() -> None:
    body = gzip.compress(b'{"compressed":true}')

    async def gzipped(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        )
        return True

    async def scenario() -> None:
        async with RawServer(gzipped) as server, client() as http:
            assert (await http.get(f"{server.url}/x")).json() == {"compressed": True}

    asyncio.run(scenario())


def test_a_body_cut_short_is_a_remote_protocol_error() -> None:
    async def short(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        return False

    async def scenario() -> None:
        async with RawServer(short) as server, client() as http:
            with pytest.raises(httpx.RemoteProtocolError, match="mid-body"):
                await http.get(f"{server.url}/x")

    asyncio.run(scenario())


def test_a_refused_connection_is_an_httpx_connect_error() -> None:
    async def scenario() -> None:
        async with RawServer(ok) as server:
            url = server.url
        await asyncio.sleep(0.05)
        async with client() as http:
            with pytest.raises(httpx.ConnectError, match=r"connect to 127\.0\.0\.1"):
                await http.get(f"{url}/x")

    asyncio.run(scenario())


def test_a_server_that_never_answers_is_an_httpx_read_timeout() -> None:
    async def silent(_r: asyncio.StreamReader, _w: asyncio.StreamWriter, _n: int) -> bool:
        await asyncio.sleep(5)
        return False

    async def scenario() -> None:
        async with RawServer(silent) as server, client() as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{server.url}/x", timeout=0.2)

    asyncio.run(scenario())


def test_requests_in_flight_never_exceed_max_connections() -> None:
    async def slow_ok(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        await asyncio.sleep(0.02)
        writer.write(OK)
        return True

    async def scenario() -> None:
        async with RawServer(slow_ok) as server, client(max_connections=8) as http:
            responses = await asyncio.gather(*(http.get(f"{server.url}/x") for _ in range(60)))
            assert {r.status_code for r in responses} == {200}
            assert server.peak_in_flight == 8
            assert server.connections == 8

    asyncio.run(scenario())


def test_https_is_verified_against_the_given_trust(tls_pair: TlsPair) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(tls_pair.cert_file, tls_pair.key_file)

    async def scenario() -> None:
        async with RawServer(ok, tls=server_tls) as server:
            async with client(ssl_context=tls_pair.client_context()) as http:
                assert (await http.get(f"{server.url}/x")).json() == {"ok": True}
            async with client() as http:  # the public CA bundle does not know a self-signed certificate
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await http.get(f"{server.url}/x")

    asyncio.run(scenario())


def test_a_header_value_with_a_line_break_is_refused_before_sending() -> None:
    async def scenario() -> None:
        async with RawServer(ok) as server, client() as http:
            with pytest.raises(httpx.LocalProtocolError, match="line break"):
                await http.get(f"{server.url}/x", headers={"x-request-id": "a\r\nx-evil: 1"})
            assert server.connections == 0

    asyncio.run(scenario())
