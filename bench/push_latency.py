"""How fast changes reach traffic: route changes (apply/reset) and endpoint changes (kill, restart, EDS).

(a) route: apply a VirtualService aborting every request with 503, then `reset`; a tight client loop
    of POST /api/v1/chat through the ingress finds the first changed answer. Measured from the apply
    call and from the daemon's `pushed_at` (stamped after the last xDS file was renamed).
(b) kill: LocalPlatform.kill(ai-agent-v1-us-east-0) while the ingress admin /clusters is polled every
    2 ms: until its endpoint is gone, and after the restart until it is listed again, relative to the
    daemon's "endpoint ... ready" push and to the pod answering /health and /ready from outside.
(c) pure EDS through the controller: apply a DestinationRule whose subset v1 no longer selects the
    us-east pod (only EDS files change), then `reset`; until /clusters shows the change.
Every loop is bounded in count and time. Run: .venv/bin/python bench/push_latency.py
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _common import (CHAT_BODY, INGRESS_HOST, STATE_ROOT, ForeignLoad, Verdict, bench_settings, boot_time_wall, pod,
                     print_table, print_verdicts, process_start_wall, running_mesh, summarize, wait_for_quiet,
                     write_results)
from harness.errors import HarnessError
from harness.mesh.loader import MeshModel, build_model, declared_model, load_documents, merge_documents
from harness.mesh.translate import CertPaths, ExternalEndpoint, translate_proxy
from harness.platforms.local.control import request
from harness.platforms.local.private import app_socket
from harness.platforms.local.controller import MeshController
from harness.platforms.local.layout import Layout
from harness.platforms.local.platform import LocalPlatform

ROUTE_REPEATS, KILL_REPEATS, EDS_REPEATS = 10, 5, 10
ROUTE_TARGET_MS, ENDPOINT_TARGET_MS = 50.0, 200.0
POD = "ai-agent-v1-us-east-0"
V1_CLUSTER = "outbound|8080|v1|ai-agent-service.parallel-ai.svc.cluster.local"
BACKOFF_RESET_S = 10.5  # the supervisor restarts at its initial backoff only after 10 s of running
FILES = STATE_ROOT / "push_latency-files"

FAULT_VS = """apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: ai-agent-routing
  namespace: parallel-ai
spec:
  hosts: [ai-agent-service]
  gateways: [ai-agent-gateway, mesh]
  http:
  - fault:
      abort:
        percentage: {value: 100}
        httpStatus: 503
    route:
    - destination: {host: ai-agent-service, subset: v1}
"""

V1_WEST_ONLY_DR = """apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: ai-agent-destination
  namespace: parallel-ai
spec:
  host: ai-agent-service
  trafficPolicy:
    loadBalancer:
      simple: LEAST_CONN
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: us-west}, {from: us-west, to: eu-west}]
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30s}
      http: {http1MaxPendingRequests: 50, http2MaxRequests: 100, maxRequestsPerConnection: 10, maxRetries: 3}
    outlierDetection:
      consecutiveGatewayErrors: 5
      consecutive5xxErrors: 5
      interval: 30s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
      minHealthPercent: 50
  subsets:
  - name: v1
    labels: {version: v1, istio-locality: us-west}
  - name: v2
    labels: {version: v2}
"""


@dataclass(frozen=True)
class Record:
    sent: float  # wall clock
    received: float
    value: Any


class Recorder(threading.Thread):
    """Calls `probe` in a loop bounded by count and time, keeping (sent, received, value)."""

    def __init__(self, probe: Callable[[], Any], interval_s: float, max_s: float = 300.0,
                 max_n: int = 400_000) -> None:
        super().__init__(daemon=True)
        self.probe, self.interval_s, self.max_s, self.max_n = probe, interval_s, max_s, max_n
        self.records: list[Record] = []
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        while not self.stop.is_set() and time.monotonic() < deadline and len(self.records) < self.max_n:
            sent = time.time()
            value = self.probe()
            self.records.append(Record(sent, time.time(), value))
            if self.interval_s:
                time.sleep(self.interval_s)

    def wait_for(self, test: Callable[[Any], bool], after: float,
                 timeout_s: float) -> tuple[Record, Record | None] | None:
        """The first record received after `after` passing `test`, and the last one before it failing it."""
        deadline = time.monotonic() + timeout_s
        index = 0
        while time.monotonic() < deadline:
            records = self.records
            for i in range(index, len(records)):
                if records[i].received > after and test(records[i].value):
                    before = next((r for r in reversed(records[:i]) if not test(r.value)), None)
                    return records[i], before
            index = len(records)
            time.sleep(0.001)
        return None


class Http:
    """A keep-alive GET/POST to 127.0.0.1 that never raises: errors come back as their class name."""

    def __init__(self, port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None,
                 uds: Path | None = None) -> None:
        self.port, self.method, self.path, self.headers, self.body = port, method, path, headers, body
        self.uds = uds  # a Unix socket (the local mesh's apps listen on one) instead of 127.0.0.1:port
        self.conn: http.client.HTTPConnection | None = None

    def __call__(self) -> tuple[int | str, str, bytes]:
        try:
            if self.conn is None:
                self.conn = (_UnixConnection(self.uds) if self.uds is not None
                             else http.client.HTTPConnection("127.0.0.1", self.port, timeout=2))
            self.conn.request(self.method, self.path, body=self.body, headers=self.headers)
            response = self.conn.getresponse()
            return response.status, response.getheader("x-served-by") or "-", response.read()
        except (OSError, http.client.HTTPException) as exc:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return type(exc).__name__, "-", b""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("127.0.0.1", timeout=2)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(str(self.socket_path))
        self.sock = sock


def chat_probe(ingress: int) -> Callable[[], Any]:
    call = Http(ingress, "POST", "/api/v1/chat", {"host": INGRESS_HOST, "content-type": "application/json"}, CHAT_BODY)
    return lambda: call()[0]


def clusters_probe(admin_port: int, endpoint: str) -> Callable[[], frozenset[str] | None]:
    """The ai-agent clusters of the ingress that list `endpoint` (host:port); None if /clusters failed."""
    call = Http(admin_port, "GET", "/clusters", {})

    def probe() -> frozenset[str] | None:
        status, _, body = call()
        if status != 200:
            return None
        return frozenset(line.split("::", 1)[0] for line in body.decode().splitlines()
                         if f"::{endpoint}::health_flags::" in line and "ai-agent-service" in line)
    return probe


def push_probe(socket: Path) -> Callable[[], tuple[float, str] | None]:
    def probe() -> tuple[float, str] | None:
        try:
            push = request(socket, {"op": "status"}, timeout_s=1)["last_push"]
        except (HarnessError, OSError, ValueError):
            return None
        return push["at"], push["reason"]
    return probe


def ready_probe(app_socket_path: Path, admin_port: int) -> Callable[[], bool]:
    """The pod as a kubelet would see it: the app's /health (on its socket) and the sidecar's /ready both 200."""
    app = Http(0, "GET", "/health", {}, uds=app_socket_path)
    sidecar = Http(admin_port, "GET", "/ready", {})
    return lambda: app()[0] == 200 and sidecar()[0] == 200


def ms(value: float) -> float:
    return round(value * 1000, 2)


# -- (a) route change ----------------------------------------------------------------------------


def route_change(platform: LocalPlatform, ingress: int) -> list[dict[str, Any]]:
    fault = FILES / "fault-virtualservice.yaml"
    fault.write_text(FAULT_VS)
    traffic = Recorder(chat_probe(ingress), interval_s=0.0, max_s=ROUTE_REPEATS * 15)
    traffic.start()
    rows = []
    try:
        traffic.wait_for(lambda v: v == 200, after=0, timeout_s=10)
        for _ in range(ROUTE_REPEATS):
            for label, action, changed in (("abort on (apply)", lambda: platform.apply([fault]), lambda v: v == 503),
                                           ("abort off (reset)", platform.reset, lambda v: v == 200)):
                called = time.time()
                result = action()
                returned = time.time()
                hit = traffic.wait_for(changed, after=called, timeout_s=5)
                row = {"change": label, "call_ms": ms(returned - called),
                       "acknowledged_ms": result.get("acknowledged_ms"), "files_written": result.get("files_written")}
                if hit:
                    first, last_old = hit
                    # A tight loop: the first changed answer's request was sent when the one before
                    # it came back. Every request sent after `first.sent` sees the change, so that is
                    # when it became visible in traffic (an upper bound); `received` adds the probe
                    # request's own duration (a whole chat fan-out when the abort is lifted).
                    row |= {"call_to_first_sent_ms": ms(first.sent - called),
                            "call_to_first_ms": ms(first.received - called),
                            "pushed_to_first_ms": ms(first.received - result["pushed_at"]),
                            "pushed_to_last_old_sent_ms": ms(last_old.sent - result["pushed_at"]) if last_old else None}
                rows.append(row)
                time.sleep(0.3)
    finally:
        traffic.stop.set()
        traffic.join(10)
    return rows


# -- (b) kill and restart --------------------------------------------------------------------------


def kill_restart(platform: LocalPlatform, status: dict[str, Any]) -> list[dict[str, Any]]:
    target = pod(status, POD)
    endpoint = f"127.0.0.1:{target['inbound_port']}"
    admin = int(status["gateway"]["admin_url"].rsplit(":", 1)[1])
    sidecar_admin = int(target["sidecar_admin_url"].rsplit(":", 1)[1])
    clusters = Recorder(clusters_probe(admin, endpoint), interval_s=0.002, max_s=KILL_REPEATS * 40)
    pushes = Recorder(push_probe(platform.socket), interval_s=0.01, max_s=KILL_REPEATS * 40)
    ready = Recorder(ready_probe(app_socket(platform.state_dir, POD), sidecar_admin), interval_s=0.01,
                     max_s=KILL_REPEATS * 40)
    recorders = (clusters, pushes, ready)
    for r in recorders:
        r.start()
    rows = []
    try:
        mono_to_wall = time.time() - time.monotonic()
        for _ in range(KILL_REPEATS):
            called = time.time()
            killed = platform.kill(POD)
            kill_call_ms = ms(time.time() - called)
            gone = clusters.wait_for(lambda v: v is not None and not v, after=called, timeout_s=10)
            back = clusters.wait_for(lambda v: bool(v), after=gone[0].received if gone else called, timeout_s=30)
            not_ready = pushes.wait_for(lambda v: bool(v) and v[1] == f"endpoint {POD} not ready", after=called,
                                        timeout_s=1)
            ready_push = pushes.wait_for(lambda v: bool(v) and v[1] == f"endpoint {POD} ready" and v[0] > called,
                                         after=called, timeout_s=5)
            outside = ready.wait_for(bool, after=gone[0].received if gone else called, timeout_s=5)
            signalled = killed["at"] + mono_to_wall
            row = {"kill_call_ms": kill_call_ms,
                   **kill_figures(called, signalled, gone, back, not_ready, ready_push, outside)}
            row |= restart_breakdown(platform, signalled, outside[0].received if outside else None)
            rows.append(row)
            settle = (back[0].received if back else time.time()) + BACKOFF_RESET_S
            while time.time() < settle:
                time.sleep(0.1)
    finally:
        for r in recorders:
            r.stop.set()
        for r in recorders:
            r.join(10)
    return rows


Hit = tuple[Record, Record | None] | None


def kill_figures(called: float, signalled: float, gone: Hit, back: Hit, not_ready: Hit, ready_push: Hit,
                 outside: Hit) -> dict[str, float | None]:
    """Milliseconds between the kill call, the SIGKILL, the daemon's pushes, readiness and /clusters."""
    row: dict[str, float | None] = {}
    if gone:
        row |= {"kill_call_to_gone_ms": ms(gone[0].received - called),
                "signal_to_gone_ms": ms(gone[0].received - signalled)}
        if not_ready:
            row["not_ready_push_to_gone_ms"] = ms(gone[0].received - not_ready[0].value[0])
            row["signal_to_not_ready_push_ms"] = ms(not_ready[0].value[0] - signalled)
    if back:
        row["kill_call_to_listed_ms"] = ms(back[0].received - called)
        if ready_push:
            row["ready_push_to_listed_ms"] = ms(back[0].received - ready_push[0].value[0])
        if outside:
            row["outside_ready_to_listed_ms"] = ms(back[0].received - outside[0].received)
            row["outside_ready_to_ready_push_ms"] = (
                ms(ready_push[0].value[0] - outside[0].received) if ready_push else None)
    return row


def restart_breakdown(platform: LocalPlatform, signalled: float, outside_ready: float | None) -> dict[str, Any]:
    """Where the ~1 s of kill -> listed again goes: restart backoff, process start-up (/proc, 10 ms ticks)."""
    target, boot = pod(platform.status(), POD), boot_time_wall()
    app_start, sidecar_start = process_start_wall(target["pid"], boot), process_start_wall(target["sidecar_pid"], boot)
    out: dict[str, Any] = {}
    if app_start and sidecar_start:
        out["signal_to_new_processes_ms"] = ms(max(app_start, sidecar_start) - signalled)
        if outside_ready:
            out["new_app_start_to_outside_ready_ms"] = ms(outside_ready - app_start)
            out["new_sidecar_start_to_outside_ready_ms"] = ms(outside_ready - sidecar_start)
    return out


# -- (c) EDS only, through the controller -------------------------------------------------------------


def eds_change(platform: LocalPlatform, status: dict[str, Any]) -> list[dict[str, Any]]:
    rule = FILES / "v1-us-west-only-destinationrule.yaml"
    rule.write_text(V1_WEST_ONLY_DR)
    endpoint = f"127.0.0.1:{pod(status, POD)['inbound_port']}"
    admin = int(status["gateway"]["admin_url"].rsplit(":", 1)[1])
    clusters = Recorder(clusters_probe(admin, endpoint), interval_s=0.002, max_s=EDS_REPEATS * 10)
    clusters.start()
    rows = []
    try:
        for _ in range(EDS_REPEATS):
            for label, action, changed in (
                    ("v1 subset drops us-east (apply)", lambda: platform.apply([rule]),
                     lambda v: v is not None and V1_CLUSTER not in v),
                    ("v1 subset back (reset)", platform.reset, lambda v: v is not None and V1_CLUSTER in v)):
                called = time.time()
                result = action()
                hit = clusters.wait_for(changed, after=called, timeout_s=5)
                row = {"change": label, "call_ms": ms(time.time() - called),
                       "acknowledged_ms": result.get("acknowledged_ms"), "files_written": result.get("files_written")}
                if hit:
                    row |= {"call_to_seen_ms": ms(hit[0].received - called),
                            "pushed_to_seen_ms": ms(hit[0].received - result["pushed_at"])}
                rows.append(row)
                time.sleep(0.2)
    finally:
        clusters.stop.set()
        clusters.join(10)
    return rows


# -- where the control plane's time goes, replayed in this process -------------------------------------


def control_plane_breakdown(platform: LocalPlatform, status: dict[str, Any], repeats: int = 10) -> dict[str, Any]:
    """Where an apply's time goes, with no traffic running: live applies, then each step on its own.

    The steps are the harness's own calls: LocalPlatform.apply validates (load_documents); the daemon's
    MeshController.push_confirmed merges and builds the model, translates every proxy and writes the
    changed files, then waits for every proxy's version_text to show them (acks.AckWaiter).
    Translation and writing are replayed here against a scratch state dir with the same topology.
    """
    fault = FILES / "fault-virtualservice.yaml"
    steps: dict[str, list[float]] = {k: [] for k in (
        "live apply/reset: call -> pushed_at (files renamed)", "live apply/reset: whole call (with acks)",
        "validate (CLI: load_documents)",
        "merge + build_model", "translate every proxy", "serialize + write changed files",
        "endpoint push (set_ready: translate + serialize + write)")}
    for index in range(repeats):
        called = time.time()
        result = platform.apply([fault]) if index % 2 == 0 else platform.reset()
        steps["live apply/reset: whole call (with acks)"].append(time.time() - called)
        steps["live apply/reset: call -> pushed_at (files renamed)"].append(result["pushed_at"] - called)
        time.sleep(0.2)
    controller, declared = _scratch_controller()
    for index in range(repeats):
        started = time.perf_counter()
        documents = load_documents([fault])
        steps["validate (CLI: load_documents)"].append(time.perf_counter() - started)
        started = time.perf_counter()
        model = build_model(merge_documents(controller.model.documents, documents) if index % 2 == 0
                            else declared.documents)
        steps["merge + build_model"].append(time.perf_counter() - started)
        started = time.perf_counter()
        state = controller.state(model)
        configs = {name: translate_proxy(state, node) for name, node in controller.nodes.items()}
        steps["translate every proxy"].append(time.perf_counter() - started)
        started = time.perf_counter()
        for name, config in configs.items():
            controller.writers[name].write(config)
        controller.model = model
        steps["serialize + write changed files"].append(time.perf_counter() - started)
        started = time.perf_counter()
        controller.set_ready(POD, index % 2 == 1)
        steps["endpoint push (set_ready: translate + serialize + write)"].append(time.perf_counter() - started)
    return {"proxies": len(controller.nodes),
            "steps_ms": {k: summarize([v * 1000 for v in values], 2) for k, values in steps.items()}}


def _scratch_controller() -> tuple[MeshController, MeshModel]:
    """A MeshController like the daemon's (same topology, 7 proxies) writing under a scratch state dir."""
    base = bench_settings("push_latency")
    settings = type(base)(**{**base.__dict__, "state_dir": STATE_ROOT / "push_latency-replay"})
    declared = declared_model()
    layout = Layout.plan(settings, declared.topology)
    scratch = settings.state_dir / "pki"
    scratch.mkdir(parents=True, exist_ok=True)
    for name in ("chain.pem", "key.pem"):  # translation inlines them into the SDS secret
        (scratch / name).write_text(f"placeholder {name}\n")
    certs = {sa: CertPaths(scratch / "chain.pem", scratch / "key.pem", scratch / "root.pem")
             for sa in {p.service_account for p in declared.topology.pods} | {"api-gateway"}}
    external = {"api.openai.com": ExternalEndpoint("api.openai.com", "127.0.0.1", layout.external_port,
                                                   scratch / "external-root.pem")}
    controller = MeshController(declared, layout, certs, external, access_log=True)
    controller.ready = {p.name for p in declared.topology.pods}
    controller.push("initial")
    return controller, declared


def table(rows: list[dict[str, Any]], keys: list[str], group: str | None = None) -> dict[str, Any]:
    """Summaries of each key, per value of `group` when given."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row.get(group, "all") if group else "all", []).append(row)
    out = {}
    for name, members in groups.items():
        out[name] = {k: summarize([r[k] for r in members if r.get(k) is not None], 2) for k in keys}
    return out


def show(title: str, summary: dict[str, Any]) -> None:
    print(f"\n== {title} (ms)")
    print_table(["change", "figure", "n", "min", "p50", "max"],
                [[group, key, s["n"], s.get("min", "-"), s.get("p50", "-"), s.get("max", "-")]
                 for group, figures in summary.items() for key, s in figures.items()])


def main() -> None:
    FILES.mkdir(parents=True, exist_ok=True)
    quiet = wait_for_quiet()
    foreign = ForeignLoad()
    with running_mesh(bench_settings("push_latency", ai_latency_ms=0)) as (platform, status):
        url = f"https://{status['external']['address']}/admin/knobs"
        httpx.put(url, json={"ai_jitter_ms": 0}, verify=False, trust_env=False, timeout=5).raise_for_status()
        ingress = int(status["ingress_url"].rsplit(":", 1)[1])
        route_rows = route_change(platform, ingress)
        kill_rows = kill_restart(platform, status)
        eds_rows = eds_change(platform, status)
        breakdown = control_plane_breakdown(platform, status)
    route = table(route_rows, ["call_to_first_sent_ms", "call_to_first_ms", "pushed_to_first_ms",
                               "pushed_to_last_old_sent_ms",
                               "acknowledged_ms", "call_ms"], "change")
    kill = table(kill_rows, ["kill_call_ms", "kill_call_to_gone_ms", "signal_to_gone_ms", "signal_to_not_ready_push_ms",
                             "not_ready_push_to_gone_ms", "kill_call_to_listed_ms", "signal_to_new_processes_ms",
                             "new_app_start_to_outside_ready_ms", "new_sidecar_start_to_outside_ready_ms",
                             "outside_ready_to_ready_push_ms", "ready_push_to_listed_ms", "outside_ready_to_listed_ms"])
    eds = table(eds_rows, ["call_to_seen_ms", "pushed_to_seen_ms", "acknowledged_ms", "call_ms"], "change")
    show("(a) route change through the ingress", route)
    show(f"(b) kill {POD}: ingress /clusters", kill)
    show("(c) EDS-only change through the controller: ingress /clusters", eds)
    print(f"\n== where an apply's time goes, no traffic ({breakdown['proxies']} proxies, ms)")
    print_table(["step", "n", "min", "p50", "max"],
                [[k, v["n"], v["min"], v["p50"], v["max"]] for k, v in breakdown["steps_ms"].items()])

    def p50(summary: dict[str, Any], group: str, key: str) -> float:
        return float(summary[group][key].get("p50", float("inf")))

    verdicts = [Verdict(f"(a) {g}: apply call -> visible (first changed request sent)",
                        f"{p50(route, g, 'call_to_first_sent_ms')} ms p50", f"<= {ROUTE_TARGET_MS:g} ms",
                        p50(route, g, "call_to_first_sent_ms") <= ROUTE_TARGET_MS) for g in route]
    verdicts += [Verdict(f"(a) {g}: apply call -> first changed answer received",
                         f"{p50(route, g, 'call_to_first_ms')} ms p50", f"<= {ROUTE_TARGET_MS:g} ms",
                         p50(route, g, "call_to_first_ms") <= ROUTE_TARGET_MS) for g in route]
    verdicts += [Verdict(f"(a) {g}: files renamed (pushed_at) -> first changed answer",
                         f"{p50(route, g, 'pushed_to_first_ms')} ms p50", f"<= {ROUTE_TARGET_MS:g} ms",
                         p50(route, g, "pushed_to_first_ms") <= ROUTE_TARGET_MS) for g in route]
    for label, key in (("(b) kill call -> endpoint gone from ingress", "kill_call_to_gone_ms"),
                       ("(b) pod ready (outside) -> endpoint listed", "outside_ready_to_listed_ms")):
        verdicts.append(Verdict(label, f"{p50(kill, 'all', key)} ms p50", f"<= {ENDPOINT_TARGET_MS:g} ms",
                                p50(kill, "all", key) <= ENDPOINT_TARGET_MS))
    verdicts += [Verdict(f"(c) {g}: apply call -> seen in /clusters", f"{p50(eds, g, 'call_to_seen_ms')} ms p50",
                         f"<= {ENDPOINT_TARGET_MS:g} ms", p50(eds, g, "call_to_seen_ms") <= ENDPOINT_TARGET_MS)
                 for g in eds]
    print_verdicts(verdicts)
    path = write_results("push_latency", {
        "route_change": {"summary": route, "rows": route_rows}, "kill_restart": {"summary": kill, "rows": kill_rows},
        "eds_change": {"summary": eds, "rows": eds_rows}, "control_plane_breakdown": breakdown,
        "machine_before": quiet, "other_load": foreign.result(),
        "verdicts": [v.__dict__ for v in verdicts]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
