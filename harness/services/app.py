"""The ASGI app of one sample service: lifespan, routing, fault knobs and request metrics."""

from __future__ import annotations

import asyncio
import logging
import time

from harness.services.asgi import (
    BodyTooLarge,
    HttpError,
    Message,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    decode_headers,
    json_response,
    read_body,
    send_response,
)
from harness.services.context import ServiceContext
from harness.services.handlers import routes_for
from harness.services.knobs import HANG_MAX_S, HangOutcome
from harness.services.routing import Route, Router

log = logging.getLogger("harness.services")
UNMATCHED_ROUTE = "unmatched"
# nginx's and Envoy's code for "the client went away first"; such requests get no response.
CLIENT_CLOSED = 499


class ServiceApp:
    """Callable by uvicorn, which adds `x-served-by` to every response (see server.py), its own errors too."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._router = Router(routes_for(ctx))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    def begin_shutdown(self) -> None:
        """Called when the server starts to stop: hung requests answer 503 now, /health says so."""
        self.ctx.knobs.release_for_shutdown()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.ctx.calls_out:
                        await self.ctx.outbound.start()
                except Exception as exc:  # reported to uvicorn, which exits non-zero
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.ctx.outbound.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        match = self._router.match(method, path)
        route_label = match.route.template if match.route else UNMATCHED_ROUTE
        response: Response | None
        try:
            body = await read_body(receive)
            request = Request(
                method=method,
                path=path,
                headers=decode_headers(scope["headers"]),
                body=body,
                path_params=match.params,
            )
            if match.route is None:
                response = _no_route(method, path, match.allowed)
            else:
                response = await self._serve(match.route, request, receive)
        except BodyTooLarge as exc:
            response = json_response(413, {"error": str(exc)})
        except Exception:
            log.exception("unhandled error in %s %s", method, path)
            response = json_response(500, {"error": "internal error", "pod": self.ctx.config.pod_name})
        if response is not None:
            await send_response(send, response)
        code = response.status if response is not None else CLIENT_CLOSED
        self.ctx.metrics.observe_request(
            method=method, route=route_label, code=code, seconds=time.perf_counter() - started
        )

    async def _serve(self, route: Route, request: Request, receive: Receive) -> Response | None:
        """Run `route`; API routes first pass the hang, latency and error knobs. None: client left."""
        if not route.api:
            return await _answer(route, request)
        knobs = self.ctx.knobs
        if knobs.values.hang:
            outcome = await _hold_while_hung(self.ctx, receive)
            if outcome is None:
                return None
            if outcome is not HangOutcome.RELEASED:
                reason = (
                    "shutting down" if outcome is HangOutcome.SHUTDOWN else f"hang exceeded {HANG_MAX_S:g} s"
                )
                return json_response(503, {"error": f"hang knob: {reason}", **self.ctx.identity()})
        if knobs.values.latency_ms > 0:
            await asyncio.sleep(knobs.values.latency_ms / 1000.0)
        if knobs.should_fail():
            status = knobs.values.error_status
            return json_response(status, {"error": "injected fault", "status": status, **self.ctx.identity()})
        return await _answer(route, request)


async def _answer(route: Route, request: Request) -> Response:
    try:
        return await route.handler(request)
    except HttpError as exc:
        return json_response(exc.status, exc.payload)


async def _hold_while_hung(ctx: ServiceContext, receive: Receive) -> HangOutcome | None:
    """Wait for the hang knob to clear; None when the client disconnects first (nothing to answer)."""
    hang = asyncio.ensure_future(ctx.knobs.wait_while_hung())
    disconnect = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait({hang, disconnect}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (hang, disconnect):
            task.cancel()
    return hang.result() if hang in done else None


async def _disconnected(receive: Receive) -> Message:
    """Returns once the client has gone; the body was read already, so nothing else arrives."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message


def _no_route(method: str, path: str, allowed: tuple[str, ...]) -> Response:
    if allowed:
        error = {"error": f"method {method} not allowed on {path}", "allowed": list(allowed)}
        return json_response(405, error, headers=(("allow", ", ".join(allowed)),))
    return json_response(404, {"error": f"no route for {method} {path}"})
