"""The platform's OTLP/HTTP receiver on a free loopback port, for tests: its URL while it runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from harness.net import free_port
from harness.platforms.local import otlp_receiver


@contextmanager
def running_receiver(*, keep: int) -> Iterator[str]:
    """The receiver keeping the last `keep` spans, served in a thread; stopped and closed after."""
    port = free_port()
    server = otlp_receiver.serve(port, keep=keep)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()
