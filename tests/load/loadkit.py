"""Helpers of the load tests: a tiny chat target, LoadSpecs for it, a /proc check.

The target is an HTTP/1.1 asyncio server in a thread of the test process, on 127.0.0.1 (an
ephemeral port): 200 for POST /api/v1/chat, 503 for the requests a header selects; it counts what it
answered per status, tier and Host header.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.load import LoadSpec

OK = b'{"service": "ai-agent", "version": "v1", "region": "us-east", "pod": "test"}'
FAILED = b'{"error": "unavailable"}'
ROOT = Path(__file__).resolve().parents[2]
AI_AGENT = ROOT / "locustfiles" / "ai_agent.py"
EVEN_TIERS = {"HARNESS_TIER_WEIGHTS": "standard=1,premium=1,canary=1"}  # 3 users: one of each tier
MAX_HEAD_BYTES = 16384
MAX_REQUESTS_PER_CONNECTION = 1_000_000
IDLE_TIMEOUT_S = 30.0  # a connection quiet this long is closed
STOP_WAIT_S = 5.0  # for the handlers of closed connections to end, per round of stop()
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")


@dataclass
class Answered:
    """What the target answered (updated from the server thread; read after load stopped)."""

    statuses: Counter[int] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    malformed: int = 0  # chat requests without a matching x-user-id and body user_id, a prompt or a traceparent
    trace_ids: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


def _tier(headers: dict[str, str]) -> str:
    if headers.get("x-user-tier") == "premium":
        return "premium"
    return "canary" if headers.get("x-canary") == "true" else "standard"


class ChatTarget:
    """`fail_header=(name, value)`: requests carrying that header are answered 503, the rest 200."""

    def __init__(self, fail_header: tuple[str, str] | None = ("x-canary", "true")) -> None:
        self.fail_header = fail_header
        self.answered = Answered()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()  # open connections, closed by stop()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop.run_forever, name="chat-target", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChatTarget:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop)
        self._server = started.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop listening, let every connection's handler end, then stop and close the loop.

        The handlers must have ENDED before the loop stops. Cancelling them is not enough: a task only
        cancelled is still pending when the loop stops, and one whose connection was accepted a moment
        before has not even started; both are destroyed with the loop later, at a garbage collection
        during some other test ("Task was destroyed but it is pending", "Exception ignored in:
        <coroutine object ChatTarget._serve>"), and a handler that never started never closes its
        socket. So: no new handler serves (`_stopping`), every open connection is closed (its handler's
        read ends), and the handlers are awaited, a few bounded rounds for connections accepted meanwhile."""
        async def end_handlers() -> None:
            for _ in range(10):
                # first the callbacks already scheduled: a connection accepted just now gets its
                # handler task in its transport's connection_made, one loop iteration later
                await asyncio.sleep(0)
                tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
                if not tasks:
                    return
                for writer in list(self._writers):
                    writer.close()
                await asyncio.wait(tasks, timeout=STOP_WAIT_S)
            left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            assert not left, f"chat target handlers still running after stop: {left}"

        async def close() -> None:
            assert self._server is not None
            self._stopping = True
            # Connections already queued are accepted and closed while the server still listens:
            # Python 3.11 drops (without closing) a socket whose accept completes after Server.close()
            # (base_events.Server._attach asserts the server is open).
            await end_handlers()
            self._server.close()
            await end_handlers()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=2 * 10 * STOP_WAIT_S + 10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the chat target's event loop did not stop within 10 s"
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self._stopping:  # accepted while stop() ran: closed at once
                return
            for _ in range(MAX_REQUESTS_PER_CONNECTION):  # ends early when the client closes
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT_S)
                if len(head) > MAX_HEAD_BYTES:
                    break
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                fields = (line.partition(":") for line in lines[1:] if line)
                headers = {name.strip().lower(): value.strip() for name, _, value in fields}
                payload = await reader.readexactly(int(headers.get("content-length", "0")))
                status, body = self._answer(method, path, headers, payload)
                reason = {200: b"OK", 400: b"Bad Request", 503: b"Service Unavailable"}.get(status, b"Not Found")
                writer.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, reason, len(body), body))
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.CancelledError,
                ConnectionError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, method: str, path: str, headers: dict[str, str], payload: bytes) -> tuple[int, bytes]:
        if method != "POST" or path != "/api/v1/chat":
            status, body = 404, b"{}"
        elif not self._well_formed(headers, payload):
            status, body = 400, b"{}"
        elif self.fail_header and headers.get(self.fail_header[0]) == self.fail_header[1]:
            status, body = 503, FAILED
        else:
            status, body = 200, OK
        self.answered.statuses[status] += 1
        self.answered.tiers[_tier(headers)] += 1
        self.answered.hosts[headers.get("host", "")] += 1
        return status, body

    def _well_formed(self, headers: dict[str, str], payload: bytes) -> bool:
        try:
            chat = json.loads(payload)
        except ValueError:
            chat = {}
        trace = TRACEPARENT.fullmatch(headers.get("traceparent", ""))
        if trace:
            self.answered.trace_ids.add(trace.group(0)[3:35])
        ok = bool(trace and chat.get("prompt") and chat.get("user_id") and chat["user_id"] == headers.get("x-user-id"))
        self.answered.malformed += not ok
        return ok


def chat_spec(target: ChatTarget, **overrides: Any) -> LoadSpec:
    """The AI-agent mix against `target`: 3 users (one per tier), no think time, 3 seconds."""
    fields: dict[str, Any] = {"locustfile": AI_AGENT, "users": 3, "spawn_rate": 10, "duration_s": 3,
                              "host": target.url, "think_time_s": (0.0, 0.0), "extra_env": EVEN_TIERS}
    fields.update(overrides)
    return LoadSpec(**fields)


def alive(pid: int) -> bool:
    """A process with this pid exists (a zombie counts: it is not reaped yet)."""
    return Path(f"/proc/{pid}").exists()
