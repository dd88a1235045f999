"""An in-memory platform for unit tests: the Platform protocol with nothing started (as httpx's MockTransport)."""

# It keeps what a real platform keeps (pods, Istio resources, knobs, holds) in dictionaries and
# records every call in `calls`, so a test of the chaos, run or suite layer asserts on what was asked
# of the platform, not on a stand-in of its own. Its answers have the shapes of the local platform's
# (`status --json` fields, pod fields); its ingress and Prometheus URLs name loopback ports nothing
# listens on, so a query through them fails as an unreachable Prometheus does.

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, NotUpError
from harness.mesh.loader import check_deletable
from harness.net import free_port
from harness.platforms.model import CLEARED_KNOBS, MeshStatus, Pod
from harness.platforms.telemetry import TelemetryPipeline

__all__ = ["FakePlatform", "declared_pods"]

INGRESS_HOST = "ai-agent.local"


def declared_pods() -> list[Pod]:
    """One ready Pod per slot of the shipped mesh's Deployments (named as the local platform names them)."""
    from harness.mesh.loader import declared_model

    model = declared_model(validate=False)
    pods = []
    for pod in model.topology.pods:
        service = next((s.name for s in model.topology.services_of(pod)), pod.app)
        pods.append(Pod(name=pod.name, service=service, app=pod.app, version=pod.version, region=pod.region,
                        ready=True, restarts=0, extra={"held": False, "service_account": pod.service_account}))
    return pods


def _declared_istio() -> list[dict[str, Any]]:
    from harness.mesh.loader import declared_model

    return [doc for doc, _ in declared_model(validate=False).documents if "istio.io" in doc.get("apiVersion", "")]


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    return str(doc.get("kind")), str(meta.get("namespace", "parallel-ai")), str(meta.get("name"))


class FakePlatform:
    """The mesh as data. `up_now=False` starts it down (as a fresh machine); `pods` default to the
    shipped mesh's; `declared` to its Istio resources; `ingress_url` to a loopback port nothing
    listens on (give a test server's URL to send load somewhere)."""

    name = "fake"

    def __init__(self, *, up_now: bool = True, pods: Sequence[Pod] | None = None,
                 declared: Iterable[dict[str, Any]] | None = None, profile: str = "dev",
                 ledger_dir: Path | None = None, ingress_url: str | None = None, ingress_host: str = INGRESS_HOST,
                 pipeline: TelemetryPipeline = TelemetryPipeline(stats_flush_s=1.0, scrape_s=1.0, rule_s=1.0)) -> None:
        self.up_now = up_now
        self.profile = profile
        self._ledger_dir = ledger_dir
        self.pipeline = pipeline
        self.calls: list[tuple[str, Any]] = []
        self._pods = {p.name: p for p in (declared_pods() if pods is None else pods)}
        self._restarts = {name: p.restarts for name, p in self._pods.items()}
        self._held: set[str] = {name for name, p in self._pods.items() if p.held}
        self._knobs = {name: dict(CLEARED_KNOBS) for name in self._pods}
        self._declared = [copy.deepcopy(d) for d in (_declared_istio() if declared is None else declared)]
        self._resources = {_key(d): copy.deepcopy(d) for d in self._declared}
        # By default nothing listens on either port: a query fails as against an unreachable Prometheus.
        self.ingress_url = ingress_url or f"http://127.0.0.1:{free_port()}"
        self.ingress_host = ingress_host
        self.prometheus_url = f"http://127.0.0.1:{free_port()}"

    # -- lifecycle ----------------------------------------------------------------------------------

    def up(self, *, profile: str | None = None) -> dict[str, Any]:
        self.calls.append(("up", profile))
        self.profile = profile or self.profile
        self.up_now = True
        return self.status()

    def is_up(self) -> bool:
        return self.up_now

    def down(self) -> list[int]:
        self.calls.append(("down", None))
        self.up_now = False
        return []

    @property
    def steps(self) -> list[str]:
        """What a dry run would have done so far: nothing, the fake never plans a dry run."""
        return []

    def describe_down(self, stopped: list[int]) -> str:
        return "the fake mesh is down"

    @property
    def dry_run(self) -> bool:
        return False

    @property
    def ledger_dir(self) -> Path | None:
        """The fault ledger's folder; None (no ledger kept, harness.chaos.ledger.ledger_for) unless given."""
        return self._ledger_dir

    def telemetry_pipeline(self) -> TelemetryPipeline:
        return self.pipeline

    # -- what is there ------------------------------------------------------------------------------

    def mesh_status(self) -> MeshStatus:
        pods = tuple(Pod(name=p.name, service=p.service, app=p.app, version=p.version, region=p.region,
                         ready=self.up_now and name not in self._held, restarts=self._restarts[name],
                         extra={**p.extra, "held": name in self._held})
                     for name, p in self._pods.items())
        return MeshStatus(platform=self.name, profile=self.profile, up=self.up_now,
                          ingress_url=self.ingress_url, ingress_host=self.ingress_host,
                          prometheus_url=self.prometheus_url, pods=pods)

    def status(self) -> dict[str, Any]:
        return self.mesh_status().to_json()

    def pods(self) -> list[dict[str, Any]]:
        return self.status()["pods"]

    def resources(self) -> list[dict[str, Any]]:
        self._require_up()
        return [copy.deepcopy(d) for d in self._resources.values()]

    def declared_resources(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(d) for d in self._declared]

    def holds(self) -> list[str]:
        return [f"pod {name} is held down" for name in sorted(self._held)]

    def get_knobs(self, pod: str) -> dict[str, Any]:
        return dict(self._knobs[self._pod(pod)])

    # -- changes ------------------------------------------------------------------------------------

    def apply(self, files: list[Path], *, delete: bool = False) -> dict[str, Any]:
        from harness.mesh.loader import load_documents

        documents = [doc for doc, _ in load_documents(files)]
        return self.apply_documents(documents, delete=delete, source=", ".join(map(str, files)))

    def apply_documents(self, documents: list[dict[str, Any]], *, delete: bool = False,
                        source: str = "generated by the harness", missing_ok: bool = False) -> dict[str, Any]:
        self._require_up()
        if delete and not missing_ok:  # as the local and kind platforms: a missing resource is refused
            check_deletable(self._resources.values(), [(doc, source) for doc in documents])
        self.calls.append(("delete" if delete else "apply", [f"{d['kind']}/{d['metadata']['name']}" for d in documents]))
        for doc in documents:
            if delete:
                self._resources.pop(_key(doc), None)
            else:
                self._resources[_key(doc)] = copy.deepcopy(doc)
        return {"applied": [f"{d['kind']}/{d['metadata']['name']}" for d in documents]}

    def reset(self) -> dict[str, Any]:
        self.calls.append(("reset", None))
        self._resources = {_key(d): copy.deepcopy(d) for d in self._declared}
        released = sorted(self._held)
        self._held.clear()
        cleared = [name for name, knobs in self._knobs.items() if knobs != CLEARED_KNOBS]
        for name in cleared:
            self._knobs[name] = dict(CLEARED_KNOBS)
        return {"reset": True, "released": released, "knobs_cleared": cleared}

    def kill(self, pod: str, *, app_only: bool = False) -> dict[str, Any]:
        """The pod is restarted at once (as a ReplicaSet would): its restart count goes up by one."""
        self._require_up()
        name = self._pod(pod)
        self.calls.append(("kill", name))
        self._restarts[name] += 1
        return {"pod": name, "app_only": app_only, "killed_pids": {}}

    def hold(self, pod: str, *, down: bool) -> dict[str, Any]:
        name = self._pod(pod)
        self.calls.append(("hold" if down else "release", name))
        (self._held.add if down else self._held.discard)(name)
        return {"pod": name, "held": down}

    def set_knobs(self, pod: str, **values: Any) -> dict[str, Any]:
        name = self._pod(pod)
        unknown = set(values) - set(CLEARED_KNOBS)
        if unknown:
            raise ConfigError(f"unknown knob(s) {sorted(unknown)}; expected {sorted(CLEARED_KNOBS)}", field="knobs")
        self.calls.append(("knobs", (name, dict(values))))
        self._knobs[name].update(values)
        return dict(self._knobs[name])

    def _pod(self, pod: str) -> str:
        if pod not in self._pods:
            raise ConfigError(f"no pod {pod!r}", field="pod")
        return pod

    def _require_up(self) -> None:
        if not self.up_now:
            raise NotUpError("the fake mesh is not up")
