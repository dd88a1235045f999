"""analytics: POST /api/v1/events accepts an event (202), GET /api/v1/events/count counts them."""

from __future__ import annotations

import os

from harness.services.asgi import Request, Response, bad_request, json_response
from harness.services.context import ServiceContext
from harness.services.routing import Route

# Event types are client input: past this many distinct ones, the rest count under OTHER_TYPE.
MAX_EVENT_TYPES = 64
OTHER_TYPE = "other"


class EventCounts:
    """Events accepted by this pod since it started, in total and by `type`."""

    def __init__(self) -> None:
        self.total = 0
        self.by_type: dict[str, int] = {}

    def add(self, event_type: str) -> None:
        self.total += 1
        if event_type not in self.by_type and len(self.by_type) >= MAX_EVENT_TYPES:
            event_type = OTHER_TYPE
        self.by_type[event_type] = self.by_type.get(event_type, 0) + 1


def routes(ctx: ServiceContext) -> list[Route]:
    counts = EventCounts()

    async def post_event(request: Request) -> Response:
        event = request.json_object()
        event_type = event.get("type", "unknown")
        if not isinstance(event_type, str) or not event_type:
            raise bad_request("event type must be a non-empty string", field_name="type")
        counts.add(event_type)
        payload = {"accepted": True, "event_id": os.urandom(8).hex(), "count": counts.total, **ctx.identity()}
        return json_response(202, payload)

    async def count(_request: Request) -> Response:
        return json_response(200, {"count": counts.total, "by_type": counts.by_type, **ctx.identity()})

    return [
        Route("POST", "/api/v1/events", post_event),
        Route("GET", "/api/v1/events/count", count),
    ]
