"""Fixtures for the load tests: chat targets on 127.0.0.1 that stop with the test or module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.load.loadkit import ChatTarget


@pytest.fixture
def target() -> Iterator[ChatTarget]:
    """A chat target for one test: 200, and 503 for requests with `x-canary: true`."""
    server = ChatTarget().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_target() -> Iterator[ChatTarget]:
    """A chat target shared by a test module (same answers)."""
    server = ChatTarget().start()
    try:
        yield server
    finally:
        server.stop()
