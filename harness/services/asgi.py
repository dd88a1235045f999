"""The few ASGI message shapes the services need: a read request, a response, an HTTP error."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Bodies here are small JSON documents; a cap keeps one bad client from costing memory.
MAX_BODY_BYTES = 1 << 20


class HttpError(Exception):
    """Raised by a handler to answer with `status` and a JSON `payload` instead of a result."""

    def __init__(self, status: int, payload: Mapping[str, Any]) -> None:
        super().__init__(f"{status}: {payload}")
        self.status = status
        self.payload = dict(payload)


def bad_request(message: str, *, field_name: str | None = None) -> HttpError:
    """A 400 whose JSON body says what is wrong and, when one is to blame, which field."""
    payload: dict[str, Any] = {"error": message}
    if field_name is not None:
        payload["field"] = field_name
    return HttpError(400, payload)


@dataclass(frozen=True, kw_only=True)
class Request:
    """One HTTP request, read in full; header names are lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    path_params: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON; a 400 when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise bad_request(f"request body is not valid JSON: {exc}") from exc

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; a 400 when it is anything else."""
        value = self.json()
        if not isinstance(value, dict):
            raise bad_request(f"request body must be a JSON object, got {type(value).__name__}")
        return value


@dataclass(frozen=True, kw_only=True)
class Response:
    """What a handler answers; the server adds `x-served-by` and its default headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, payload: Any, *, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A JSON response; compact separators keep bodies small under load."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status=status, body=body, headers=headers)


class BodyTooLarge(Exception):
    """The request body exceeded MAX_BODY_BYTES."""


async def read_body(receive: Receive, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole request body; BodyTooLarge past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def decode_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI header pairs as a dict; a repeated header keeps its values joined by commas."""
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        value = value_bytes.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


async def send_response(send: Send, response: Response) -> None:
    """Send `response` as one ASGI start + body pair."""
    headers = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode()),
    ]
    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
