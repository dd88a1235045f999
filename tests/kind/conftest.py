"""Fixtures of the kind platform's tests: an emulated API server (kmock), a scripted command runner, and a
KindPlatform wired to both. Nothing here needs Docker, kind or a cluster."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.platforms.kind import ClientKube, Command, CommandResult, KindPlatform, KindSettings
from harness.platforms.kind import render
from tests.kind.kmockkit import EmulatedCluster

ROOT = Path(__file__).resolve().parents[2]


class ScriptedRunner:
    """A CommandRunner that runs nothing: it keeps every command and answers from `reply` (exit 0, '')."""

    dry_run = False

    def __init__(self, reply: Callable[[Command], CommandResult | str] | None = None) -> None:
        self.commands: list[Command] = []
        self.reply = reply

    def run(self, command: Command, *, check: bool = True) -> CommandResult:
        self.commands.append(command)
        answer = self.reply(command) if self.reply else ""
        return answer if isinstance(answer, CommandResult) else CommandResult(command, 0, answer, "")


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    emulated = EmulatedCluster().start()
    try:
        yield emulated
    finally:
        emulated.stop()


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner()


def make_platform(apis: dict[str, EmulatedCluster], runner: ScriptedRunner, **settings: object) -> KindPlatform:
    """A KindPlatform whose API calls go to the emulated cluster of each context."""
    opened: list[str] = []

    def factory(context: str) -> ClientKube:
        opened.append(context)
        return ClientKube(apis[context].api_client(), context)

    platform = KindPlatform(KindSettings(**settings), runner=runner, kube_factory=factory)
    platform.opened_contexts = opened  # type: ignore[attr-defined]
    return platform


@pytest.fixture
def platform(cluster: EmulatedCluster, runner: ScriptedRunner) -> KindPlatform:
    return make_platform({cluster.context: cluster}, runner)


def seed_mesh(cluster: EmulatedCluster, regions: tuple[str, ...] | None = None) -> None:
    """The mesh as `up` leaves it: the declared Deployments (with ready pods) and Istio resources."""
    deployments = [doc for doc in render.mesh_kubernetes_documents() if doc["kind"] == "Deployment"
                   and (regions is None or doc["spec"]["template"]["metadata"]["labels"]["istio-locality"] in regions)]
    cluster.seed(deployments, render.istio_documents())


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
