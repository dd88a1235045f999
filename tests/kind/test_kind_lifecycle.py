"""`up` and `down` of the kind platform where a real cluster would have broken them (issue 11, points 2, 5,
6, 7, 9, 10, 11, 12): each test drives the installer with a scripted runner (no Docker here) and checks
the commands and documents it hands to kind, docker, kubectl and istioctl."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from harness.errors import PlatformError
from harness.platforms.kind import Command, CommandResult, KindPlatform, KindSettings, render
from harness.platforms.kind.install import Installer
from harness.platforms.kind.appscripts import APP_KILL_SCRIPT
from harness.platforms.kind.pods import declared_deployments
from harness.platforms.kind.preflight import check_inotify
from harness.platforms.kind.validation import validate_kind_document
from tests.kind.kindkit import ScriptedRunner

NODE_ADDRESSES = {"parallel-ai-us-east": "172.18.0.2", "parallel-ai-us-west": "172.18.0.3",
                  "parallel-ai-eu-west": "172.18.0.4"}


def _scripted_up(settings: KindSettings, monkeypatch: pytest.MonkeyPatch,
                 extra=None) -> tuple[Installer, ScriptedRunner, dict[str, list]]:
    """A real (not dry) `up` whose programs are answered by a script; what istioctl and kubectl got is kept."""
    seen: dict[str, list] = {"operators": [], "applied": [], "remote": []}

    def reply(command: Command) -> CommandResult | str:
        argv = command.argv
        answer = extra(command) if extra else None
        if answer is not None:
            return answer
        if argv[:2] == ("docker", "info"):
            return f"27.3.1 {32 * 1024 ** 3}"
        if argv[:2] == ("istioctl", "version"):
            return "client version: 1.30.3"
        if argv[:2] == ("docker", "inspect"):
            return NODE_ADDRESSES[argv[-1].removesuffix("-control-plane")]
        if argv[:2] == ("istioctl", "install"):
            path = Path(argv[argv.index("-f") + 1])
            (operator,) = yaml.safe_load_all(path.read_text())
            validate_kind_document(operator, source=path)
            seen["operators"].append(operator)
        if argv[:2] == ("istioctl", "create-remote-secret"):
            seen["remote"].append(argv)
        if "apply" in argv and command.stdin:
            seen["applied"] += [d for d in yaml.safe_load_all(command.stdin) if d]
        return ""

    monkeypatch.setattr(Installer, "_probe", lambda self, url, host, what: None)
    runner = ScriptedRunner(reply)
    installer = Installer(settings, runner)
    installer.up()
    return installer, runner, seen


def test_three_clusters_route_through_each_others_east_west_gateway_on_the_kind_network(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Istio's multi-primary multi-network guide (istio.io docs/setup/install/multicluster/
    multi-primary_multi-network): each cluster's istio-system labelled with its network, values.global
    meshID/clusterName/network, an east-west gateway per network exposing 15443 with AUTO_PASSTHROUGH for
    *.local, and a remote secret of every cluster in every other. The guide's gateway gets its address from a
    LoadBalancer; kind has none, and istiod reads a NodePort gateway's address only from a node's ExternalIP,
    which kind nodes lack. So every control plane declares every network's gateway in meshNetworks: the node's
    address on the `kind` network and the node port 31443 (meshNetworks' `gateways: [{address, port}]`)."""
    installer, runner, seen = _scripted_up(KindSettings(clusters=3), monkeypatch)
    control_planes = [o for o in seen["operators"] if o["metadata"]["name"].startswith("control-plane")]
    assert len(control_planes) == 3
    expected = {f"network-{region}": {"endpoints": [{"fromRegistry": f"parallel-ai-{region}"}],
                                      "gateways": [{"address": NODE_ADDRESSES[f"parallel-ai-{region}"], "port": 31443}]}
                for region in ("us-east", "us-west", "eu-west")}
    for operator in control_planes:
        assert operator["spec"]["values"]["global"]["meshNetworks"] == expected
    eastwest = [o for o in seen["operators"] if o["metadata"]["name"] == "eastwest"]
    assert len(eastwest) == 3
    for operator in eastwest:
        (gateway,) = operator["spec"]["components"]["ingressGateways"]
        assert {p["name"]: p.get("nodePort") for p in gateway["k8s"]["service"]["ports"]}["tls"] == 31443
        assert "serviceAnnotations" not in gateway["k8s"]  # the nodeSelector path needs an ExternalIP
    # The remote secrets name each API server at its node's address on the kind network.
    assert sorted(argv[-1] for argv in seen["remote"]) == sorted(f"--server=https://{a}:6443"
                                                                 for a in NODE_ADDRESSES.values())
    namespaces = [d for d in seen["applied"] if d["kind"] == "Namespace" and d["metadata"]["name"] == "istio-system"]
    assert sorted(n["metadata"]["labels"]["topology.istio.io/network"] for n in namespaces) == sorted(expected)
    assert installer.report["mesh_networks"] == expected


def test_a_second_up_reuses_the_mesh_root_and_the_external_ca_found_in_the_clusters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Point 9: pods started by a first, failed `up` keep the old root; a new root would break mTLS."""
    root = b"-----BEGIN CERTIFICATE-----\nfirst-up-root\n-----END CERTIFICATE-----\n"
    cacerts = {"data": {name: base64.b64encode(root if name == "root-cert.pem" else name.encode()).decode()
                        for name in render.CACERTS_FILES}}
    tls = {"data": {"tls.crt": base64.b64encode(b"old-chain").decode(), "tls.key": base64.b64encode(b"old-key").decode()}}
    ca_map = {"data": {"root-cert.pem": "old-external-root"}}

    def extra(command: Command) -> str | None:
        if command.argv[0] == "kubectl" and "get" in command.argv:
            what = command.argv[command.argv.index("get") + 1]
            found = {"secret/cacerts": cacerts, f"secret/{render.EXTERNAL_AI_TLS_SECRET}": tls,
                     f"configmap/{render.EXTERNAL_AI_CA_CONFIGMAP}": ca_map}.get(what)
            return json.dumps(found) if found else ""
        return None

    monkeypatch.setattr("harness.pki.MeshCA.create", lambda *a, **k: pytest.fail("a new CA was made"))
    installer, _, seen = _scripted_up(KindSettings(), monkeypatch, extra)
    (secret,) = [d for d in seen["applied"] if d["kind"] == "Secret" and d["metadata"]["name"] == "cacerts"]
    assert base64.b64decode(secret["data"]["root-cert.pem"]) == root
    (stand_in,) = [d for d in seen["applied"] if d["metadata"]["name"] == render.EXTERNAL_AI_TLS_SECRET]
    assert base64.b64decode(stand_in["data"]["tls.key"]) == b"old-key"
    (roots,) = [d for d in seen["applied"] if d["metadata"]["name"] == render.EXTERNAL_AI_CA_CONFIGMAP]
    assert roots["data"]["root-cert.pem"] == "old-external-root"
    assert installer.report["mesh_ca"] == "re-used from istio-system/cacerts"


def test_clusters_holding_different_roots_are_refused_before_istio_is_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    def extra(command: Command) -> str | None:
        if "secret/cacerts" in command.argv:
            context = command.argv[command.argv.index("--context") + 1]
            return json.dumps({"data": {n: base64.b64encode(f"{context}-{n}".encode()).decode()
                                        for n in render.CACERTS_FILES}})
        return None

    with pytest.raises(PlatformError, match="hold different mesh roots in istio-system/cacerts"):
        _scripted_up(KindSettings(clusters=3), monkeypatch, extra)


def test_kind_load_falls_back_to_an_image_archive_and_says_which_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point 12: `kind load docker-image` fails with Docker 29's containerd image store (kind#3795)."""
    def extra(command: Command) -> CommandResult | None:
        if command.argv[:3] == ("kind", "load", "docker-image"):
            return CommandResult(command, 1, "", "ERROR: failed to detect containerd snapshotter")
        return None

    installer, runner, _ = _scripted_up(KindSettings(), monkeypatch, extra)
    argvs = [c.argv for c in runner.commands]
    save = next(i for i, a in enumerate(argvs) if a[:2] == ("docker", "save"))
    archive = argvs[save][argvs[save].index("-o") + 1]
    assert argvs[save + 1] == ("kind", "load", "image-archive", archive, "--name", "parallel-ai")
    assert installer.report["image_load"]["parallel-ai"].startswith("kind load image-archive (kind load docker-image "
                                                                    "failed: ERROR: failed to detect")
    assert not Path(archive).exists()


def test_down_deletes_every_cluster_of_the_harness_whatever_up_made_and_nothing_else() -> None:
    """Point 10: `down` after `up --clusters 3` used to delete only parallel-ai."""
    runner = ScriptedRunner(lambda c: "parallel-ai-us-east\nparallel-ai-us-west\nparallel-ai-eu-west\nmy-own\n"
                            if c.argv == ("kind", "get", "clusters") else "")
    platform = KindPlatform(KindSettings(), runner=runner, kube_factory=lambda ctx: pytest.fail("no API call"))
    platform.down()
    deletes = [c.argv[-1] for c in runner.commands if c.argv[:3] == ("kind", "delete", "cluster")]
    assert deletes == ["parallel-ai-us-east", "parallel-ai-us-west", "parallel-ai-eu-west"]
    assert platform.deleted_clusters == deletes


def test_every_tool_gets_the_kubeconfig_the_api_client_reads(tmp_path: Path) -> None:
    """Point 6: HARNESS_KUBECONFIG reached only the Python client."""
    kubeconfig = tmp_path / "kubeconfig"
    platform = KindPlatform(KindSettings(dry_run=True, clusters=3, kubeconfig=kubeconfig))
    platform.up()
    platform.down()
    commands = [step[2:].split() for step in platform.steps if step.startswith("$ ")]
    tools = [argv for argv in commands if argv[0] in ("kubectl", "istioctl")]
    assert tools and all(argv[1:3] == ["--kubeconfig", str(kubeconfig)] for argv in tools)
    kind = [argv for argv in commands if argv[:3] in (["kind", "create", "cluster"], ["kind", "delete", "cluster"])]
    assert len(kind) == 6 and all(argv[-2:] == ["--kubeconfig", str(kubeconfig)] for argv in kind)


def test_the_preflight_refuses_inotify_limits_below_kinds_and_says_how_to_raise_them(tmp_path: Path) -> None:
    """Point 11: kind's known issues, "Pod errors due to too many open files": 524288 watches, 512 instances."""
    (tmp_path / "max_user_watches").write_text("8192\n")
    (tmp_path / "max_user_instances").write_text("128\n")
    with pytest.raises(PlatformError, match=r"fs.inotify.max_user_watches is 8192, kind needs at least 524288; "
                                            r"fs.inotify.max_user_instances is 128, kind needs at least 512 .*"
                                            r"sudo sysctl fs.inotify.max_user_watches=524288"):
        check_inotify(tmp_path)
    (tmp_path / "max_user_watches").write_text("524288\n")
    (tmp_path / "max_user_instances").write_text("1024\n")
    assert check_inotify(tmp_path) == {"max_user_watches": 524288, "max_user_instances": 1024}


def test_app_only_kill_sends_sigkill_to_the_apps_process_found_by_its_argv() -> None:
    """Point 5: the experiment's app_only kill is an OOM kill (SIGKILL), as on the local platform. The
    script runs here against a real process; on kind the pod shares one PID namespace so the app is no PID 1."""
    marker = f"h11-{uuid.uuid4().hex}"
    victim = subprocess.Popen([sys.executable, "-m", "timeit", "-n", "1", "-r", "1", "-s", f"# {marker}",
                               "import time; time.sleep(60)"])
    try:
        done = subprocess.run([sys.executable, "-c", APP_KILL_SCRIPT, "-m", "timeit", "-n", "1", "-r", "1", "-s",
                               f"# {marker}"], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0 and done.stdout.split() == [str(victim.pid)]
        assert victim.wait(timeout=10) == -9  # SIGKILL, no draining
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(timeout=10)
    missing = subprocess.run([sys.executable, "-c", APP_KILL_SCRIPT, "-m", f"no-such-{marker}"],
                             capture_output=True, text=True, timeout=30, check=False)
    assert missing.returncode == 3
    mesh = {d.name for d in declared_deployments()}
    for doc in render.workload_documents(KindSettings().cluster_specs()[0]):
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] in mesh:
            assert doc["spec"]["template"]["spec"]["shareProcessNamespace"] is True


def _applicable_rule(host: str, rules: list[dict]) -> dict | None:
    """Which DestinationRule applies to `host`, as Istio picks it: an exact host first, else the most
    specific wildcard (`*.suffix` matching any host ending in `.suffix`; Istio's DestinationRule `host`
    reference: "the rule ... most specific match")."""
    exact = [r for r in rules if r["spec"]["host"] == host]
    if exact:
        return exact[0]
    wild = [r for r in rules if r["spec"]["host"].startswith("*") and host.endswith(r["spec"]["host"][1:])]
    return max(wild, key=lambda r: len(r["spec"]["host"]), default=None)


def test_the_cross_cluster_rule_leaves_sidecarless_collectors_and_the_stand_in_alone() -> None:
    """Point 7: as `*.local` with ISTIO_MUTUAL the seed's cross-cluster-dr caught the Zipkin collector
    (no sidecar: every span lost with 3 clusters) and the external AI API's stand-in, and only them:
    connection-pool-settings is the more specific rule for every parallel-ai host. So it is left out."""
    rules = [d for d in render.istio_documents() + render.multicluster_documents() if d["kind"] == "DestinationRule"]
    for host in ("zipkin.istio-system.svc.cluster.local", "jaeger-collector.istio-system.svc.cluster.local",
                 "external-ai-api.external-ai.svc.cluster.local"):
        assert _applicable_rule(host, rules) is None, host
    assert [d["metadata"]["name"] for d in render.multicluster_documents()] == ["cross-cluster-gateway"]
    # Every parallel-ai host has its rule without it (the seed's "*.local" never applied to them).
    assert _applicable_rule("any-new-service.parallel-ai.svc.cluster.local", rules)["metadata"]["name"] == \
        "connection-pool-settings"


def test_up_says_how_the_image_was_loaded_and_where_the_ca_came_from(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli

    class Up:
        ledger_dir = None  # keeps no fault ledger

        def up(self, **_: object) -> dict:
            return {"platform": "kind", "profile": "dev", "ingress_url": "http://127.0.0.1:18080",
                    "prometheus_url": "http://127.0.0.1:19090", "pods": [],
                    "install": {"image_load": {"parallel-ai": "kind load image-archive (kind load docker-image "
                                                              "failed: snapshotter)"},
                                "mesh_ca": "re-used from istio-system/cacerts"}}

    monkeypatch.setattr(cli, "get_platform", lambda name, **options: Up())
    assert cli.main(["up", "--platform", "kind"]) == 0
    out = capsys.readouterr().out
    assert "image_load: {'parallel-ai': 'kind load image-archive (kind load docker-image failed" in out
    assert "mesh_ca: re-used from istio-system/cacerts" in out
