"""The local platform's OTLP/HTTP trace receiver: the proxies' spans, kept in a bounded ring on loopback.

Envoy's OpenTelemetry tracer (envoy.config.trace.v3.OpenTelemetryConfig `http_service`) POSTs
`ExportTraceServiceRequest` protobufs to /v1/traces (OTLP/HTTP, https://opentelemetry.io/docs/specs/otlp/
"OTLP/HTTP Request"); they are decoded with the opentelemetry-proto package. The last `--keep` spans are
kept (a ring: memory stays bounded however long the mesh runs); GET /v1/traces serves them as JSON
({"spans": [...], "received": total, "keep": N, "evicted": count, "evicted_by_second": {start second:
count}, "evicted_before": {"count", "until_s"}}: what the ring dropped, SpanRing) for the harness and
tests, GET /ready answers 200, and DELETE /v1/traces empties the ring and its eviction counts. It binds 127.0.0.1 only.

The local platform runs it as threads of its control-plane daemon (launch.MeshProcesses._start_receiver):
an interpreter of its own cost ~25 MB RSS / 14 MB PSS. Standalone, for a look at what the proxies send:
python -m harness.platforms.local.otlp_receiver --port PORT [--keep 20000]
"""

from __future__ import annotations

import argparse
import collections
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse,
)

DEFAULT_KEEP = 20_000  # spans
MAX_EVICTION_SECONDS = 4096  # start seconds whose evictions are counted one by one (~1 h of spans)
MAX_BODY = 8 * 1024 * 1024  # bytes: a bigger export is refused (413), not buffered
TRACES_PATH = "/v1/traces"


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return None if kind is None else getattr(any_value, kind)


def decode(body: bytes) -> list[dict[str, Any]]:
    """One export request's spans as flat dicts (ids in hex, times in ns, attributes as a dict)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append({
                    "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(), "name": span.name, "kind": int(span.kind),
                    "service_name": resource.get("service.name"),
                    "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
                    "attributes": {a.key: _value(a.value) for a in span.attributes},
                    "status_code": int(span.status.code),
                })
    return spans


class SpanRing:
    """The last `keep` spans, thread-safe, with the count of every span received and of every span
    evicted to make room, by the second its span started.

    An evicted span is gone before anyone read it: a run whose phase lost spans must say so rather
    than show that phase's traces as complete (harness/run/traces.py). The eviction counts are kept
    per start second for the last MAX_EVICTION_SECONDS seconds that had any; older ones are folded
    into one count with the last second folded, so memory stays bounded too."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._spans: collections.deque[dict[str, Any]] = collections.deque()
        self._lock = threading.Lock()
        self.received = 0
        self.evicted = 0
        self._evicted_by_second: dict[int, int] = {}
        self._folded: dict[str, Any] = {"count": 0, "until_s": None}  # evictions older than the per-second window

    def add(self, spans: list[dict[str, Any]]) -> None:
        with self._lock:
            self.received += len(spans)
            overflow = len(self._spans) + len(spans) - self.keep
            if overflow > 0:
                for _ in range(min(overflow, len(self._spans))):
                    self._evict(self._spans.popleft())
                excess = max(0, len(spans) - self.keep)  # one export bigger than the whole ring
                for span in spans[:excess]:
                    self._evict(span)
                spans = spans[excess:]
            self._spans.extend(spans)

    def _evict(self, span: dict[str, Any]) -> None:
        self.evicted += 1
        second = int(span.get("start_ns") or 0) // 1_000_000_000
        self._evicted_by_second[second] = self._evicted_by_second.get(second, 0) + 1
        if len(self._evicted_by_second) > MAX_EVICTION_SECONDS:
            oldest = min(self._evicted_by_second)
            self._folded["count"] += self._evicted_by_second.pop(oldest)
            self._folded["until_s"] = max(oldest, self._folded["until_s"] or oldest)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"spans": list(self._spans), "received": self.received, "keep": self.keep,
                    "evicted": self.evicted,
                    "evicted_by_second": {str(s): n for s, n in sorted(self._evicted_by_second.items())},
                    "evicted_before": dict(self._folded)}

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()
            self.evicted = 0
            self._evicted_by_second.clear()
            self._folded = {"count": 0, "until_s": None}


def handler_for(ring: SpanRing) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            return  # one line per export would fill the log

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - stdlib's name
            if self.path == "/ready":
                self._send(200, b"ready\n", "text/plain")
            elif self.path == TRACES_PATH:
                self._send(200, json.dumps(ring.snapshot()).encode(), "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def do_DELETE(self) -> None:  # noqa: N802
            if self.path != TRACES_PATH:
                self._send(404, b"not found\n", "text/plain")
                return
            ring.clear()
            self._send(200, b"{}", "application/json")

        def _body(self) -> bytes | None:
            """The request body (Envoy's async client sends it chunked); None when over MAX_BODY."""
            if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                length = int(self.headers.get("Content-Length") or 0)
                return None if length > MAX_BODY else self.rfile.read(length)
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers: none expected, read to the blank line
                    return body
                if len(body) + size > MAX_BODY:
                    return None
                body += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk

        def do_POST(self) -> None:  # noqa: N802
            if self.path != TRACES_PATH:
                self._send(404, b"not found\n", "text/plain")
                return
            body = self._body()
            if body is None:
                self.close_connection = True  # the rest of the body is not read
                self._send(413, b"export too large\n", "text/plain")
                return
            if "json" in (self.headers.get("Content-Type") or ""):
                self._send(415, b"only application/x-protobuf is accepted\n", "text/plain")
                return
            try:
                ring.add(decode(body))
            except Exception as exc:  # a malformed protobuf: the sender is told, the receiver goes on
                self._send(400, f"cannot decode ExportTraceServiceRequest: {exc}\n".encode(), "text/plain")
                return
            self._send(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    return Handler


def serve(port: int, keep: int = DEFAULT_KEEP) -> ThreadingHTTPServer:
    """A server bound to 127.0.0.1:port (not yet serving: call serve_forever)."""
    return ThreadingHTTPServer(("127.0.0.1", port), handler_for(SpanRing(keep)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--keep", type=int, default=DEFAULT_KEEP)
    args = parser.parse_args(argv)
    server = serve(args.port, args.keep)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
