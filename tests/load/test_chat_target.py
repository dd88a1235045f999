"""The load tests' chat target (tests/load/loadkit.py ChatTarget) stops cleanly: every connection's
handler has ended and its event loop is closed when stop() returns.

A handler left pending (only cancelled, or accepted a moment before and never started) is destroyed
with the loop at a later garbage collection, inside whichever test runs then: the warning about an
unclosed `ChatTarget._serve` coroutine seen in test_load_shapes.py came from there.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import warnings
from typing import Any

import pytest

from tests.load.loadkit import ChatTarget

REQUEST = (b"POST /api/v1/chat HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
           b"content-length: 2\r\n\r\n{}")


def test_stop_ends_every_connection_handler_and_closes_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):  # the race is between accepting and stopping: a few rounds of it
            target = ChatTarget().start()
            clients = [socket.create_connection(("127.0.0.1", target.port), timeout=5) for _ in range(20)]
            for client in clients[::2]:
                client.sendall(REQUEST[:30])  # half a request: its handler waits in the middle of a read
            clients[1].sendall(REQUEST)
            target.stop()
            loop = target._loop
            assert loop.is_closed()
            assert not asyncio.all_tasks(loop), "a handler task outlived stop()"
            for client in clients:
                client.close()
            del target, loop
            gc.collect()
    assert not unraisable, [str(u.exc_value) + repr(u.object) for u in unraisable]
    leaks = [str(w.message) for w in caught if issubclass(w.category, (ResourceWarning, RuntimeWarning))]
    assert not leaks, leaks
