"""Helpers of the kind platform's tests: a scripted command runner and a KindPlatform wired to emulated
API servers (kmockkit), with the mesh seeded as `up` leaves it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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


class AppKnobs:
    """Answers the `kubectl exec ... /admin/knobs` commands as the pods' apps would (PUT: status line and
    body; GET: body), keeping each pod's knobs, so knob faults, their undo and `reset` can be checked."""

    CLEARED = {"latency_ms": 0, "error_rate": 0.0, "error_status": 500, "hang": False, "unhealthy": False}

    def __init__(self) -> None:
        self.by_pod: dict[str, dict] = {}

    def __call__(self, command: Command) -> str:
        argv = list(command.argv)
        if "exec" not in argv or "/admin/knobs" not in " ".join(argv):
            return ""
        pod = argv[argv.index("exec") + 1]
        knobs = self.by_pod.setdefault(pod, dict(self.CLEARED))
        if "method='PUT'" in " ".join(argv):
            knobs.update(json.loads(argv[-1]))
            return "200\n" + json.dumps(knobs)
        return json.dumps(knobs)

    def faulty(self) -> dict[str, dict]:
        return {pod: knobs for pod, knobs in self.by_pod.items() if knobs != self.CLEARED}


def make_platform(apis: dict[str, EmulatedCluster], runner: ScriptedRunner, **settings: object) -> KindPlatform:
    """A KindPlatform whose API calls go to the emulated cluster of each context."""
    opened: list[str] = []

    def factory(context: str) -> ClientKube:
        opened.append(context)
        return ClientKube(apis[context].api_client(), context)

    platform = KindPlatform(KindSettings(**settings), runner=runner, kube_factory=factory)
    platform.opened_contexts = opened  # type: ignore[attr-defined]
    return platform


def seed_mesh(cluster: EmulatedCluster, regions: tuple[str, ...] | None = None, *, external_ai: bool = True) -> None:
    """The mesh as `up` leaves it: the declared Deployments (with ready pods), the external AI API's
    stand-in in external-ai (unless `external_ai` is False), and Istio resources."""
    deployments = [doc for doc in render.mesh_kubernetes_documents() if doc["kind"] == "Deployment"
                   and (regions is None or doc["spec"]["template"]["metadata"]["labels"]["istio-locality"] in regions)]
    if external_ai:
        deployments += [doc for doc in render.external_ai_documents() if doc["kind"] == "Deployment"]
    cluster.seed(deployments, render.istio_documents())
