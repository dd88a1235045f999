"""The daemon's control channel: one JSON request and one JSON answer per line, on a Unix socket."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any, Protocol

from harness.errors import HarnessError, NotUpError

MAX_LINE = 64 * 1024 * 1024  # an `apply` carries whole manifests


class Handler(Protocol):
    async def handle(self, request: dict[str, Any]) -> Any: ...


async def serve_control(path: Path, handler: Handler) -> asyncio.AbstractServer:
    path.unlink(missing_ok=True)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                answer = {"ok": True, "result": await handler.handle(json.loads(line))}
            except HarnessError as exc:
                answer = {"ok": False, "error": exc.to_wire()}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, path=str(path), limit=MAX_LINE)
    path.chmod(0o600)
    return server


def request(path: Path, payload: dict[str, Any], *, timeout_s: float = 30.0) -> Any:
    """Send one request to the daemon and return its result, re-raising its errors here."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise NotUpError("the local mesh is not running (no control socket at "
                             f"{path}); run `harness up` first") from exc
        chunks = []
        try:
            sock.sendall(json.dumps(payload).encode() + b"\n")
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        except (ConnectionError, socket.timeout) as exc:
            raise NotUpError(f"the local control plane stopped answering ({exc}); `harness down` cleans up "
                             "after it") from exc
    answer = json.loads(b"".join(chunks) or b"{}")
    if answer.get("ok"):
        return answer["result"]
    error = answer.get("error") or {"type": "HarnessError", "message": "the daemon gave no answer"}
    raise HarnessError.from_wire(error)
