"""Load generator run in its own process: sequential or open-loop paced HTTP/1.1 keep-alive requests.

`python bench/_loadgen.py '<json spec>'` prints one JSON document with raw latencies per target.
Spec: {"mode": "sequential"|"paced", "targets": [Target...], sequential: "rounds", "per_round",
"warmup"; paced: "rate", "duration_s", "warmup_s", "max_in_flight"}. Target: {"name", "port",
"method", "path", "headers", "body" (str or null), "tls": {"ca", "cert", "key"} or null}.
Every loop is bounded in count and time; traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
IO_TIMEOUT_S = 10.0


class ConnectionLost(Exception):
    """The server closed a kept-alive connection before answering."""


@dataclass
class Target:
    name: str
    port: int
    request: bytes
    tls: ssl.SSLContext | None
    uds: str | None = None  # connect to this Unix socket instead of 127.0.0.1:port (the local mesh's apps)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Target":
        body = (spec.get("body") or "").encode()
        headers = {"host": f"{HOST}:{spec['port']}", **{k.lower(): v for k, v in spec.get("headers", {}).items()}}
        if body:
            headers.setdefault("content-type", "application/json")
        headers["content-length"] = str(len(body))
        head = f"{spec['method']} {spec['path']} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        tls = None
        if spec.get("tls"):
            tls = ssl.create_default_context(cafile=spec["tls"]["ca"])
            tls.check_hostname = False  # SPIFFE-only server certificates carry no DNS or IP SAN
            tls.load_cert_chain(spec["tls"]["cert"], spec["tls"]["key"])
        return cls(spec["name"], int(spec["port"]), head.encode() + b"\r\n" + body, tls, spec.get("uds"))


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    schedule_latencies_ms: list[float] = field(default_factory=list)  # paced: from the planned send time
    statuses: Counter[int] = field(default_factory=Counter)
    served_by: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    reconnects: int = 0
    dropped: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"latencies_ms": [round(v, 4) for v in self.latencies_ms],
                "schedule_latencies_ms": [round(v, 4) for v in self.schedule_latencies_ms],
                "statuses": {str(k): v for k, v in self.statuses.items()}, "served_by": dict(self.served_by),
                "errors": dict(self.errors), "reconnects": self.reconnects, "dropped": self.dropped}


class Connection:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        if self.target.uds is not None:
            self.reader, self.writer = await asyncio.wait_for(asyncio.open_unix_connection(self.target.uds),
                                                              IO_TIMEOUT_S)
            return
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(
            HOST, self.target.port, ssl=self.target.tls, server_hostname="" if self.target.tls else None),
            IO_TIMEOUT_S)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self) -> tuple[int, str]:
        """One request; (status, x-served-by). ConnectionLost if a reused connection was closed."""
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.target.request)
        return await asyncio.wait_for(self._response(self.reader), IO_TIMEOUT_S)

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, str]:
        line = await reader.readline()
        if not line:
            self.close()
            raise ConnectionLost()
        status = int(line.split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers.get("x-served-by", "-")


async def timed(conn: Connection, result: Result | None) -> float:
    """One request in ms, retried once on a fresh connection if the kept-alive one had been closed."""
    for attempt in range(2):
        started = time.perf_counter()
        try:
            status, served_by = await conn.request()
        except ConnectionLost:
            if result is not None:
                result.reconnects += 1
            if attempt == 0:
                continue
            raise
        elapsed = (time.perf_counter() - started) * 1000
        if result is not None:
            result.statuses[status] += 1
            result.served_by[served_by] += 1
            result.latencies_ms.append(elapsed)
        return elapsed
    raise AssertionError("unreachable")


async def sequential(targets: list[Target], spec: dict[str, Any]) -> dict[str, Result]:
    """Rounds over the targets (interleaved, so drift hits every path alike), one request at a time."""
    results = {t.name: Result() for t in targets}
    conns = {t.name: Connection(t) for t in targets}
    deadline = time.monotonic() + float(spec.get("max_s", 300))
    for _ in range(int(spec["rounds"])):
        for target in targets:
            conn, result = conns[target.name], results[target.name]
            for index in range(int(spec["warmup"]) + int(spec["per_round"])):
                if time.monotonic() > deadline:
                    result.errors["deadline"] += 1
                    break
                try:
                    await timed(conn, result if index >= int(spec["warmup"]) else None)
                except (OSError, asyncio.TimeoutError, ConnectionLost, ValueError) as exc:
                    result.errors[type(exc).__name__] += 1
                    conn.close()
    for conn in conns.values():
        conn.close()
    return results


async def paced(target: Target, spec: dict[str, Any]) -> Result:
    """Open loop: request i is sent at start + i/rate whatever earlier requests are doing."""
    rate, duration, warmup = float(spec["rate"]), float(spec["duration_s"]), float(spec.get("warmup_s", 1.0))
    max_in_flight = int(spec.get("max_in_flight", 64))
    result, idle, in_flight = Result(), [Connection(target)], 0
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def one(planned: float, record: bool) -> None:
        nonlocal in_flight
        conn = idle.pop() if idle else Connection(target)
        in_flight += 1
        try:
            await timed(conn, result if record else None)
            if record:
                result.schedule_latencies_ms.append((loop.time() - planned) * 1000)
            idle.append(conn)
        except (OSError, asyncio.TimeoutError, ConnectionLost, ValueError) as exc:
            result.errors[type(exc).__name__] += 1
            conn.close()
        finally:
            in_flight -= 1

    start = loop.time() + 0.05
    total = int((warmup + duration) * rate)
    for index in range(total):
        planned = start + index / rate
        await asyncio.sleep(max(0.0, planned - loop.time()))
        if in_flight >= max_in_flight:
            result.dropped += 1
            continue
        task = asyncio.create_task(one(planned, index >= warmup * rate))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=IO_TIMEOUT_S + 1)
    return result


async def main(spec: dict[str, Any]) -> dict[str, Any]:
    targets = [Target.from_spec(t) for t in spec["targets"]]
    started = time.monotonic()
    if spec["mode"] == "sequential":
        results = await sequential(targets, spec)
    else:
        results = {targets[0].name: await paced(targets[0], spec)}
    return {"wall_s": round(time.monotonic() - started, 3),
            "targets": {name: r.as_json() for name, r in results.items()}}


if __name__ == "__main__":
    try:
        import uvloop  # finer timers and cheaper I/O than the default loop, when installed
        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
