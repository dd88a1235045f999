"""The kind platform's guards (issue 13, point 7): the context guard checks the API server's address, not
only the name; the blast radius defaults to 50% per service; everything applied carries exportTo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.platforms.kind import KindPlatform, KindSettings, render
from harness.platforms.kind.safety import check_context, context_server, is_kind_server
from tests.kind.kindkit import ScriptedRunner, make_platform
from tests.kind.kmockkit import EmulatedCluster


def _kubeconfig(path: Path, servers: dict[str, str]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": f"c-{name}", "cluster": {"server": server}} for name, server in servers.items()],
        "contexts": [{"name": name, "context": {"cluster": f"c-{name}", "user": "u"}} for name in servers],
        "users": [{"name": "u", "user": {}}]}))
    return path


@pytest.mark.parametrize("server", ["https://127.0.0.1:41235", "https://localhost:6443", "https://[::1]:6443",
                                    "https://172.18.0.2:6443", "https://192.168.49.2:6443",
                                    "https://[fc00:f853:ccd:e793::2]:6443"])
def test_loopback_and_docker_network_addresses_are_where_kind_puts_an_api_server(server: str) -> None:
    assert is_kind_server(server)


@pytest.mark.parametrize("server", ["https://203.0.113.7:6443", "https://api.prod.example.com:443",
                                    "https://10.20.0.1:6443", ""])
def test_anything_else_is_not(server: str) -> None:
    assert not is_kind_server(server)


def test_a_context_named_kind_that_points_at_a_remote_cluster_is_refused_unless_allowed(tmp_path: Path) -> None:
    config = _kubeconfig(tmp_path / "config", {"kind-parallel-ai": "https://api.prod.example.com:443"})
    platform = KindPlatform(KindSettings(kubeconfig=config), runner=ScriptedRunner(),
                            kube_factory=lambda ctx: pytest.fail("a client was made for a refused context"))
    with pytest.raises(ConfigError, match="refusing to act on kube context 'kind-parallel-ai': its API server "
                                          "https://api.prod.example.com:443 is neither on 127.0.0.1 nor on a Docker "
                                          "network, .* --allow-context kind-parallel-ai"):
        platform.pods()
    allowed = KindPlatform(KindSettings(kubeconfig=config, allow_context="kind-parallel-ai"), runner=ScriptedRunner(),
                           kube_factory=lambda ctx: pytest.fail("reached"))
    with pytest.raises(pytest.fail.Exception, match="reached"):
        allowed.pods()


def test_the_server_is_read_from_the_kubeconfig_kubectl_would_read(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    first = _kubeconfig(tmp_path / "a", {"kind-x": "https://127.0.0.1:1"})
    second = _kubeconfig(tmp_path / "b", {"kind-x": "https://203.0.113.7:6443", "kind-y": "https://172.18.0.9:6443"})
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    assert context_server("kind-x", None) == "https://127.0.0.1:1"  # the first file to define it wins
    assert context_server("kind-y", None) == "https://172.18.0.9:6443"
    assert context_server("kind-new", None) is None  # not created yet: kind will put it on 127.0.0.1
    assert context_server("kind-x", second) == "https://203.0.113.7:6443"
    check_context("kind-new", None, None)
    with pytest.raises(ConfigError, match="not-kind"):
        check_context("not-kind", None, "https://127.0.0.1:6443")


def test_the_emulated_cluster_on_loopback_passes_the_guard(tmp_path: Path) -> None:
    cluster = EmulatedCluster().start()
    try:
        config = _kubeconfig(tmp_path / "config", {cluster.context: cluster.url})
        platform = make_platform({cluster.context: cluster}, ScriptedRunner(), kubeconfig=config)
        assert platform.pods()  # reaches the API: every declared slot listed (none live)
    finally:
        cluster.stop()


def test_every_exportable_resource_the_harness_applies_is_exported_to_parallel_ai_only(mesh, platform) -> None:
    """exportTo ["."] on VirtualService, DestinationRule and ServiceEntry (the bundled CRDs' kinds with the
    field): Istio's `exportTo` reference, "." = the namespace the resource is declared in; so nothing the
    harness applies reaches another namespace's proxies, whatever hosts it names."""
    declared = render.istio_documents()
    exportable = [d for d in declared if d["kind"] in render.EXPORTABLE_KINDS]
    assert {d["kind"] for d in exportable} == {"VirtualService", "DestinationRule", "ServiceEntry"}
    assert all(d["spec"]["exportTo"] == ["."] for d in exportable)
    routing = next(d for d in declared if d["kind"] == "VirtualService")
    bare = {**routing, "spec": {k: v for k, v in routing["spec"].items() if k != "exportTo"}}
    platform.apply_documents([bare])
    stored = mesh.get(f"/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/virtualservices/"
                      f"{routing['metadata']['name']}")
    assert stored["spec"]["exportTo"] == ["."]


def test_a_resource_exported_beyond_parallel_ai_is_refused_naming_the_field(mesh, platform) -> None:
    routing = next(d for d in render.istio_documents() if d["kind"] == "VirtualService")
    wide = {**routing, "spec": {**routing["spec"], "exportTo": ["*"]}}
    before = len(mesh.requests("PATCH"))
    with pytest.raises(ConfigError, match=r"spec.exportTo: .*expected exportTo \[\"\.\"\] or none, got \['\*'\]"):
        platform.apply_documents([wide], source="wide.yaml")
    assert len(mesh.requests("PATCH")) == before  # nothing applied


def test_the_harness_gateways_select_only_its_own_gateway_pods(mesh, platform) -> None:
    """Istio's Gateway reference: a Gateway applies to gateway workloads matching its selector in every
    namespace unless PILOT_SCOPE_GATEWAY_TO_NAMESPACE is set; `istio: ingressgateway` alone would also
    configure an existing cluster's istio-system ingress gateway. The harness's pods carry one more label."""
    gateways = [d for d in render.istio_documents() + render.multicluster_documents() if d["kind"] == "Gateway"]
    cluster_own_ingress = {"app": "istio-ingressgateway", "istio": "ingressgateway"}  # istio-system's, as installed
    ours = next(d for d in render.ingress_gateway_documents() if d["kind"] == "Deployment")
    our_labels = ours["spec"]["template"]["metadata"]["labels"]
    (eastwest,) = render.eastwest_operator(KindSettings(clusters=3).cluster_specs()[0])["spec"]["components"][
        "ingressGateways"]
    for gateway in gateways:
        selector = gateway["spec"]["selector"]
        assert not selector.items() <= cluster_own_ingress.items(), gateway["metadata"]["name"]
        assert selector.items() <= our_labels.items() or selector.items() <= eastwest["label"].items()
    wide = {"apiVersion": "networking.istio.io/v1beta1", "kind": "Gateway", "metadata": {"name": "any"},
            "spec": {"selector": {"app": "something-else"}, "servers": gateways[0]["spec"]["servers"]}}
    with pytest.raises(ConfigError, match="spec.selector: .*configures only its own gateways"):
        platform.apply_documents([wide], source="wide.yaml")
