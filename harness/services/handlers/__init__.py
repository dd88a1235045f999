"""The routes of each sample service by SERVICE_NAME, behind the operational routes every service has."""

from __future__ import annotations

from collections.abc import Callable

from harness.services.config import ServiceName
from harness.services.context import ServiceContext
from harness.services.handlers import ai_agent, analytics, common, external_ai, user
from harness.services.routing import Route

_SERVICE_ROUTES: dict[ServiceName, Callable[[ServiceContext], list[Route]]] = {
    "ai-agent": ai_agent.routes,
    "analytics": analytics.routes,
    "user": user.routes,
    "external-ai-api": external_ai.routes,
}


def routes_for(ctx: ServiceContext) -> list[Route]:
    """/health, /metrics and /admin/knobs, then the routes of `ctx.config.service_name`."""
    return [*common.routes(ctx), *_SERVICE_ROUTES[ctx.config.service_name](ctx)]


__all__ = ["routes_for"]
