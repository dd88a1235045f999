"""user: GET /api/v1/users/{id}, a deterministic profile per id."""

from __future__ import annotations

import zlib

from harness.services.asgi import Request, Response, bad_request, json_response
from harness.services.context import ServiceContext
from harness.services.routing import Route

TIERS = ("free", "pro", "enterprise")
MAX_ID_CHARS = 128


def profile(user_id: str) -> dict[str, str]:
    """The same profile for the same id on every pod, so replicas are interchangeable."""
    tier = TIERS[zlib.crc32(user_id.encode()) % len(TIERS)]
    return {"id": user_id, "name": f"User {user_id}", "tier": tier, "email": f"{user_id}@example.com"}


def routes(ctx: ServiceContext) -> list[Route]:
    async def get_user(request: Request) -> Response:
        user_id = request.path_params["id"]
        if len(user_id) > MAX_ID_CHARS:
            raise bad_request(f"user id longer than {MAX_ID_CHARS} characters", field_name="id")
        return json_response(200, {**profile(user_id), **ctx.identity()})

    return [Route("GET", "/api/v1/users/{id}", get_user)]
