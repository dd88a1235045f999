"""Runs a ServiceApp under uvicorn (uvloop + httptools when installed) and stops it gracefully on SIGTERM."""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType

import uvicorn

from harness.services.app import ServiceApp
from harness.services.config import ServiceConfig
from harness.services.context import build_context

# After SIGTERM, in-flight requests get this long to finish before uvicorn cancels them.
GRACEFUL_SHUTDOWN_S = 5
# Under a load burst the accept queue absorbs connects while the single event loop is busy.
LISTEN_BACKLOG = 2048


class _GracefulServer(uvicorn.Server):
    """uvicorn's server, letting hung requests go before it waits for in-flight requests to finish."""

    def __init__(self, config: uvicorn.Config, app: ServiceApp) -> None:
        super().__init__(config)
        self._service_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._service_app.begin_shutdown()
        await super().shutdown(sockets)


def uvicorn_config(config: ServiceConfig, app: ServiceApp) -> uvicorn.Config:
    """The uvicorn settings for one service process."""
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        uds=str(config.uds) if config.uds else None,  # uvicorn binds the socket instead of host:port
        loop="auto",
        http="auto",
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="info",
        server_header=False,
        # Server-level default headers reach every response, uvicorn's own 400s and 500s included.
        headers=[("x-served-by", config.pod_name)],
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ssl_certfile=str(config.tls_cert_file) if config.tls_cert_file else None,
        ssl_keyfile=str(config.tls_key_file) if config.tls_key_file else None,
    )


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(config: ServiceConfig) -> None:
    """Serve until SIGTERM or SIGINT; returns after a graceful stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = ServiceApp(build_context(config))
    server = _GracefulServer(uvicorn_config(config, app), app)
    # uvicorn drains, then re-raises the SIGTERM it caught under the handler found here: exit 0, not -15.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    logging.getLogger("harness.services").info(
        "%s %s pod=%s region=%s on %s:%d%s",
        config.service_name,
        config.service_version,
        config.pod_name,
        config.region,
        config.host,
        config.port,
        " (TLS)" if config.tls_cert_file else "",
    )
    server.run()
