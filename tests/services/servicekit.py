"""Test kit for the sample services: real `python -m harness.services` processes, a stand-in for the
sidecar's outbound listener, and a self-signed certificate for the external AI API."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from harness.net import free_port

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
# Response headers a proxy must not copy (hop-by-hop, or recomputed by the server that sends them on).
_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server"}
DEFAULT_KNOBS: dict[str, Any] = {
    "latency_ms": 0,
    "error_rate": 0,
    "error_status": 500,
    "hang": False,
    "unhealthy": False,
}


def service_env(service: str, pod: str, port: int, **extra: str) -> dict[str, str]:
    """A clean environment for one service: only PATH is inherited, so no proxy setting leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "SERVICE_NAME": service,
        "SERVICE_VERSION": "v1",
        "POD_NAME": pod,
        "REGION": "us-east",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    env.update(extra)
    return env


@dataclass
class ServiceProcess:
    """One running `python -m harness.services`, stopped by its PID."""

    service: str
    pod: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    scheme: str = "http"
    verify: ssl.SSLContext | bool = True
    terminated: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, verify=self.verify, trust_env=False, **kwargs)

    def put_knobs(self, **knobs: Any) -> httpx.Response:
        with self.client() as client:
            return client.put("/admin/knobs", json=knobs)

    def reset_knobs(self) -> None:
        assert self.put_knobs(**DEFAULT_KNOBS).status_code == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for pid {self.pid}")

    def wait_healthy(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Poll /health until 200 for at most `timeout_s`; fails with the process log otherwise."""
        deadline = time.monotonic() + timeout_s
        with self.client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"{self.pod} exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if client.get("/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise AssertionError(f"{self.pod} not healthy after {timeout_s} s:\n{self.log()}")

    def terminate(self) -> None:
        """SIGTERM by PID (once), without waiting."""
        if self.process.poll() is None and not self.terminated:
            os.kill(self.pid, signal.SIGTERM)
            self.terminated = True

    def stop(self) -> int:
        """SIGTERM by PID, then SIGKILL by PID if it has not exited in time; the exit code."""
        self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        return self.process.returncode


@dataclass
class Launcher:
    """Starts service processes and stops every one of them, by PID, when its fixture ends."""

    log_dir: Path
    started: list[ServiceProcess] = field(default_factory=list)

    def spawn(
        self,
        service: str,
        pod: str,
        *,
        scheme: str = "http",
        verify: ssl.SSLContext | bool = True,
        **env: str,
    ) -> ServiceProcess:
        """Start a process without waiting for it; see `wait_healthy`."""
        port = int(env.pop("PORT", free_port()))
        log_path = self.log_dir / f"{pod}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "harness.services"],
                env=service_env(service, pod, port, **env),
                cwd=REPO,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        proc = ServiceProcess(service, pod, port, process, log_path, scheme=scheme, verify=verify)
        self.started.append(proc)
        return proc

    def start(self, service: str, pod: str, **kwargs: Any) -> ServiceProcess:
        proc = self.spawn(service, pod, **kwargs)
        proc.wait_healthy()
        return proc

    def stop_all(self) -> None:
        """SIGTERM to every process first so they drain in parallel, then wait for (or kill) each."""
        for proc in self.started:
            proc.terminate()
        for proc in self.started:
            proc.stop()


@dataclass(frozen=True)
class Seen:
    """One request the router forwarded: the Host it was addressed to and every header it carried."""

    host: str
    method: str
    path: str
    headers: Mapping[str, str]


class OutboundRouter:
    """Stands in for the sidecar's outbound listener: routes by `Host`, records what it forwards.

    Like Envoy it answers 404 for an unknown host and 503 when the upstream refuses the connection. Like the
    local sidecar's listener it takes plaintext HTTP and TLS on one port (the first byte tells them apart,
    as Envoy's tls_inspector does) and records each TLS connection's server name (SNI) in `server_names`.
    Where the sidecar passes TLS through to the external AI API, this stand-in terminates it with `tls`
    (a certificate for api.openai.com the app must trust) so tests can see the requests inside, then calls
    the route's https URL.
    """

    def __init__(self, verify: ssl.SSLContext | bool = True, tls: "TlsPair | None" = None) -> None:
        self.routes: dict[str, str] = {}
        self.seen: list[Seen] = []
        self.server_names: list[str | None] = []
        self.port = free_port()
        self._verify = verify
        self._clients: dict[int, httpx.AsyncClient] = {}  # one per server's event loop
        self._plain_port = free_port()
        self._tls_port = free_port() if tls is not None else None
        self._servers = [self._server(self._plain_port)]
        if tls is not None:
            self._servers.append(self._server(self._tls_port, ssl_certfile=str(tls.cert_file),
                                              ssl_keyfile=str(tls.key_file)))
        self._threads = [threading.Thread(target=server.run, name="outbound-router", daemon=True)
                         for server in self._servers]
        self._front_loop: asyncio.AbstractEventLoop | None = None
        self._front_thread = threading.Thread(target=self._run_front, name="outbound-front", daemon=True)
        self._front_ready = threading.Event()

    def _server(self, port: int | None, **tls: str) -> uvicorn.Server:
        assert port is not None
        return uvicorn.Server(uvicorn.Config(self, host="127.0.0.1", port=port, lifespan="on", log_level="warning",
                                             access_log=False, ws="none", timeout_graceful_shutdown=2, **tls))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._front_thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(server.started for server in self._servers) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(server.started for server in self._servers), "outbound router did not start"
        assert self._front_ready.wait(STARTUP_TIMEOUT_S), "outbound router's front did not start"

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        if self._front_loop is not None:
            self._front_loop.call_soon_threadsafe(self._front_loop.stop)
        for thread in (*self._threads, self._front_thread):
            thread.join(timeout=STOP_TIMEOUT_S)

    # -- the front: one port for plaintext and TLS -------------------------------------------------

    def _run_front(self) -> None:
        loop = asyncio.new_event_loop()
        self._front_loop = loop
        server = loop.run_until_complete(asyncio.start_server(self._front, "127.0.0.1", self.port))
        self._front_ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            pending = asyncio.all_tasks(loop)  # connections still piped: end them before the loop goes
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(server.wait_closed())
            loop.close()

    async def _front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await asyncio.wait_for(reader.read(1), STOP_TIMEOUT_S)
            if not first:
                return
            head = first
            port = self._plain_port
            if first == b"\x16":  # a TLS handshake record: read the whole ClientHello for its SNI
                header = first + await reader.readexactly(4)
                head = header + await reader.readexactly(int.from_bytes(header[3:5], "big"))
                self.server_names.append(server_name(head))
                if self._tls_port is None:
                    return  # no TLS route: closed, as the sidecar's BlackHoleCluster does
                port = self._tls_port
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client or the server went away: the connection just ends, as through a proxy
        finally:
            writer.close()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        host = headers.get("host", "")
        self.seen.append(Seen(host, scope["method"], scope["path"], headers))
        status, out_headers, out_body = await self._forward(host, scope, headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": out_body})

    async def _forward(
        self, host: str, scope: dict[str, Any], headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        base = self.routes.get(host)
        if base is None:
            return 404, [("content-type", "text/plain")], b"no route (NR)"
        client = self._clients[id(asyncio.get_running_loop())]
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{base}{scope['path']}" + (f"?{query}" if query else "")
        forwarded = {k: v for k, v in headers.items() if k not in _NOT_FORWARDED}
        try:
            upstream = await client.request(scope["method"], url, headers=forwarded, content=body)
        except httpx.TransportError as exc:
            return (
                503,
                [("content-type", "text/plain")],
                f"no healthy upstream ({type(exc).__name__})".encode(),
            )
        out = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _NOT_FORWARDED]
        return upstream.status_code, out, upstream.content

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._clients[id(asyncio.get_running_loop())] = httpx.AsyncClient(
                    verify=self._verify, trust_env=False, timeout=10.0)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                client = self._clients.pop(id(asyncio.get_running_loop()), None)
                if client is not None:
                    await client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def server_name(record: bytes) -> str | None:
    """The SNI of a TLS ClientHello record (RFC 8446 4.1.2, RFC 6066 section 3); None without one."""
    at = 5 + 4 + 2 + 32  # record header, handshake header, legacy_version, random
    at += 1 + record[at]  # legacy_session_id
    at += 2 + int.from_bytes(record[at:at + 2], "big")  # cipher_suites
    at += 1 + record[at]  # legacy_compression_methods
    end = at + 2 + int.from_bytes(record[at:at + 2], "big")
    at += 2
    while at + 4 <= end:
        kind, size = int.from_bytes(record[at:at + 2], "big"), int.from_bytes(record[at + 2:at + 4], "big")
        if kind == 0:  # server_name: list length, name type (0: host_name), name length, name
            length = int.from_bytes(record[at + 7:at + 9], "big")
            return record[at + 9:at + 9 + length].decode("ascii")
        at += 4 + size
    return None


@dataclass(frozen=True)
class TlsPair:
    """A self-signed server certificate for api.openai.com and 127.0.0.1, and a client context trusting it."""

    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_file))


def make_self_signed(directory: Path, host: str = "api.openai.com") -> TlsPair:
    """Write a fresh P-256 key (mode 0600) and a self-signed certificate naming `host` and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_file = directory / "server.key"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert_file = directory / "server.crt"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsPair(cert_file=cert_file, key_file=key_file)
