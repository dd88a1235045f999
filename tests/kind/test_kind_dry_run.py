"""--dry-run: every command and API call `up`, `down` and a fault would make, in order, and nothing done.

Also the real runner's and the preflight's messages, with scripted command results (no Docker here).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.errors import ConfigError, MissingDependencyError, PlatformError
from harness.net import free_port
from harness.platforms.kind import Command, CommandResult, KindPlatform, KindSettings, SubprocessRunner, preflight, \
    render
from harness.platforms.kind.platform import HELD_ANNOTATION
from harness.platforms.kind.pods import declared_deployments
from tests.kind.kindkit import ROOT, ScriptedRunner

CTX = "API kind-parallel-ai"
APPLY = "kubectl --context kind-parallel-ai apply --server-side --field-manager=harness --force-conflicts -f -"
SSA = "(server-side apply, fieldManager=harness, force)"
VS = "/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/virtualservices"
MESH_ISTIO = ("AuthorizationPolicy parallel-ai/ai-agent-authz, DestinationRule parallel-ai/ai-agent-destination, "
              "DestinationRule parallel-ai/connection-pool-settings, DestinationRule parallel-ai/failover-config, "
              "Gateway parallel-ai/ai-agent-gateway, PeerAuthentication parallel-ai/default, "
              "ServiceEntry parallel-ai/external-ai-api, Telemetry parallel-ai/custom-metrics, "
              "VirtualService parallel-ai/ai-agent-routing")
EXTERNAL_AI = ("Namespace external-ai, Secret external-ai/external-ai-api-tls, Service external-ai/external-ai-api, "
               "Deployment external-ai/external-ai-api")
DECLARED_ISTIO_PATHS = [
    "/apis/security.istio.io/v1beta1/namespaces/parallel-ai/authorizationpolicies/ai-agent-authz",
    "/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/destinationrules/ai-agent-destination",
    "/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/destinationrules/connection-pool-settings",
    "/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/destinationrules/failover-config",
    "/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/gateways/ai-agent-gateway",
    "/apis/security.istio.io/v1beta1/namespaces/parallel-ai/peerauthentications/default",
    "/apis/networking.istio.io/v1beta1/namespaces/parallel-ai/serviceentries/external-ai-api",
    "/apis/telemetry.istio.io/v1alpha1/namespaces/parallel-ai/telemetries/custom-metrics",
    f"{VS}/ai-agent-routing",
]


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run must not start any program: make every attempt fail loudly."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a dry run started a program: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_dry_run_up_prints_every_command_and_api_call_in_order(no_subprocess: None, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(preflight, "INOTIFY_DIR", Path("/proc/sys/fs/inotify"))  # a dry run only names it
    platform = KindPlatform(KindSettings(dry_run=True))
    status = platform.up()
    assert status["dry_run"] == [
        f"{CTX} GET /apis/apps/v1/namespaces/parallel-ai/deployments",
        "CHECK /proc/sys/fs/inotify/max_user_watches >= 524288, /proc/sys/fs/inotify/max_user_instances >= 512",
        "$ docker info --format '{{.ServerVersion}} {{.MemTotal}}'",
        "$ kind version",
        "$ istioctl version --remote=false",
        "$ kubectl version --client=true -o json",
        f"$ docker build -t parallel-ai/sample-service:0.1.0 -f {ROOT}/docker/Dockerfile {ROOT}",
        "$ kind get clusters",
        f"$ kind create cluster --name parallel-ai --config {ROOT}/kind-config/single.yaml --wait 120s",
        "$ kind load docker-image parallel-ai/sample-service:0.1.0 --name parallel-ai",
        "(where `kind load docker-image` fails: docker save -o <tmp>/sample-image.tar parallel-ai/sample-service:0.1.0"
        " && kind load image-archive <tmp>/sample-image.tar --name <cluster>)",
        "$ kubectl --context kind-parallel-ai -n istio-system get secret/cacerts -o json --ignore-not-found",
        "$ kubectl --context kind-parallel-ai -n external-ai get secret/external-ai-api-tls -o json --ignore-not-found",
        "$ kubectl --context kind-parallel-ai -n parallel-ai get configmap/external-ai-ca -o json --ignore-not-found",
        f"$ {APPLY} <<< Namespace istio-system, Secret istio-system/cacerts",
        "$ istioctl install --context kind-parallel-ai -y -f /tmp/harness-kind-dry-run/istio-operator-parallel-ai.yaml",
        f"$ {APPLY} <<< ServiceAccount istio-system/prometheus, ClusterRole harness-prometheus, ClusterRoleBinding "
        "harness-prometheus, ConfigMap istio-system/prometheus, Deployment istio-system/prometheus, Service "
        "istio-system/prometheus, Deployment istio-system/jaeger, Service istio-system/tracing, Service "
        "istio-system/zipkin, Service istio-system/jaeger-collector",
        f"$ {APPLY} <<< {EXTERNAL_AI}",
        f"$ {APPLY} <<< Namespace parallel-ai, ServiceAccount parallel-ai/ai-agent-service, ServiceAccount "
        "parallel-ai/analytics-service, ServiceAccount parallel-ai/user-service, ServiceAccount "
        "parallel-ai/api-gateway, ConfigMap parallel-ai/external-ai-ca, "
        "Service parallel-ai/ai-agent-service, Service parallel-ai/analytics-service, "
        "Service parallel-ai/user-service, Service parallel-ai/istio-ingressgateway, "
        "Deployment parallel-ai/ai-agent-v1-us-east, Deployment parallel-ai/ai-agent-v1-us-west, "
        "Deployment parallel-ai/ai-agent-v2-eu-west, Deployment parallel-ai/analytics-v1-us-west, "
        "Deployment parallel-ai/user-v1-us-east, Deployment parallel-ai/user-v1-eu-west, "
        "Deployment parallel-ai/istio-ingressgateway",
        f"$ {APPLY} <<< {MESH_ISTIO}",
        "$ kubectl --context kind-parallel-ai -n parallel-ai wait --for=condition=Available deployment --all "
        "--timeout=600s",
        "$ kubectl --context kind-parallel-ai -n external-ai wait --for=condition=Available "
        "deployment/external-ai-api --timeout=600s",
        "$ kubectl --context kind-parallel-ai -n istio-system wait --for=condition=Available deployment/prometheus "
        "deployment/jaeger --timeout=600s",
        "HTTP GET http://127.0.0.1:19090/-/ready",
        "HTTP GET http://127.0.0.1:18080/health (Host: ai-agent-service.parallel-ai.svc.cluster.local)",
        f"{CTX} GET /api/v1/namespaces/parallel-ai/pods",
    ]
    assert list(tmp_path.iterdir()) == [] and not Path("/tmp/harness-kind-dry-run").exists()
    assert status["ingress_url"] == "http://127.0.0.1:18080" and len(status["pods"]) == 6


def test_dry_run_down_deletes_only_the_harness_clusters(no_subprocess: None) -> None:
    platform = KindPlatform(KindSettings(dry_run=True))
    assert platform.down() == []
    assert platform.steps == ["$ kind get clusters", "$ kind delete cluster --name parallel-ai"]
    three = KindPlatform(KindSettings(dry_run=True, clusters=3))
    three.down()
    assert three.steps == ["$ kind get clusters"] + [f"$ kind delete cluster --name parallel-ai-{region}"
                                                     for region in ("us-east", "us-west", "eu-west")]
    assert three.deleted_clusters == ["parallel-ai-us-east", "parallel-ai-us-west", "parallel-ai-eu-west"]


def test_dry_run_of_faults_and_their_undo_prints_each_api_call_in_order(no_subprocess: None) -> None:
    platform = KindPlatform(KindSettings(dry_run=True))
    routing = next(d for d in render.istio_documents() if d["kind"] == "VirtualService")
    platform.apply_documents([routing])  # inject (a patched VirtualService)
    platform.hold("ai-agent-v1-us-east-0", down=True)  # a region's pod held down
    platform.hold("ai-agent-v1-us-east-0", down=False)
    platform.kill("user-v1-us-east-0")
    platform.reset()  # the undo of every Istio fault
    deployment = "/apis/apps/v1/namespaces/parallel-ai/deployments/ai-agent-v1-us-east"
    assert platform.steps == [
        f"{CTX} PATCH {VS}/ai-agent-routing {SSA}",
        f"{CTX} GET {deployment}",
        f"{CTX} GET /api/v1/namespaces/parallel-ai/pods?labelSelector=app=ai-agent,istio-locality=us-east,version=v1",
        f'{CTX} PATCH {deployment} {{"metadata": {{"annotations": {{"{HELD_ANNOTATION}": "1"}}}}, '
        '"spec": {"replicas": 0}}',
        f"{CTX} GET {deployment}",
        f'{CTX} PATCH {deployment} {{"metadata": {{"annotations": {{"{HELD_ANNOTATION}": null}}}}, '
        '"spec": {"replicas": 1}}',
        f"{CTX} GET /api/v1/namespaces/parallel-ai/pods?labelSelector=app=user,istio-locality=us-east,version=v1",
        f"{CTX} DELETE /api/v1/namespaces/parallel-ai/pods/<user-v1-us-east-0> gracePeriodSeconds=0",
        # every declared kind listed (what the mesh does not declare is deleted; a dry run lists nothing),
        # then the declared resources applied
        *(f"{CTX} GET {path}" for path in sorted({p.rpartition("/")[0] for p in DECLARED_ISTIO_PATHS})),
        *(f"{CTX} PATCH {path} {SSA}" for path in DECLARED_ISTIO_PATHS),
        *(step for d in declared_deployments() for step in (  # every Deployment back to its declared replicas
            f"{CTX} GET /apis/apps/v1/namespaces/parallel-ai/deployments/{d.name}",
            f'{CTX} PATCH /apis/apps/v1/namespaces/parallel-ai/deployments/{d.name} '
            f'{{"metadata": {{"annotations": {{"{HELD_ANNOTATION}": null}}}}, "spec": {{"replicas": {d.replicas}}}}}')),
        f"{CTX} GET /api/v1/namespaces/parallel-ai/pods",  # no pod is ready in a dry run: no knobs to clear
    ]


def test_dry_run_with_three_clusters_joins_them_into_one_mesh(no_subprocess: None) -> None:
    steps = KindPlatform(KindSettings(dry_run=True, clusters=3)).up()["dry_run"]
    contexts = [f"kind-parallel-ai-{r}" for r in ("us-east", "us-west", "eu-west")]
    creates = [s for s in steps if s.startswith("$ kind create cluster")]
    assert creates == [f"$ kind create cluster --name {c.removeprefix('kind-')} --config "
                       f"{ROOT}/kind-config/{c.removeprefix('kind-parallel-ai-')}.yaml --wait 120s" for c in contexts]
    installs = [s for s in steps if s.startswith("$ istioctl install")]
    assert installs == [f"$ istioctl install --context {c} -y -f /tmp/harness-kind-dry-run/{what}-"
                        f"{c.removeprefix('kind-')}.yaml" for c in contexts for what in ("istio-operator", "eastwest")]
    secrets = [s for s in steps if "remote-secret" in s or "remote secret" in s]
    assert len(secrets) == 3 + 6  # each cluster's secret, applied in the two others
    assert steps.index(secrets[0]) > steps.index(installs[-1])
    assert sum("Gateway parallel-ai/cross-cluster-gateway" in s for s in steps) == 3
    assert sum("istio-system/prometheus" in s for s in steps) == 1  # the primary (us-east) only


def test_a_dry_run_never_prints_key_material() -> None:
    steps = KindPlatform(KindSettings(dry_run=True)).up()["dry_run"]
    assert not any("PRIVATE KEY" in step or "BEGIN" in step for step in steps)
    assert any(step.endswith("<<< Namespace istio-system, Secret istio-system/cacerts") for step in steps)


def test_up_refuses_a_non_kind_context_before_running_anything() -> None:
    platform = KindPlatform(KindSettings(dry_run=True, context="gke_prod_europe"))
    with pytest.raises(ConfigError, match="context: refusing to act on kube context 'gke_prod_europe'"):
        platform.up()
    assert platform.steps == []


def test_up_takes_clusters_allow_context_and_dry_run_as_arguments(no_subprocess: None) -> None:
    platform = KindPlatform(KindSettings())
    status = platform.up(dry_run=True, clusters=3, profile="prod")
    assert status["clusters"] == ["parallel-ai-us-east", "parallel-ai-us-west", "parallel-ai-eu-west"]
    assert status["profile"] == "prod" and status["dry_run"] == platform.steps


# --- preflight and the real runner -----------------------------------------------------------------


def _scripted(outputs: dict[str, CommandResult | str]) -> ScriptedRunner:
    def reply(command: Command) -> CommandResult | str:
        answer = outputs.get(command.argv[0], "")
        return CommandResult(command, *answer) if isinstance(answer, tuple) else answer

    return ScriptedRunner(reply)


def test_preflight_says_docker_is_not_running_and_how_to_fix_it() -> None:
    runner = _scripted({"docker": (1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock")})
    platform = KindPlatform(KindSettings(), runner=runner, kube_factory=_no_cluster)
    with pytest.raises(PlatformError, match="Docker is not running \\(`docker info` failed: Cannot connect to the "
                                            "Docker daemon.*\\); start the Docker daemon"):
        platform.up()
    assert [c.argv[0] for c in runner.commands] == ["docker"]


def test_preflight_refuses_too_little_docker_memory_for_three_clusters() -> None:
    runner = _scripted({"docker": f"27.3.1 {6 * 1024 ** 3}", "istioctl": "client version: 1.30.3"})
    platform = KindPlatform(KindSettings(clusters=3), runner=runner, kube_factory=_no_cluster)
    with pytest.raises(PlatformError, match="Docker has 6.0 GiB of memory; 3 kind cluster\\(s\\) with Istio need at "
                                            "least 12 GiB"):
        platform.up()


def test_preflight_refuses_an_istioctl_of_another_release() -> None:
    runner = _scripted({"docker": f"27.3.1 {16 * 1024 ** 3}", "istioctl": "client version: 1.20.0",
                        "kubectl": '{"clientVersion": {"gitVersion": "v1.34.0"}}'})
    platform = KindPlatform(KindSettings(), runner=runner, kube_factory=_no_cluster)
    with pytest.raises(MissingDependencyError, match="istioctl is 1.20.0 but the harness installs Istio 1.30.3"):
        platform.up()


def test_preflight_reports_the_versions_it_found() -> None:
    runner = _scripted({"docker": f"27.3.1 {16 * 1024 ** 3}", "kind": "kind v0.30.0 go1.24.6 linux/amd64",
                        "istioctl": "client version: 1.30.3",
                        "kubectl": '{"clientVersion": {"gitVersion": "v1.34.0"}}'})
    from harness.platforms.kind.preflight import run_preflight

    found = run_preflight(runner, clusters=1, min_memory_gib_per_cluster=4, istio_version="1.30.3")
    assert (found.docker, found.docker_memory_gib, found.kind, found.istioctl, found.kubectl) == (
        "27.3.1", 16.0, "v0.30.0", "1.30.3", "v1.34.0")


def test_the_real_runner_names_a_missing_program_and_how_to_install_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to find there
    with pytest.raises(MissingDependencyError, match="kind is not installed \\(needed for `kind version`\\): "
                                                     "install kind \\(https://kind.sigs.k8s.io"):
        SubprocessRunner().run(Command(("kind", "version")))


def test_the_real_runner_reports_a_failed_command_with_its_stderr() -> None:
    with pytest.raises(PlatformError, match="`sh -c 'echo nope >&2; exit 3'` failed with exit code 3: nope"):
        SubprocessRunner().run(Command(("sh", "-c", "echo nope >&2; exit 3")))
    assert SubprocessRunner().run(Command(("sh", "-c", "cat")), check=True).stdout == ""
    assert SubprocessRunner().run(Command(("sh", "-c", "cat"), stdin="docs")).stdout == "docs"


def _no_cluster(context: str) -> object:
    from harness.errors import NotUpError

    raise NotUpError(f"no context {context}")



def test_a_real_up_hands_istioctl_a_valid_operator_and_kubectl_a_fresh_ca_that_is_gone_afterwards(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    import yaml

    from harness.platforms.kind.install import Installer
    from harness.platforms.kind.validation import validate_kind_document

    seen: dict[str, object] = {}

    def reply(command: Command) -> str:
        argv = command.argv
        if argv[:2] == ("docker", "info"):
            return f"27.3.1 {16 * 1024 ** 3}"
        if argv[:2] == ("istioctl", "version"):
            return "client version: 1.30.3"
        if argv[:2] == ("istioctl", "install"):
            path = Path(argv[argv.index("-f") + 1])
            (operator,) = yaml.safe_load_all(path.read_text())
            validate_kind_document(operator, source=path)
            seen["operator"], seen["workdir"] = operator, path.parent
        if command.stdin_summary and "cacerts" in command.stdin_summary:
            secret = next(d for d in yaml.safe_load_all(command.stdin or "") if d["kind"] == "Secret")
            seen["ca_key"] = base64.b64decode(secret["data"]["ca-key.pem"])
        return ""

    probes: list[str] = []
    monkeypatch.setattr(Installer, "_probe", lambda self, url, host, what: probes.append(url))
    runner = ScriptedRunner(reply)
    Installer(KindSettings(profile="prod"), runner).up()
    assert seen["operator"]["spec"]["meshConfig"]["defaultConfig"]["holdApplicationUntilProxyStarts"] is True
    assert b"PRIVATE KEY" in seen["ca_key"]
    assert not Path(str(seen["workdir"])).exists(), "the CA key and rendered files must not outlive `up`"
    assert probes == ["http://127.0.0.1:19090/-/ready", "http://127.0.0.1:18080/health"]
    assert [c.argv[0] for c in runner.commands][:4] == ["docker", "kind", "istioctl", "kubectl"]


def test_the_readiness_probe_waits_for_an_answer_and_gives_up_with_a_clear_message(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import http.server
    import socket
    import threading

    from harness.errors import ReadinessTimeout
    from harness.platforms.kind import install

    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    installer = install.Installer(KindSettings(), ScriptedRunner())
    try:
        installer._probe(f"http://127.0.0.1:{server.server_address[1]}/-/ready", None, "Prometheus")
    finally:
        server.shutdown()
        server.server_close()
    closed = free_port()  # nothing listens there
    monkeypatch.setattr(install, "PROBE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(install, "PROBE_INTERVAL_S", 0.05)
    with pytest.raises(ReadinessTimeout, match=f"Prometheus did not answer at http://127.0.0.1:{closed}/-/ready "
                                               "within 0.3 s"):
        installer._probe(f"http://127.0.0.1:{closed}/-/ready", None, "Prometheus")


def test_a_failure_after_the_clusters_exist_says_they_are_left_and_how_to_delete_them() -> None:
    def reply(command: Command) -> CommandResult | str:
        if command.argv[:2] == ("docker", "info"):
            return f"27.3.1 {16 * 1024 ** 3}"
        if command.argv[:2] == ("istioctl", "version"):
            return "client version: 1.30.3"
        if command.argv[:2] == ("istioctl", "install"):
            raise PlatformError("`istioctl install` failed with exit code 1: webhook not ready")
        return ""

    platform = KindPlatform(KindSettings(), runner=ScriptedRunner(reply), kube_factory=_no_cluster)
    with pytest.raises(PlatformError, match="webhook not ready\n\\(the kind cluster\\(s\\) parallel-ai are left as "
                                            "they are for inspection; `harness down --platform kind` deletes them\\)"):
        platform.up()


def test_dry_run_of_apply_and_delete_shows_the_reads_their_checks_make(no_subprocess: None) -> None:
    """A batch with a selector-less Telemetry lists the cluster's Telemetry before applying (the final-set
    check); a delete reads each object before deleting it (kubectl's NotFound). A dry run reads nothing
    back, so neither refuses: the reads are part of the plan."""
    platform = KindPlatform(KindSettings(dry_run=True))
    (telemetry,) = [d for d in render.istio_documents() if d["kind"] == "Telemetry"]
    routing = next(d for d in render.istio_documents() if d["kind"] == "VirtualService")
    platform.apply_documents([telemetry])
    platform.apply_documents([routing], delete=True)
    telemetries = "/apis/telemetry.istio.io/v1alpha1/namespaces/parallel-ai/telemetries"
    assert platform.steps == [f"{CTX} GET {telemetries}", f"{CTX} PATCH {telemetries}/custom-metrics {SSA}",
                              f"{CTX} GET {VS}/ai-agent-routing", f"{CTX} DELETE {VS}/ai-agent-routing"]
