"""Fixtures of the kind platform's tests: an emulated API server (kmock), a scripted command runner, a
KindPlatform wired to both, and a fake ReplicaSet controller. Nothing here needs Docker, kind or a cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.platforms.kind import KindPlatform, preflight
from tests.kind.kindkit import AppKnobs, ScriptedRunner, make_platform, seed_mesh
from tests.kind.kmockkit import EmulatedCluster


@pytest.fixture(autouse=True)
def host_limits(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The host's inotify limits as kind asks for them, whatever this machine's are (the preflight reads
    them; tests of the preflight itself write their own)."""
    folder = tmp_path_factory.mktemp("inotify")
    (folder / "max_user_watches").write_text("524288\n")
    (folder / "max_user_instances").write_text("512\n")
    monkeypatch.setattr(preflight, "INOTIFY_DIR", folder)
    return folder


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster().start()
    try:
        yield emulated
    finally:
        emulated.stop()


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner(AppKnobs())  # the apps' /admin/knobs answers, as reset and knob faults need


@pytest.fixture
def platform(cluster: EmulatedCluster, runner: ScriptedRunner) -> KindPlatform:
    return make_platform({cluster.context: cluster}, runner)


@pytest.fixture
def mesh(cluster: EmulatedCluster) -> EmulatedCluster:
    seed_mesh(cluster)
    return cluster


@pytest.fixture
def controller(mesh: EmulatedCluster) -> Iterator[EmulatedCluster]:
    """The ReplicaSet controller running in the background (every 50 ms), as a real cluster has it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.05):
            mesh.reconcile()

    thread = threading.Thread(target=loop, name="fake-replicaset-controller", daemon=True)
    thread.start()
    try:
        yield mesh
    finally:
        stop.set()
        thread.join(5)


@pytest.fixture
def three() -> Iterator[dict[str, EmulatedCluster]]:
    """Three emulated clusters, each with its region's part of the mesh, as `up --clusters 3` leaves them."""
    clusters = {f"kind-parallel-ai-{region}": EmulatedCluster(f"kind-parallel-ai-{region}")
                for region in ("us-east", "us-west", "eu-west")}
    EmulatedCluster.start_many(list(clusters.values()))
    try:
        for context, emulated in clusters.items():
            seed_mesh(emulated, regions=(context.removeprefix("kind-parallel-ai-"),))
        yield clusters
    finally:
        for emulated in clusters.values():
            emulated.stop()
