"""A cluster the user already has (issue 11, "Existing clusters"): `--platform kind --context NAME
--allow-context NAME --no-create` creates no cluster, installs Istio only when absent (another minor version
is reported, not replaced) and applies the sample services and Prometheus only in the harness's namespaces."""

from __future__ import annotations

import pytest
import yaml

from harness.errors import ConfigError
from harness.platforms.kind import Command, KindPlatform, KindSettings, render
from harness.platforms.kind.install import Installer
from tests.kind.kindkit import ScriptedRunner

STAGING = dict(context="staging", allow_context="staging", no_create=True)


def _up(monkeypatch: pytest.MonkeyPatch, istiod_image: str) -> tuple[Installer, ScriptedRunner, list[dict]]:
    applied: list[dict] = []

    def reply(command: Command) -> str:
        argv = command.argv
        if "deployment/istiod" in argv:
            return istiod_image
        if argv[:2] == ("istioctl", "version"):
            return "client version: 1.30.3"
        if "apply" in argv and command.stdin:
            applied.extend(d for d in yaml.safe_load_all(command.stdin) if d)
        return ""

    monkeypatch.setattr(Installer, "_probe", lambda self, url, host, what: None)
    runner = ScriptedRunner(reply)
    installer = Installer(KindSettings(**STAGING), runner)
    installer.up()
    return installer, runner, applied


def test_nothing_is_created_and_nothing_outside_the_harness_namespaces_is_applied(
        monkeypatch: pytest.MonkeyPatch) -> None:
    installer, runner, applied = _up(monkeypatch, "docker.io/istio/pilot:1.30.1")
    programs = [c.argv[:3] for c in runner.commands]
    assert ("kind", "create", "cluster") not in programs and ("docker", "build", "-t") not in programs
    assert not any(c.argv[:2] == ("docker", "info") for c in runner.commands)  # no Docker needed for it
    assert all(render.namespaced(d) in ("parallel-ai", "external-ai") for d in applied)
    assert {d["metadata"]["name"] for d in applied if d["kind"] == "Namespace"} == {"parallel-ai", "external-ai"}
    assert not [d for d in applied if d["kind"].startswith("Cluster")]  # Prometheus gets a Role
    assert {d["kind"] for d in applied if d["metadata"]["name"] in ("prometheus", "harness-prometheus")} == {
        "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service"}
    assert all(c.argv[c.argv.index("--context") + 1] == "staging" for c in runner.commands if "--context" in c.argv)
    assert installer.report["istio"]["installed"] is None


def test_a_present_istio_of_the_same_minor_is_kept_and_one_of_another_minor_is_reported_not_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    same, runner, applied = _up(monkeypatch, "docker.io/istio/pilot:1.30.1")
    assert not any(c.argv[:2] == ("istioctl", "install") for c in runner.commands)
    assert not any(d["kind"] == "Secret" and d["metadata"]["name"] == "cacerts" for d in applied)
    assert same.report["istio"] == {"found": "1.30.1", "installed": None,
                                    "note": "the same minor version: kept as it is"}
    other, runner, _ = _up(monkeypatch, "registry.istio.io/release/pilot:1.28.2")
    assert not any(c.argv[:2] == ("istioctl", "install") for c in runner.commands)
    assert other.report["istio"]["found"] == "1.28.2"
    assert "another minor version than the harness's 1.30.3: NOT replaced" in other.report["istio"]["note"]


def test_istio_is_installed_when_the_cluster_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    installer, runner, applied = _up(monkeypatch, "")
    assert [c.argv[:3] for c in runner.commands if c.argv[:2] == ("istioctl", "install")] == [
        ("istioctl", "install", "--context")]
    assert any(d["kind"] == "Secret" and d["metadata"]["name"] == "cacerts" for d in applied)
    assert installer.report["istio"] == {"found": None, "installed": "1.30.3"}


def test_the_dry_run_plan_of_an_existing_cluster_and_its_down() -> None:
    platform = KindPlatform(KindSettings(dry_run=True, **STAGING))
    steps = platform.up()["dry_run"]
    commands = [s for s in steps if s.startswith("$ ")]
    assert not any(s.startswith(("$ kind create", "$ docker build", "$ docker info")) for s in commands)
    assert ("$ kubectl --context staging -n istio-system get deployment/istiod --ignore-not-found -o "
            "'jsonpath={.spec.template.spec.containers[0].image}'") in commands
    assert ("(image parallel-ai/sample-service:0.1.0 not loaded: staging is no kind cluster on this host; its nodes "
            "must be able to pull parallel-ai/sample-service:0.1.0)") in steps
    assert not any("deployment/prometheus deployment/jaeger" in s for s in commands)
    down = KindPlatform(KindSettings(dry_run=True, **STAGING))
    down.down()
    assert down.steps == ["$ kubectl --context staging delete namespace parallel-ai external-ai --ignore-not-found"]
    assert down.deleted_clusters == []


def test_no_create_needs_a_named_and_allowed_context() -> None:
    with pytest.raises(ConfigError, match="--no-create uses a cluster you already have: name its kube context"):
        KindSettings(no_create=True)
    platform = KindPlatform(KindSettings(dry_run=True, context="staging", no_create=True))
    with pytest.raises(ConfigError, match="refusing to act on kube context 'staging'"):
        platform.up()


def test_an_existing_clusters_endpoints_are_given_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.platforms.kind.install import endpoints

    monkeypatch.setenv("HARNESS_INGRESS_URL", "http://127.0.0.1:28080")
    monkeypatch.setenv("HARNESS_PROMETHEUS_URL", "http://127.0.0.1:29090")
    settings = KindSettings.from_env(**STAGING)
    assert endpoints(settings) == (endpoints(settings).__class__("http://127.0.0.1:28080", "http://127.0.0.1:29090"))
    with pytest.raises(ConfigError, match="prometheus_url: expected http://127.x.x.x:PORT"):
        KindSettings(prometheus_url="http://prometheus.staging.example.com:9090", ingress_url="http://127.0.0.1:1",
                     **STAGING)
    with pytest.raises(ConfigError, match="give both"):
        KindSettings(ingress_url="http://127.0.0.1:1", **STAGING)
