"""ai-agent: POST /api/v1/chat asks user and the AI API (critical, concurrently), then tells analytics."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from harness.services.asgi import HttpError, Request, Response, bad_request, json_response
from harness.services.context import ServiceContext
from harness.services.outbound import Destination, UpstreamError, UpstreamReply
from harness.services.routing import Route

AI_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class ChatRequest:
    user_id: str
    prompt: str


def parse_chat(request: Request) -> ChatRequest:
    """The chat body, or a 400 naming the first missing or mistyped field."""
    body = request.json_object()
    for name in ("user_id", "prompt"):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            got = "missing" if name not in body else f"got {type(value).__name__} {value!r}"[:80]
            raise bad_request(f"field '{name}' must be a non-empty string ({got})", field_name=name)
    return ChatRequest(user_id=body["user_id"], prompt=body["prompt"])


def upstream_failed(error: UpstreamError) -> HttpError:
    """The 502 a critical upstream's failure becomes: it names the upstream and its status."""
    status = "no response" if error.status is None else str(error.status)
    return HttpError(502, {"error": f"upstream {error.destination} failed: {status}", **error.as_json()})


def reply_text(reply: UpstreamReply) -> str:
    """The assistant message of an OpenAI-shaped completion; a 502 when the shape is wrong."""
    try:
        content = reply.body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise upstream_failed(UpstreamError(reply.destination, reply.status, "no choices[0].message.content"))
    return content


def routes(ctx: ServiceContext) -> list[Route]:
    config, outbound = ctx.config, ctx.outbound
    user_service = Destination(config.user_service_host)
    analytics_service = Destination(config.analytics_service_host)
    ai_api = Destination(config.external_ai_host, external=True)

    async def chat(request: Request) -> Response:
        chat_request = parse_chat(request)
        user_call = outbound.call(
            "GET",
            user_service,
            f"/api/v1/users/{quote(chat_request.user_id, safe='')}",
            inbound_headers=request.headers,
        )
        ai_call = outbound.call(
            "POST",
            ai_api,
            "/v1/chat/completions",
            inbound_headers=request.headers,
            json={"model": AI_MODEL, "messages": [{"role": "user", "content": chat_request.prompt}]},
        )
        user, ai = await asyncio.gather(user_call, ai_call, return_exceptions=True)
        for result in (user, ai):
            if isinstance(result, UpstreamError):
                raise upstream_failed(result)
            if isinstance(result, BaseException):
                raise result
        assert isinstance(user, UpstreamReply) and isinstance(ai, UpstreamReply)
        reply = reply_text(ai)
        analytics, analytics_pod = await record_event(request, chat_request, reply)
        payload: dict[str, Any] = {
            **ctx.identity(),
            "reply": reply,
            "user": user.body,
            "analytics": analytics,
            "upstream_pods": {user.destination: user.served_by, ai.destination: ai.served_by},
        }
        if analytics_pod is not None:
            payload["upstream_pods"][analytics_service.host] = analytics_pod
        return json_response(200, payload)

    async def record_event(request: Request, chat_request: ChatRequest, reply: str) -> tuple[str, str | None]:
        """Not critical: a failure is counted in app_upstream_requests_total and reported as "failed"."""
        event = {
            "type": "chat",
            "user_id": chat_request.user_id,
            "pod": config.pod_name,
            "prompt_chars": len(chat_request.prompt),
            "reply_chars": len(reply),
        }
        try:
            answer = await outbound.call(
                "POST", analytics_service, "/api/v1/events", inbound_headers=request.headers, json=event
            )
        except UpstreamError:
            return "failed", None
        return "ok", answer.served_by

    return [Route("POST", "/api/v1/chat", chat)]
