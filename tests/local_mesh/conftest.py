"""One real local mesh for the whole session: every test talks to real Envoy, apps and Prometheus."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.platforms.local.platform import LocalPlatform
from tests.local_mesh.meshkit import Mesh, free_base, settings_for


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    platform = LocalPlatform(settings_for(tmp_path_factory.mktemp("mesh") / "state", free_base()))
    status = platform.up()
    try:
        with httpx.Client(timeout=10.0) as client:
            yield Mesh(platform, status, client)
    finally:
        platform.down()


@pytest.fixture
def clean_mesh(mesh: Mesh) -> Iterator[Mesh]:
    """A test that changes the mesh leaves it as declared: resources reset, knobs cleared, no pod ejected, pods up."""
    try:
        yield mesh
    finally:
        mesh.platform.reset()
        mesh.reset_knobs()
        mesh.clear_outlier_state()
        mesh.wait_for(mesh.all_ready, 30, "every pod ready again")
