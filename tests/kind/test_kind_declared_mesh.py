"""The kind platform keeps parallel-ai's Istio resources what Istio can use and what the mesh declares.

Against the emulated API server (kmock): a batch of Istio resources is refused when it would leave more
than one namespace-wide Telemetry in a namespace, computed on the final set (the cluster's, overlaid by
the batch), the declared one re-applied by name included; `reset` returns to exactly the declared
resources, deleting what the mesh does not declare; `apply --delete` of a resource the cluster does not
have is an error, as kubectl's NotFound is, before anything is deleted.
"""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from harness.errors import ConfigError
from harness.mesh.schema import MANIFESTS_DIR, load_yaml_documents
from harness.platforms.kind import render
from tests.kind.kindkit import make_platform
from tests.kind.kmockkit import NAMESPACE, EmulatedCluster

TELEMETRY_PATH = f"/apis/telemetry.istio.io/v1alpha1/namespaces/{NAMESPACE}/telemetries"
VS_PATH = f"/apis/networking.istio.io/v1beta1/namespaces/{NAMESPACE}/virtualservices"
DR_PATH = f"/apis/networking.istio.io/v1beta1/namespaces/{NAMESPACE}/destinationrules"


def _shipped_telemetry() -> dict:
    (shipped,) = [d for d in render.istio_documents() if d["kind"] == "Telemetry"]
    return copy.deepcopy(shipped)


def _tracing_config() -> dict:
    """A selector-less Telemetry that is not declared: the seed's tracing-config, as clusters set up before
    its merge into custom-metrics still have it (or a user's own)."""
    return {"apiVersion": "telemetry.istio.io/v1alpha1", "kind": "Telemetry",
            "metadata": {"name": "tracing-config", "namespace": NAMESPACE},
            "spec": {"tracing": [{"providers": [{"name": "jaeger"}], "randomSamplingPercentage": 1.0}]}}


def _telemetry_names(cluster: EmulatedCluster) -> list[str]:
    return sorted(item["metadata"]["name"] for item in cluster.items(TELEMETRY_PATH))


def _changes(cluster: EmulatedCluster) -> int:
    return len(cluster.requests("PATCH")) + len(cluster.requests("DELETE")) + len(cluster.requests("POST"))


# --- point 1: the final set of namespace-wide Telemetry, whatever the batch's names ---------------------


def test_the_declared_telemetry_reapplied_beside_another_selector_less_one_is_refused(mesh, platform) -> None:
    """Istio applies only the oldest selector-less Telemetry of a namespace and ignores the rest
    (istio/istio pilot/pkg/model/telemetry.go `namespaceWideTelemetryConfig`, called once for the root
    namespace and once for the proxy's). So what counts is the set a batch leaves: the cluster's Telemetry
    overlaid by the batch (same name replaces). Here the declared custom-metrics was deleted, another
    selector-less one applied, and custom-metrics re-applied by its own name (as an experiment's mesh:
    variant or an apply of the shipped file does): two would result, so it is refused before any change."""
    mesh.http.delete(f"{TELEMETRY_PATH}/custom-metrics")
    platform.apply_documents([_tracing_config()], source="tracing.yaml")  # the only one now: accepted
    assert _telemetry_names(mesh) == ["tracing-config"]
    before = _changes(mesh)
    with pytest.raises(ConfigError, match=r"telemetry\.yaml: spec\.selector: Telemetry 'custom-metrics': namespace "
                                          r"parallel-ai would have 2 Telemetry without a selector in kind-parallel-ai "
                                          r"\('custom-metrics', 'tracing-config'\)") as refused:
        platform.apply_documents([_shipped_telemetry()], source="telemetry.yaml")
    assert "namespaceWideTelemetryConfig" in str(refused.value) and "harness reset" in str(refused.value)
    (variant,) = load_yaml_documents(MANIFESTS_DIR / "variants" / "tracing-full-sampling.yaml")
    with pytest.raises(ConfigError, match="spec.selector: Telemetry 'custom-metrics'"):
        platform.apply_documents([variant], source="variants/tracing-full-sampling.yaml")
    assert _changes(mesh) == before and _telemetry_names(mesh) == ["tracing-config"]


def test_a_batch_is_judged_on_the_set_it_leaves_not_on_its_names(mesh, platform) -> None:
    """A batch that gives the only namespace-wide Telemetry a selector (same name replaces, as kubectl
    apply) and adds two new selector-less ones leaves two: refused, nothing of the batch applied (the
    resources before them included). Without the second it leaves one and is accepted."""
    second = copy.deepcopy(_shipped_telemetry())
    second["metadata"]["name"] = "second"
    scoped = _shipped_telemetry()
    scoped["spec"]["selector"] = {"matchLabels": {"app": "user"}}
    rule = next(copy.deepcopy(d) for d in render.istio_documents() if d["kind"] == "DestinationRule")
    rule["spec"].setdefault("trafficPolicy", {})["loadBalancer"] = {"simple": "RANDOM"}
    before = _changes(mesh)
    with pytest.raises(ConfigError, match=r"both\.yaml: spec\.selector: Telemetry 'tracing-config': namespace "
                                          r"parallel-ai would have 2 Telemetry without a selector in kind-parallel-ai "
                                          r"\('second', 'tracing-config'\)"):
        platform.apply_documents([rule, scoped, _tracing_config(), second], source="both.yaml")
    assert _changes(mesh) == before
    applied = platform.apply_documents([scoped, _tracing_config()], source="swap.yaml")["applied"]
    assert applied == ["Telemetry/custom-metrics", "Telemetry/tracing-config"]
    assert mesh.get(f"{TELEMETRY_PATH}/custom-metrics")["spec"]["selector"] == {"matchLabels": {"app": "user"}}


def test_a_second_telemetry_selecting_a_workload_another_one_selects_is_refused(mesh, platform) -> None:
    """Istio's Telemetry API allows one resource selecting a workload (istioctl IST0159: "multiple
    Telemetry resources select the same workload"); the local platform refuses the second at apply, and
    so does kind now, judged on the set the batch leaves in the cluster, before anything is applied."""
    def selecting(name: str, labels: dict[str, str]) -> dict:
        return {"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
                "metadata": {"name": name, "namespace": "parallel-ai"},
                "spec": {"selector": {"matchLabels": labels},
                         "tracing": [{"providers": [{"name": "jaeger"}], "randomSamplingPercentage": 5.0}]}}

    platform.apply_documents([selecting("user-traces", {"app": "user"})], source="first.yaml")
    before = _changes(mesh)
    with pytest.raises(ConfigError) as caught:
        platform.apply_documents([selecting("user-v1-traces", {"app": "user", "version": "v1"})],
                                 source="second.yaml")
    assert (caught.value.file, caught.value.field) == ("second.yaml", "spec.selector")
    assert "Telemetry 'user-v1-traces': Telemetry 'user-traces' also selects the workload" in str(caught.value)
    assert _changes(mesh) == before
    # the same name replaces (kubectl apply): still one resource selecting user's pods
    platform.apply_documents([selecting("user-traces", {"app": "user", "version": "v1"})], source="again.yaml")


def test_a_batch_without_telemetry_does_not_read_the_clusters_telemetry(mesh, platform) -> None:
    """Only a batch that adds or replaces a namespace-wide Telemetry can change the set: others (every
    fault the harness injects) cost no extra API call."""
    rule = next(copy.deepcopy(d) for d in render.istio_documents() if d["kind"] == "DestinationRule")
    reads = len(mesh.requests("GET"))
    platform.apply_documents([rule])
    assert len(mesh.requests("GET")) == reads


def test_every_cluster_is_checked_since_each_istiod_reads_its_own(three, runner) -> None:
    """With three clusters the batch goes to each; one whose cluster already has another selector-less
    Telemetry is refused before any cluster is changed."""
    three["kind-parallel-ai-eu-west"].put("telemetry.istio.io/v1alpha1/telemetries", _tracing_config())
    platform = make_platform(three, runner, clusters=3)
    before = {context: _changes(emulated) for context, emulated in three.items()}
    with pytest.raises(ConfigError, match="would have 2 Telemetry without a selector in kind-parallel-ai-eu-west"):
        platform.apply_documents([_shipped_telemetry()], source="telemetry.yaml")
    assert {context: _changes(emulated) for context, emulated in three.items()} == before


# --- point 2: reset is back to the declared mesh, undeclared resources deleted ----------------------------


def test_reset_after_the_declared_telemetry_was_replaced_ends_with_exactly_the_declared_one(mesh, platform) -> None:
    """The reproduction of point 1 through `reset`: custom-metrics deleted, another selector-less one
    applied; reset deletes it (the mesh does not declare it) before re-applying custom-metrics, so
    parallel-ai ends with the declared Telemetry alone, as the local reset (which pushes the declared
    model) leaves it; Istio would otherwise keep using the older, undeclared one
    (pilot/pkg/model/telemetry.go `namespaceWideTelemetryConfig`: the oldest)."""
    mesh.http.delete(f"{TELEMETRY_PATH}/custom-metrics")
    platform.apply_documents([_tracing_config()], source="tracing.yaml")
    result = platform.reset()
    assert result["deleted"] == ["Telemetry/tracing-config"]
    assert "Telemetry/custom-metrics" in result["applied"]
    assert _telemetry_names(mesh) == ["custom-metrics"]
    assert mesh.get(f"{TELEMETRY_PATH}/custom-metrics")["spec"] == _shipped_telemetry()["spec"]


def test_reset_deletes_what_the_mesh_does_not_declare_and_says_so(mesh, platform, monkeypatch, capsys) -> None:
    """A cluster set up before tracing-config was merged into custom-metrics still has both; a user's own
    rule and a policy fault are not declared either. `harness reset` deletes each (and only those),
    prints them under `deleted`, and leaves exactly the declared resources, which the residual-fault audit
    then finds clean on the Istio side."""
    from harness import cli
    from harness.chaos.audit import snapshot_resources
    from harness.mesh.loader import resource_key

    mesh.put("telemetry.istio.io/v1alpha1/telemetries", _tracing_config())
    scoped = {**_tracing_config(), "metadata": {"name": "user-only", "namespace": NAMESPACE},
              "spec": {"selector": {"matchLabels": {"app": "user"}}, "tracing": [{"randomSamplingPercentage": 5.0}]}}
    mesh.put("telemetry.istio.io/v1alpha1/telemetries", scoped)
    mesh.put("networking.istio.io/v1beta1/destinationrules",
             {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
              "metadata": {"name": "mine", "namespace": NAMESPACE}, "spec": {"host": "user-service"}})
    mesh.put("networking.istio.io/v1beta1/virtualservices",
             {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
              "metadata": {"name": "harness-fault-user-service", "namespace": NAMESPACE},
              "spec": {"hosts": ["user-service"], "http": [{"route": [{"destination": {"host": "user-service"}}]}]}})
    monkeypatch.setattr(cli, "get_platform", lambda name, **options: platform)
    assert cli.main(["reset", "--platform", "kind"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["deleted"] == ["DestinationRule/mine", "VirtualService/harness-fault-user-service",
                                  "Telemetry/tracing-config", "Telemetry/user-only"]
    assert _telemetry_names(mesh) == ["custom-metrics"]
    assert mesh.get(f"{DR_PATH}/mine") is None
    declared = {resource_key(doc): doc.get("spec") for doc in platform.declared_resources()}
    assert snapshot_resources(platform) == declared


def test_reset_deletes_the_undeclared_in_every_cluster_and_says_where(three, runner) -> None:
    """Each istiod reads its own cluster, so each cluster is brought back to the declared set (the
    cross-cluster gateway included, declared with three clusters)."""
    three["kind-parallel-ai-us-west"].put("telemetry.istio.io/v1alpha1/telemetries", _tracing_config())
    platform = make_platform(three, runner, clusters=3)
    result = platform.reset()
    assert result["deleted"] == ["Telemetry/tracing-config in kind-parallel-ai-us-west"]
    assert "Gateway/cross-cluster-gateway" in result["applied"]
    assert all(_telemetry_names(emulated) == ["custom-metrics"] for emulated in three.values())


# --- point 3: apply --delete of an object the cluster does not have -------------------------------------


def test_deleting_a_resource_the_cluster_lacks_is_refused_before_anything_is_deleted(mesh, platform, tmp_path,
                                                                                     monkeypatch, capsys) -> None:
    """`kubectl delete -f` answers `Error from server (NotFound)` and exits 1 for an object that is not
    there, unless --ignore-not-found (kubernetes/kubectl pkg/cmd/delete/delete.go `DeleteResult`: NotFound
    is ignored only with IgnoreNotFound). Here: exit 2 (bad input, ResourceNotFoundError) naming the file,
    the object and the cluster. kubectl would already have deleted the file's objects before the missing
    one; here the whole batch is checked first, so the rule that does exist is not deleted."""
    from harness import cli
    from harness.errors import ResourceNotFoundError

    rule = next(copy.deepcopy(d) for d in render.istio_documents() if d["kind"] == "DestinationRule")
    typo = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "harness-fault-usr-service", "namespace": NAMESPACE},
            "spec": {"hosts": ["user-service"], "http": [{"route": [{"destination": {"host": "user-service"}}]}]}}
    path = tmp_path / "undo.yaml"
    path.write_text(yaml.safe_dump_all([rule, typo]))
    deletes = len(mesh.requests("DELETE"))
    with pytest.raises(ResourceNotFoundError, match=rf"{path}: metadata\.name: VirtualService "
                                                    r"parallel-ai/harness-fault-usr-service not found in cluster "
                                                    r"kind-parallel-ai \(kubectl: NotFound\); nothing was deleted"):
        platform.apply([path], delete=True)
    assert len(mesh.requests("DELETE")) == deletes
    assert mesh.get(f"{DR_PATH}/{rule['metadata']['name']}") is not None
    capsys.readouterr()
    monkeypatch.setattr(cli, "get_platform", lambda name, **options: platform)
    assert cli.main(["apply", "--platform", "kind", "--delete", "-f", str(path)]) == 2
    assert "not found in cluster kind-parallel-ai" in capsys.readouterr().err
    assert len(mesh.requests("DELETE")) == deletes
    path.write_text(yaml.safe_dump(rule))  # what exists is deleted as before
    assert platform.apply([path], delete=True)["deleted"] == [f"DestinationRule/{rule['metadata']['name']}"]
    assert mesh.get(f"{DR_PATH}/{rule['metadata']['name']}") is None


def test_a_resource_missing_in_one_of_three_clusters_is_refused_before_any_cluster_deletes(three, runner) -> None:
    """Each cluster gets the delete (each istiod reads its own); one that lacks the object would answer
    NotFound to kubectl, so the batch is refused, naming that cluster, before any cluster deletes."""
    from harness.errors import ResourceNotFoundError

    three["kind-parallel-ai-us-west"].http.delete(f"{VS_PATH}/ai-agent-routing")
    platform = make_platform(three, runner, clusters=3)
    routing = next(copy.deepcopy(d) for d in render.istio_documents() if d["kind"] == "VirtualService")
    with pytest.raises(ResourceNotFoundError, match="VirtualService parallel-ai/ai-agent-routing not found in "
                                                    "cluster kind-parallel-ai-us-west"):
        platform.apply_documents([routing], delete=True, source="routing.yaml")
    for context in ("kind-parallel-ai-us-east", "kind-parallel-ai-eu-west"):
        assert three[context].get(f"{VS_PATH}/ai-agent-routing") is not None


def test_the_ledgers_undo_deletes_a_fault_from_every_cluster_that_still_has_it(three, runner) -> None:
    """The fault ledger undoes an Istio change with missing_ok (kubectl delete --ignore-not-found: NotFound
    ignored, kubectl pkg/cmd/delete/delete.go `DeleteResult`). A fault VirtualService that one cluster
    already lost (deleted there by hand, or that cluster's reset) is still deleted from the other two, and
    the result says where it was not found."""
    from harness.chaos.ledger import restore_documents

    platform = make_platform(three, runner, clusters=3)
    fault = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
             "metadata": {"name": "harness-fault-user-service", "namespace": NAMESPACE},
             "spec": {"hosts": ["user-service"], "http": [{"route": [{"destination": {"host": "user-service"}}]}]}}
    platform.apply_documents([fault], source="fault")
    three["kind-parallel-ai-us-west"].http.delete(f"{VS_PATH}/harness-fault-user-service")
    restore_documents(platform, {"delete": [fault]})
    assert all(emulated.get(f"{VS_PATH}/harness-fault-user-service") is None for emulated in three.values())
    result = platform.apply_documents([fault], delete=True, source="fault", missing_ok=True)
    assert result["not_found"] == [f"VirtualService/harness-fault-user-service in {context}" for context in three]


def test_a_declared_manifest_without_a_namespace_is_the_mesh_namespaces_and_not_deleted_by_reset() -> None:
    """The platform applies a manifest without metadata.namespace in the mesh's namespace, so reset must
    count the live object as declared, not delete and re-create it (a moment without the policy)."""
    from harness.mesh.loader import undeclared

    declared = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                "metadata": {"name": "default"}, "spec": {"mtls": {"mode": "STRICT"}}}
    live = {**declared, "metadata": {"name": "default", "namespace": "parallel-ai"}}
    other = {**declared, "metadata": {"name": "other", "namespace": "parallel-ai"}}
    assert undeclared([live, other], [declared]) == [other]
