"""external-ai-api: an OpenAI-shaped POST /v1/chat/completions after a simulated inference time."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from harness.services.asgi import HttpError, Request, Response, json_response
from harness.services.context import ServiceContext
from harness.services.routing import Route

DEFAULT_MODEL = "gpt-4o-mini"
MAX_ECHO_CHARS = 200


def invalid_request(message: str, param: str) -> HttpError:
    """A 400 in OpenAI's error shape, naming the offending parameter."""
    return HttpError(
        400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    )


def parse_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("'messages' must be a non-empty array of {role, content} objects", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise invalid_request(f"messages[{index}] must be an object with a string 'content'", "messages")
    return messages


def completion(model: str, prompt: str, pod: str) -> dict[str, Any]:
    """The reply document; the content names the pod so a caller can see who answered."""
    content = f"[{pod}] simulated answer to: {prompt[:MAX_ECHO_CHARS]}"
    prompt_tokens, completion_tokens = len(prompt.split()), len(content.split())
    return {
        "id": f"chatcmpl-{os.urandom(12).hex()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"},
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def routes(ctx: ServiceContext) -> list[Route]:
    async def chat_completions(request: Request) -> Response:
        try:
            body = request.json_object()
        except HttpError as exc:
            raise invalid_request(str(exc.payload["error"]), "body") from exc
        model = body.get("model", DEFAULT_MODEL)
        if not isinstance(model, str) or not model:
            raise invalid_request("'model' must be a non-empty string", "model")
        messages = parse_messages(body)
        await asyncio.sleep(ctx.knobs.inference_delay_s())
        return json_response(200, completion(model, messages[-1]["content"], ctx.config.pod_name))

    return [Route("POST", "/v1/chat/completions", chat_completions)]
