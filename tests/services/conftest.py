"""Fixtures for the sample-service tests: process launchers that stop what they start, and a TLS pair."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services.servicekit import Launcher, TlsPair, make_self_signed


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Processes for one test, stopped by PID when it ends."""
    launcher = Launcher(tmp_path)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="module")
def module_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """Processes shared by one test module, stopped by PID when it ends."""
    launcher = Launcher(tmp_path_factory.mktemp("services"))
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> TlsPair:
    """A self-signed certificate for api.openai.com and 127.0.0.1, its key written with mode 0600."""
    return make_self_signed(tmp_path_factory.mktemp("tls"))
