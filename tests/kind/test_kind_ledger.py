"""The fault ledger on kind: a killed process's faults undone through the Kubernetes API, and `reset`.

Against the emulated API server (kmock) with the fake ReplicaSet controller: the chaos actions
inject an Istio fault and scale a service to zero through the kind platform; their in-memory undos
are dropped and the ledger's owner is a process that has exited, as after a SIGKILL; the ledger
alone undoes them (the VirtualService as declared, the Deployment at its declared replicas).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.chaos import actions
from harness.chaos.audit import clean_orphans, reset_mesh, residual_faults
from harness.chaos.context import run_context
from harness.chaos.ledger import FaultLedger, ledger_for
from harness.chaos.undo import UndoRegistry
from harness.platforms.kind import KindPlatform, KindSettings, render
from harness.platforms.kind.platform import HELD_ANNOTATION
from tests.kind.kindkit import make_platform
from tests.kind.kmockkit import NAMESPACE, EmulatedCluster

ROOT = Path(__file__).parents[2]
VS_PATH = f"/apis/networking.istio.io/v1beta1/namespaces/{NAMESPACE}/virtualservices"
DEPLOYMENTS_PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"

def declared_vs(name: str) -> dict:
    return next(d for d in render.istio_documents() if d["kind"] == "VirtualService" and d["metadata"]["name"] == name)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def orphan_every_entry(ledger: FaultLedger) -> None:
    """What a SIGKILL leaves: the entries stay, their owner is gone (a pid that has exited)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    for path in ledger.directory.glob("*.json"):
        entry = json.loads(path.read_text())
        entry["owner"] = {**entry["owner"], "pid": gone.pid}
        path.write_text(json.dumps(entry))


def test_a_killed_process_faults_are_undone_through_the_api(controller: EmulatedCluster, runner,
                                                            monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> None:
    """The faults are made by the chaos actions into a registry that is then dropped unrun, as a killed
    process's is; only the ledger is left to undo them, from this process's own platform object."""
    platform = make_platform({controller.context: controller}, runner, max_percent=100)
    # The registry dies with the "killed" run, never run.
    with run_context(platform=platform, undo=UndoRegistry()):
        actions.inject_abort(service="ai-agent", http_status=503, percentage=100)
        actions.scale(service="analytics", replicas=0)
    assert "fault" in str(controller.get(f"{VS_PATH}/ai-agent-routing")["spec"])
    assert controller.get(f"{DEPLOYMENTS_PATH}/analytics-v1-us-west")["spec"]["replicas"] == 0
    ledger = ledger_for(platform)
    assert ledger is not None and ledger.directory == state_dir / "kind-ledger-parallel-ai"
    assert ledger.orphans() == []  # this process still runs: its entries are not orphans
    orphan_every_entry(ledger)
    assert [e.kind for e in ledger.orphans()] == ["istio", "hold"]
    hold = ledger.orphans()[1].undo
    assert hold == {"pods": ["analytics-v1-us-west-0"], "deployments": {"analytics-v1-us-west": 1}}

    cleaned = clean_orphans(platform)
    assert [(c["kind"], c["outcome"]) for c in cleaned] == [("hold", "undone"), ("istio", "undone")]
    assert controller.get(f"{VS_PATH}/ai-agent-routing")["spec"] == declared_vs("ai-agent-routing")["spec"]
    assert controller.get(f"{DEPLOYMENTS_PATH}/analytics-v1-us-west")["spec"]["replicas"] == 1
    assert FaultLedger(ledger.directory).entries() == []
    assert residual_faults(platform) == []


def test_reset_restores_replicas_knobs_and_istio_resources_on_kind(controller: EmulatedCluster, platform: KindPlatform,
                                                                   runner, state_dir: Path) -> None:
    """Everything `harness reset` owes on kind, whoever changed it: a Deployment scaled to zero with the
    hold annotation, a pod's fault knobs, a harness-fault VirtualService and a patched route."""
    scaled = controller.http.patch(f"{DEPLOYMENTS_PATH}/analytics-v1-us-west", json={
        "metadata": {"annotations": {HELD_ANNOTATION: "1"}}, "spec": {"replicas": 0}},
        headers={"content-type": "application/merge-patch+json"})
    assert scaled.status_code == 200, scaled.text
    # The controller has removed the held pod, as long before anyone runs reset (left to the background
    # pass, the pod could vanish between reset's pod listing and its knob clearing).
    controller.reconcile()
    platform.set_knobs("user-v1-eu-west-0", latency_ms=300)
    faulty = declared_vs("ai-agent-routing")
    faulty = {**faulty, "spec": {**faulty["spec"], "http": [{**r, "fault": {"abort": {
        "httpStatus": 503, "percentage": {"value": 100.0}}}} for r in faulty["spec"]["http"]]}}
    platform.apply_documents([faulty, {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                                       "metadata": {"name": "harness-fault-user-service", "namespace": NAMESPACE},
                                       "spec": {"hosts": ["user-service"], "http": [{"route": [
                                           {"destination": {"host": "user-service"}}]}]}}])
    leftovers = residual_faults(platform)
    assert any("analytics-v1-us-west" in line and "0 replicas" in line for line in leftovers), leftovers
    assert any("user-v1-eu-west-0 has fault knobs set: latency_ms=300" in line for line in leftovers), leftovers
    assert any("harness-fault-user-service exists" in line for line in leftovers), leftovers
    assert any("ai-agent-routing differs" in line and "fault" in line for line in leftovers), leftovers

    result = reset_mesh(platform)
    assert "Deployment/analytics-v1-us-west" in result["replicas_restored"]
    assert controller.get(f"{DEPLOYMENTS_PATH}/analytics-v1-us-west")["spec"]["replicas"] == 1
    annotations = controller.get(f"{DEPLOYMENTS_PATH}/analytics-v1-us-west")["metadata"].get("annotations") or {}
    assert HELD_ANNOTATION not in annotations
    assert runner.reply.faulty() == {}
    assert controller.get(f"{VS_PATH}/harness-fault-user-service") is None
    assert controller.get(f"{VS_PATH}/ai-agent-routing")["spec"] == declared_vs("ai-agent-routing")["spec"]
    controller.reconcile()
    assert residual_faults(platform) == []


def test_a_dry_run_plans_the_undo_of_orphans_and_keeps_them(state_dir: Path) -> None:
    """`harness up/run/reset --dry-run` on kind: the orphans' undo shows as API steps, nothing is cleared."""
    ledger = FaultLedger(state_dir / "kind-ledger-parallel-ai")
    ledger.record("istio", "remove abort fault on ai-agent-service",
                  {"delete": [], "apply": [declared_vs("ai-agent-routing")]})
    orphan_every_entry(ledger)
    platform = KindPlatform(KindSettings(dry_run=True))
    planned = clean_orphans(platform)
    assert [p["outcome"] for p in planned] == ["dry run: not undone"]
    assert any("PATCH" in step and "virtualservices/ai-agent-routing" in step for step in platform.steps)
    reset_mesh(platform)
    assert [e.description for e in ledger.orphans()] == ["remove abort fault on ai-agent-service"]
