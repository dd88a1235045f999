"""Every Kubernetes-facing action of the kind platform, and its undo, against an emulated API server (kmock).

The emulator stores objects as a real API server does over HTTP; it has no controllers, so the tests
that need pods to come back run the fake ReplicaSet controller (`controller` fixture) or call
`reconcile()` themselves. The chaos actions are the same functions experiments call.
"""

from __future__ import annotations

import copy
import json
import time

import pytest

from harness.chaos.actions import fail_region, inject_abort, inject_delay, kill_pods, remove_faults, restore_region
from harness.chaos.context import current, use_platform
from harness.errors import ConfigError, ManifestError, PlatformError
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents
from harness.net import free_port
from harness.platforms.kind import ClientKube, CommandResult, NamespaceGuard, render
from harness.platforms.kind.kube import DEPLOYMENTS, PODS
from harness.platforms.kind.appscripts import APP_KILL_SCRIPT
from harness.platforms.kind.platform import HELD_ANNOTATION
from tests.kind.kindkit import ScriptedRunner, make_platform, seed_mesh
from tests.kind.kmockkit import NAMESPACE, EmulatedCluster

VS_PATH = f"/apis/networking.istio.io/v1beta1/namespaces/{NAMESPACE}/virtualservices"
DEPLOYMENTS_PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
PODS_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"


@pytest.fixture
def chaos(platform):
    """The platform as the one chaos actions act on; every undo still pending is run afterwards."""
    use_platform(platform)
    try:
        yield platform
    finally:
        current().undo.run_all()
        use_platform(None)


def _eventually(check, timeout_s: float = 10.0) -> bool:
    """Poll `check` until it holds (True) or `timeout_s` passes (False); for controller-driven state."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _declared_vs(name: str) -> dict:
    return next(d for d in render.istio_documents() if d["kind"] == "VirtualService" and d["metadata"]["name"] == name)


# --- the emulator itself -------------------------------------------------------------------------------


def test_the_emulator_applies_label_selectors_and_answers_creates_with_201(mesh: EmulatedCluster) -> None:
    response = mesh.http.get(PODS_PATH, params={"labelSelector": "app=user,istio-locality=eu-west"})
    assert [p["metadata"]["labels"]["istio-locality"] for p in response.json()["items"]] == ["eu-west"]
    created = mesh.http.post(VS_PATH, json={"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                                            "metadata": {"name": "x", "namespace": NAMESPACE}, "spec": {}})
    assert created.status_code == 201


# --- pods and label selection -------------------------------------------------------------------------


def test_pods_lists_every_deployment_slot_with_service_version_and_region_from_the_api(mesh, platform) -> None:
    pods = {p["name"]: p for p in platform.pods()}
    assert sorted(pods) == ["ai-agent-v1-us-east-0", "ai-agent-v1-us-west-0", "ai-agent-v2-eu-west-0",
                            "analytics-v1-us-west-0", "user-v1-eu-west-0", "user-v1-us-east-0"]
    pod = pods["ai-agent-v2-eu-west-0"]
    assert (pod["service"], pod["app"], pod["version"], pod["region"]) == ("ai-agent-service", "ai-agent", "v2",
                                                                          "eu-west")
    assert pod["ready"] and pod["pod_name"].startswith("ai-agent-v2-eu-west-") and pod["pid"] is None
    assert (pod["sidecar_pid"], pod["inbound_port"], pod["app_port"]) == (None, 15006, 8080)
    assert platform.is_up()


def test_select_pods_asks_the_api_server_by_service_version_and_region_labels(mesh, platform) -> None:
    chosen = platform.select_pods(app="ai-agent", version="v1", region="us-west")
    assert [p["metadata"]["name"].rsplit("-", 2)[0] for p in chosen] == ["ai-agent-v1-us-west"]
    assert [p["metadata"]["labels"]["version"] for p in platform.select_pods(app="ai-agent")] == ["v1", "v1", "v2"]
    assert {p["metadata"]["labels"]["istio-locality"] for p in platform.select_pods(region="us-east")} == {"us-east"}


def test_pods_are_filtered_by_labels_on_the_client_too(mesh, platform) -> None:
    kube = ClientKube(mesh.api_client(), "kind-parallel-ai")
    found = kube.list(PODS, NAMESPACE, {"app": "analytics"})
    assert [p["metadata"]["labels"]["app"] for p in found] == ["analytics"]


def test_a_slot_without_a_pod_is_listed_not_ready(mesh, platform) -> None:
    victim = next(p for p in platform.pods() if p["name"] == "user-v1-eu-west-0")["pod_name"]
    mesh.http.delete(f"{PODS_PATH}/{victim}")
    pod = next(p for p in platform.pods() if p["name"] == "user-v1-eu-west-0")
    assert (pod["ready"], pod["pod_name"]) == (False, None)
    assert not platform.status()["up"]


# --- pod kill ---------------------------------------------------------------------------------------------


def test_kill_deletes_the_slots_pod_with_grace_zero_and_its_replacement_keeps_the_name(mesh, platform) -> None:
    before = next(p for p in platform.pods() if p["name"] == "ai-agent-v1-us-east-0")["pod_name"]
    result = platform.kill("ai-agent-v1-us-east-0")
    assert (result["pod"], result["pod_name"], result["deleted"]) == ("ai-agent-v1-us-east-0", before, True)
    assert mesh.get(f"{PODS_PATH}/{before}") is None
    delete = mesh.requests("DELETE")[-1]
    assert delete.params["gracePeriodSeconds"] == "0", delete.params
    mesh.reconcile()
    after = next(p for p in platform.pods() if p["name"] == "ai-agent-v1-us-east-0")
    assert after["ready"] and after["pod_name"] != before


def test_kill_also_takes_the_live_pod_name(mesh, platform) -> None:
    live = next(p for p in platform.pods() if p["name"] == "ai-agent-v1-us-east-0")["pod_name"]
    assert platform.kill(live)["pod"] == "ai-agent-v1-us-east-0"


def test_kill_app_only_stops_the_app_container_in_place(mesh, platform, runner: ScriptedRunner) -> None:
    live = next(p for p in platform.pods() if p["name"] == "user-v1-us-east-0")["pod_name"]
    result = platform.kill("user-v1-us-east-0", app_only=True)
    assert result["deleted"] is False and mesh.get(f"{PODS_PATH}/{live}") is not None
    (command,) = runner.commands
    assert command.argv[:9] == ("kubectl", "--context", "kind-parallel-ai", "-n", "parallel-ai", "exec", live, "-c",
                                "app")
    assert command.argv[-4:] == ("-c", APP_KILL_SCRIPT, "-m", "harness.services")  # SIGKILL by argv


def test_kill_pods_action_kills_by_service_version_and_waits_for_the_replacement(controller, chaos) -> None:
    killed = kill_pods(service="ai-agent", version="v1", region="us-west", count=1, max_percent=50)
    assert [k["pod"] for k in killed] == ["ai-agent-v1-us-west-0"]
    undone = current().undo.run_all()  # waits until the slot is ready again, with a new pod in it
    assert [u.error for u in undone] == [None]
    assert next(p for p in chaos.pods() if p["name"] == "ai-agent-v1-us-west-0")["ready"]


def test_killing_an_unknown_pod_lists_the_known_ones(mesh, platform) -> None:
    with pytest.raises(ConfigError, match="no pod 'ai-agent-v9-0'; pods: ai-agent-v1-us-east-0, "):
        platform.kill("ai-agent-v9-0")


# --- VirtualService faults and reset ---------------------------------------------------------------------


def test_inject_abort_patches_the_virtual_service_and_reset_restores_the_declared_one(mesh, chaos) -> None:
    declared = _declared_vs("ai-agent-routing")
    result = inject_abort(service="ai-agent", http_status=503, percentage=50)
    assert result["applied"] == ["ai-agent-routing"]
    live = mesh.get(f"{VS_PATH}/ai-agent-routing")
    assert all(route["fault"]["abort"] == {"httpStatus": 503, "percentage": {"value": 50.0}}
               for route in live["spec"]["http"])
    chaos.reset()
    assert mesh.get(f"{VS_PATH}/ai-agent-routing")["spec"] == declared["spec"]


def test_a_fault_on_a_host_without_a_virtual_service_creates_one_and_its_undo_deletes_it(mesh, chaos) -> None:
    inject_delay(service="analytics", delay_ms=200, percentage=100)
    created = mesh.get(f"{VS_PATH}/harness-fault-analytics-service")
    assert created["spec"]["http"][0]["fault"]["delay"] == {"fixedDelay": "0.200s", "percentage": {"value": 100.0}}
    remove_faults()
    assert mesh.get(f"{VS_PATH}/harness-fault-analytics-service") is None
    assert mesh.get(f"{VS_PATH}/ai-agent-routing")["spec"] == _declared_vs("ai-agent-routing")["spec"]


def test_the_undo_of_a_header_matched_fault_restores_the_routes_exactly(mesh, chaos) -> None:
    inject_abort(service="ai-agent", http_status=500, headers={"x-user-tier": "premium"})
    assert len(mesh.get(f"{VS_PATH}/ai-agent-routing")["spec"]["http"]) == 6
    remove_faults()
    assert mesh.get(f"{VS_PATH}/ai-agent-routing")["spec"] == _declared_vs("ai-agent-routing")["spec"]


def test_reset_deletes_every_harness_fault_virtual_service_and_reapplies_the_declared_resources(mesh, platform) -> None:
    platform.apply_documents([{"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                               "metadata": {"name": "harness-fault-user-service", "namespace": NAMESPACE},
                               "spec": {"hosts": ["user-service"], "http": [{"route": [{"destination": {
                                   "host": "user-service"}}]}]}}])
    mesh.http.delete(f"/apis/security.istio.io/v1beta1/namespaces/{NAMESPACE}/authorizationpolicies/ai-agent-authz")
    result = platform.reset()
    assert result["deleted"] == ["VirtualService/harness-fault-user-service"]
    assert "AuthorizationPolicy/ai-agent-authz" in result["applied"]
    assert mesh.get(f"/apis/security.istio.io/v1beta1/namespaces/{NAMESPACE}/authorizationpolicies/ai-agent-authz")


def _pod_gone_at_reset(mesh, runner: ScriptedRunner, live: str, *, when: str, replace: bool) -> None:
    """Make the pod `live` go away while reset clears knobs: at its own `kubectl exec` or at the one before
    it (`when`), replaced by its ReplicaSet with a pod that is not ready yet when `replace`. An exec into
    a pod the API server no longer has fails as kubectl's does."""
    knobs = runner.reply

    def reply(command):
        argv = list(command.argv)
        if "exec" not in argv:
            return knobs(command)
        target = argv[argv.index("exec") + 1]
        if mesh.get(f"{PODS_PATH}/{live}") is not None and (target == live) == (when == "own exec"):
            mesh.http.delete(f"{PODS_PATH}/{live}")
            if replace:
                mesh.reconcile(ready=False)
        if mesh.get(f"{PODS_PATH}/{target}") is None:
            raise PlatformError(f'`kubectl exec {target}` failed with exit code 1: Error from server (NotFound): '
                                f'pods "{target}" not found')
        return knobs(command)

    runner.reply = reply


@pytest.mark.parametrize("when", ["own exec", "earlier exec"])
@pytest.mark.parametrize("replace", [False, True])
def test_reset_skips_a_pod_that_went_away_meanwhile_and_its_replacement_has_cleared_knobs(
        mesh, platform, runner: ScriptedRunner, when: str, replace: bool) -> None:
    """A pod can go at any time (a node drain, another controller): reset, which clears every app's knobs
    one `kubectl exec` at a time, must not fail on it, nor exec into a replacement still starting. The
    replacement's app starts with cleared knobs."""
    platform.set_knobs("user-v1-eu-west-0", latency_ms=300)
    live = next(p for p in platform.pods() if p["name"] == "user-v1-eu-west-0")["pod_name"]
    _pod_gone_at_reset(mesh, runner, live, when=when, replace=replace)
    result = platform.reset()
    assert result["replaced_meanwhile"] == ["user-v1-eu-west-0"]
    assert "user-v1-eu-west-0" not in result["knobs_cleared"] and len(result["knobs_cleared"]) > 3
    execs = [c.argv[c.argv.index("exec") + 1] for c in runner.commands if "exec" in c.argv]
    if replace:  # still starting: reset left it alone
        replacement = next(p for p in platform.pods() if p["name"] == "user-v1-eu-west-0")
        assert not replacement["ready"] and replacement["pod_name"] not in (live, None)
        assert replacement["pod_name"] not in execs
    else:
        mesh.reconcile()
        replacement = next(p for p in platform.pods() if p["name"] == "user-v1-eu-west-0")
        assert replacement["ready"] and replacement["pod_name"] != live
        assert platform.get_knobs("user-v1-eu-west-0")["latency_ms"] == 0


def test_reset_still_fails_when_clearing_knobs_fails_on_a_pod_that_is_still_there(mesh, platform, runner) -> None:
    live = next(p for p in platform.pods() if p["name"] == "user-v1-eu-west-0")["pod_name"]
    knobs = runner.reply

    def reply(command):
        argv = list(command.argv)
        if "exec" in argv and argv[argv.index("exec") + 1] == live:
            raise PlatformError(f"`kubectl exec {live}` failed with exit code 1: container not running")
        return knobs(command)

    runner.reply = reply
    with pytest.raises(PlatformError, match="container not running"):
        platform.reset()


def test_resources_reads_back_manifests_that_validate_and_match_the_declared_ones(mesh, platform) -> None:
    found = {(d["kind"], d["metadata"]["name"]): d for d in platform.resources()}
    declared = {(d["kind"], d["metadata"]["name"]): d for d in render.istio_documents()}
    assert found.keys() == declared.keys()
    assert all(found[key]["spec"] == declared[key]["spec"] for key in declared)
    platform.apply_documents(list(found.values()))  # validates every one strictly


def test_apply_reads_validates_and_applies_files(mesh, platform, tmp_path) -> None:
    path = tmp_path / "fault.yaml"
    vs = copy.deepcopy(_declared_vs("ai-agent-routing"))
    vs["spec"]["http"][-1]["timeout"] = "2s"
    path.write_text(json.dumps(vs))
    assert platform.apply([path])["applied"] == ["VirtualService/ai-agent-routing"]
    assert mesh.get(f"{VS_PATH}/ai-agent-routing")["spec"]["http"][-1]["timeout"] == "2s"
    platform.apply([path], delete=True)
    assert mesh.get(f"{VS_PATH}/ai-agent-routing") is None


def test_apply_documents_validates_strictly_before_any_call(mesh, platform) -> None:
    vs = copy.deepcopy(_declared_vs("ai-agent-routing"))
    vs["spec"]["http"][-1]["route"][0]["weigth"] = 5
    patches_before = len(mesh.requests("PATCH"))
    with pytest.raises(ManifestError, match="weigth: unknown field"):
        platform.apply_documents([vs], source="my-fault.yaml")
    assert len(mesh.requests("PATCH")) == patches_before


# --- region failover, scaling, hold ------------------------------------------------------------------------


def test_fail_region_scales_its_deployments_to_zero_and_restore_scales_them_back(controller, chaos) -> None:
    result = fail_region("us-east")
    assert result["pods"] == ["ai-agent-v1-us-east-0", "user-v1-us-east-0"]
    for name in ("ai-agent-v1-us-east", "user-v1-us-east"):
        deployment = controller.get(f"{DEPLOYMENTS_PATH}/{name}")
        assert deployment["spec"]["replicas"] == 0
        assert deployment["metadata"]["annotations"][HELD_ANNOTATION] == "1"
    assert controller.get(f"{DEPLOYMENTS_PATH}/user-v1-eu-west")["spec"]["replicas"] == 1
    restore_region("us-east")  # waits until both pods are ready again
    for name in ("ai-agent-v1-us-east", "user-v1-us-east"):
        deployment = controller.get(f"{DEPLOYMENTS_PATH}/{name}")
        assert deployment["spec"]["replicas"] == 1
        assert HELD_ANNOTATION not in (deployment["metadata"].get("annotations") or {})
    # A controller that read replicas 0 just before the restore may still replace a pod once (a real
    # ReplicaSet can too); the slots are ready again within a moment either way.
    assert _eventually(lambda: all(p["ready"] for p in chaos.pods()))


def test_hold_is_undone_from_the_annotation_even_by_another_process(mesh, cluster, runner) -> None:
    first = make_platform({cluster.context: cluster}, runner, max_percent=100)  # its only pod: raised explicitly
    first.hold("analytics-v1-us-west-0", down=True)
    mesh.reconcile()
    assert not next(p for p in first.pods() if p["name"] == "analytics-v1-us-west-0")["ready"]
    second = make_platform({cluster.context: cluster}, ScriptedRunner())  # e.g. `harness` run again after a crash
    assert second.hold("analytics-v1-us-west-0", down=False)["replicas"] == 1
    mesh.reconcile()
    assert next(p for p in second.pods() if p["name"] == "analytics-v1-us-west-0")["ready"]


def test_an_undo_registered_first_restores_a_region_when_the_failover_breaks_midway(controller, chaos,
                                                                                    monkeypatch) -> None:
    real_hold = chaos.hold

    def hold_then_fail(pod: str, *, down: bool):
        if down and pod == "user-v1-us-east-0":
            raise PlatformError("the API server went away")
        return real_hold(pod, down=down)

    monkeypatch.setattr(chaos, "hold", hold_then_fail)
    with pytest.raises(PlatformError):
        fail_region("us-east")
    assert controller.get(f"{DEPLOYMENTS_PATH}/ai-agent-v1-us-east")["spec"]["replicas"] == 0
    current().undo.run_all()
    assert controller.get(f"{DEPLOYMENTS_PATH}/ai-agent-v1-us-east")["spec"]["replicas"] == 1


# --- safety ----------------------------------------------------------------------------------------------


def test_a_non_kind_context_is_refused_before_any_api_client_exists(cluster, runner) -> None:
    platform = make_platform({"prod-east": cluster}, runner, context="prod-east")
    with pytest.raises(ConfigError, match="refusing to act on kube context 'prod-east': the kind platform acts only "
                                          "on contexts named kind-\\*, unless --allow-context prod-east"):
        platform.kill("ai-agent-v1-us-east-0")
    assert platform.opened_contexts == [] and runner.commands == []
    with pytest.raises(ConfigError, match="refusing to act on kube context 'prod-east'"):
        platform.up()
    assert runner.commands == []


def test_allow_context_admits_exactly_the_named_context(mesh, runner) -> None:
    allowed = make_platform({"staging": mesh}, runner, context="staging", allow_context="staging")
    assert len(allowed.pods()) == 6
    other = make_platform({"staging": mesh}, runner, context="staging", allow_context="stage")
    with pytest.raises(ConfigError, match="--allow-context names 'stage', not this one"):
        other.pods()


def test_no_call_can_reach_a_namespace_other_than_parallel_ai_and_external_ai(mesh, platform) -> None:
    # The allow-list is deliberate: parallel-ai (the mesh) and external-ai (the external AI API's stand-in,
    # which the platform creates and owns); istio-system, kube-system and everything else stay out of reach.
    guarded = platform._kube(platform.settings.cluster_specs()[0])
    assert guarded.namespaces == ("parallel-ai", "external-ai")
    requests_before = len(mesh.requests())
    for call in (lambda: guarded.list(PODS, "kube-system"),
                 lambda: guarded.delete(PODS, "istio-system", "istiod-1", grace_period_s=0),
                 lambda: guarded.patch(DEPLOYMENTS, "default", "web", {"spec": {"replicas": 0}}),
                 lambda: guarded.get(DEPLOYMENTS, "external-ai-2", "external-ai-api")):
        with pytest.raises(PlatformError, match="the harness touches only 'parallel-ai' and 'external-ai'$"):
            call()
    assert len(mesh.requests()) == requests_before
    assert guarded.get(DEPLOYMENTS, "external-ai", "external-ai-api")["metadata"]["namespace"] == "external-ai"


def test_a_guard_with_one_namespace_refuses_every_other_and_one_with_none_cannot_be_made(mesh) -> None:
    guarded = NamespaceGuard(ClientKube(mesh.api_client(), "kind-parallel-ai"), NAMESPACE)
    with pytest.raises(PlatformError, match="refusing to list pods in namespace 'external-ai': the harness touches "
                                            "only 'parallel-ai'$"):
        guarded.list(PODS, "external-ai")
    with pytest.raises(ValueError, match="at least one allowed namespace"):
        NamespaceGuard(ClientKube(mesh.api_client(), "kind-parallel-ai"))


def test_the_mesh_is_not_up_without_the_external_ai_stand_in_so_up_completes_it(cluster, platform) -> None:
    seed_mesh(cluster, external_ai=False)
    assert not platform.is_up()
    cluster.put("apps/v1/deployments",
                next(d for d in render.external_ai_documents() if d["kind"] == "Deployment"))
    assert platform.is_up()


def test_apply_documents_refuses_another_namespace_naming_the_field(mesh, platform) -> None:
    vs = copy.deepcopy(_declared_vs("ai-agent-routing"))
    vs["metadata"]["namespace"] = "default"
    with pytest.raises(ConfigError, match="my.yaml: metadata.namespace: .*touches only namespace 'parallel-ai', "
                                          "got 'default'"):
        platform.apply_documents([vs], source="my.yaml")


def test_a_second_telemetry_without_a_selector_is_refused_before_any_change(mesh, platform) -> None:
    """Istio would apply only the oldest selector-less Telemetry of parallel-ai (pilot
    namespaceWideTelemetryConfig); the shipped one replaced by name (the full-sampling variant) is fine."""
    (shipped,) = [d for d in render.istio_documents() if d["kind"] == "Telemetry"]
    extra = copy.deepcopy(shipped)
    extra["metadata"]["name"] = "extra"
    patches_before = len(mesh.requests("PATCH"))
    with pytest.raises(ConfigError, match="extra.yaml: spec.selector: Telemetry 'extra': namespace parallel-ai "
                                          "would have 2 Telemetry without a selector in kind-parallel-ai "
                                          "\\('custom-metrics', 'extra'\\)"):
        platform.apply_documents([extra], source="extra.yaml")
    extra["spec"]["selector"] = {"matchLabels": {}}  # selects no workload in particular: namespace-wide
    with pytest.raises(ConfigError, match="would have 2 Telemetry without a selector"):
        platform.apply_documents([extra], source="extra.yaml")
    assert len(mesh.requests("PATCH")) == patches_before
    (variant,) = load_yaml_documents(MANIFESTS_DIR / "variants" / "tracing-full-sampling.yaml")
    assert platform.apply_documents([variant], source="variant.yaml")["applied"] == ["Telemetry/custom-metrics"]


def test_apply_documents_refuses_anything_but_istio_resources(mesh, platform) -> None:
    deployment = next(d for d in render.mesh_kubernetes_documents() if d["kind"] == "Deployment")
    with pytest.raises(ConfigError, match="kind: document 0 \\(Deployment\\): only Istio resources are applied live"):
        platform.apply_documents([deployment], source="x.yaml")


def test_the_blast_radius_limit_refuses_taking_too_many_of_a_services_pods_down(mesh, cluster, runner) -> None:
    platform = make_platform({cluster.context: cluster}, runner, max_percent=50)
    platform.kill("user-v1-us-east-0")  # 1 of 2 user pods down: 50%, allowed
    with pytest.raises(ConfigError, match="max_percent: taking one more user-service pod down would leave 2 of 2 "
                                          "down, over the blast-radius limit of 50%"):
        platform.kill("user-v1-eu-west-0")
    with pytest.raises(ConfigError, match="blast-radius"):
        platform.hold("user-v1-eu-west-0", down=True)
    assert next(p for p in platform.pods() if p["name"] == "user-v1-eu-west-0")["ready"]


# --- app knobs --------------------------------------------------------------------------------------------


def test_set_knobs_puts_the_values_to_the_app_from_inside_its_pod(mesh, cluster) -> None:
    runner = ScriptedRunner(lambda command: '200\n{"latency_ms": 50.0, "error_rate": 0.0}\n')
    platform = make_platform({cluster.context: cluster}, runner)
    assert platform.set_knobs("user-v1-us-east-0", latency_ms=50) == {"latency_ms": 50.0, "error_rate": 0.0}
    (command,) = runner.commands
    live = next(p for p in platform.pods() if p["name"] == "user-v1-us-east-0")["pod_name"]
    assert command.argv[5:11] == ("exec", live, "-c", "app", "--", "python")
    assert "http://127.0.0.1:8080/admin/knobs" in command.argv[-2] and command.argv[-1] == '{"latency_ms": 50}'


def test_set_knobs_reports_the_apps_400_as_a_config_error(mesh, cluster) -> None:
    runner = ScriptedRunner(lambda command: CommandResult(command, 0, '400\n{"error": "unknown knob \'speed\'"}\n'))
    platform = make_platform({cluster.context: cluster}, runner)
    with pytest.raises(ConfigError, match="knobs: unknown knob 'speed'"):
        platform.set_knobs("user-v1-us-east-0", speed=1)


# --- three clusters -------------------------------------------------------------------------------------------


def test_three_clusters_act_on_the_api_of_the_region_a_pod_runs_in(three, runner) -> None:
    platform = make_platform(three, runner, clusters=3)
    pods = platform.pods()
    assert {p["name"]: p["context"] for p in pods}["analytics-v1-us-west-0"] == "kind-parallel-ai-us-west"
    assert len(pods) == 6 and all(p["ready"] for p in pods)
    platform.hold("user-v1-eu-west-0", down=True)
    assert three["kind-parallel-ai-eu-west"].get(f"{DEPLOYMENTS_PATH}/user-v1-eu-west")["spec"]["replicas"] == 0
    only_v1 = copy.deepcopy(_declared_vs("ai-agent-routing"))
    only_v1["spec"]["http"] = [{"route": [{"destination": {"host": "ai-agent-service", "subset": "v1"}}]}]
    platform.apply_documents([only_v1])
    for emulated in three.values():  # every istiod reads its own cluster's configuration
        assert len(emulated.get(f"{VS_PATH}/ai-agent-routing")["spec"]["http"]) == 1


def test_three_clusters_isolate_a_region_by_removing_its_cross_cluster_gateway(three, runner) -> None:
    platform = make_platform(three, runner, clusters=3)
    west = three["kind-parallel-ai-us-west"]
    path = f"/apis/networking.istio.io/v1beta1/namespaces/{NAMESPACE}/gateways/cross-cluster-gateway"
    platform.isolate_region("us-west", isolated=False)
    assert west.get(path)["spec"]["servers"][0]["tls"]["mode"] == "AUTO_PASSTHROUGH"
    platform.isolate_region("us-west")
    assert west.get(path) is None
    assert three["kind-parallel-ai-us-east"].get(path) is None  # only us-west was touched


def test_isolating_a_region_needs_three_clusters(platform) -> None:
    with pytest.raises(ConfigError, match="needs --clusters 3"):
        platform.isolate_region("us-west")


# --- API errors, translated at the boundary -------------------------------------------------------------


def test_an_api_error_names_the_call_and_the_server_message(mesh) -> None:
    kube = ClientKube(mesh.api_client(), "kind-parallel-ai")
    with pytest.raises(PlatformError, match="Kubernetes API \\(kind-parallel-ai\\) PATCH "
                                            "/apis/apps/v1/namespaces/parallel-ai/deployments/nope failed: 404"):
        kube.patch(DEPLOYMENTS, NAMESPACE, "nope", {"spec": {"replicas": 0}})
    assert kube.get(DEPLOYMENTS, NAMESPACE, "nope") is None
    assert kube.delete(PODS, NAMESPACE, "nope", grace_period_s=0) is False


def test_an_unreachable_api_server_means_the_mesh_is_not_up() -> None:
    import socket

    from kubernetes import client

    from harness.errors import NotUpError

    port = free_port()  # nothing listens there
    configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 0
    kube = ClientKube(client.ApiClient(configuration), "kind-parallel-ai")
    with pytest.raises(NotUpError, match="the Kubernetes API of kind-parallel-ai is unreachable"):
        kube.list(PODS, NAMESPACE)


def test_the_default_blast_radius_is_half_of_a_services_pods_and_is_raised_only_explicitly(mesh, cluster,
                                                                                          runner) -> None:
    """Issue 13 point 7: 50% per service by default; the only pod of a service needs --max-percent 100."""
    platform = make_platform({cluster.context: cluster}, runner)
    assert platform.settings.max_percent == 50
    with pytest.raises(ConfigError, match="1 of 1 down, over the blast-radius limit of 50% .* raise it explicitly "
                                          "with --max-percent or HARNESS_MAX_PERCENT"):
        platform.kill("analytics-v1-us-west-0")
    assert platform.kill("user-v1-us-east-0")["deleted"]  # 1 of user-service's 2 pods: within 50%
    raised = make_platform({cluster.context: cluster}, runner, max_percent=100)
    assert raised.kill("analytics-v1-us-west-0")["deleted"]
