"""/health, /metrics and /admin/knobs: the operational routes every sample service answers."""

from __future__ import annotations

import hmac

from harness.services.asgi import HttpError, Request, Response, json_response
from harness.services.context import ServiceContext
from harness.services.knobs import KnobError
from harness.services.metrics import CONTENT_TYPE
from harness.services.routing import Route


def routes(ctx: ServiceContext) -> list[Route]:
    async def health(_request: Request) -> Response:
        problem = ctx.knobs.health_problem()
        if problem is None:
            return json_response(200, {"status": "ok", **ctx.identity()})
        return json_response(503, {"status": problem, **ctx.identity()})

    async def metrics(_request: Request) -> Response:
        return Response(status=200, body=ctx.metrics.render().encode(), content_type=CONTENT_TYPE)

    def check_token(request: Request) -> None:
        """With KNOBS_TOKEN_FILE set, only a caller holding the run's token reads or changes knobs."""
        token = ctx.config.knobs_token
        if token is None:
            return
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise HttpError(401, {"error": "the knobs need the run's token: Authorization: Bearer <token>"})

    async def get_knobs(request: Request) -> Response:
        check_token(request)
        return json_response(200, ctx.knobs.as_json())

    async def put_knobs(request: Request) -> Response:
        check_token(request)
        try:
            return json_response(200, ctx.knobs.update(request.json()))
        except KnobError as exc:
            raise HttpError(400, {"error": str(exc), "field": exc.field_name}) from exc

    return [
        Route("GET", "/health", health, api=False),
        Route("GET", "/metrics", metrics, api=False),
        Route("GET", "/admin/knobs", get_knobs, api=False),
        Route("PUT", "/admin/knobs", put_knobs, api=False),
    ]
