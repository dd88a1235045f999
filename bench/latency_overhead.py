"""Latency added per Envoy pass: the same request straight to an app and through 1 or 2 Envoy passes.

A fair A/B needs the same app, the same request and the same client on both sides, so every mesh path
is paired with a direct baseline and only the number of Envoy passes differs:

  user.direct            client -> user app                                       (0 passes)
  user.inbound           client (mTLS, ai-agent's mesh cert) -> user sidecar inbound -> user app (1)
  user.outbound+inbound  client -> ai-agent sidecar outbound -> mTLS -> user sidecar inbound -> app (2)
  agent.direct           client -> ai-agent app, GET /api/v1/users/u1 (404 from the app, no fan-out)
  agent.ingress+inbound  client -> ingress -> mTLS -> ai-agent sidecar inbound (RBAC) -> app    (2)
  chat.direct            client -> ai-agent app POST /api/v1/chat (its own calls use its sidecar)
  chat.ingress+inbound   the same chat through the ingress                              (+2 passes)
  user.bare-envoy        reference, not the mesh: a bare Envoy (plaintext, router only) -> user app (1)
  floor.bare-envoy       once, mesh down: the same bare Envoy before a trivial server (bench/_tiny_http.py),
                         against floor.direct: what one Envoy pass costs on this machine at best

Each configuration (Envoy concurrency 1 and 2, dev profile with access logs and prod without) gets
its own mesh. Sequential: one request at a time. Paced: open-loop 200 rps per one-app path.

Per-pass overhead at quantile q = (mesh q - direct q) / passes (quantiles of independent samples, not
quantiles of paired differences). ai_latency_ms=0 and the external API's ai_jitter_ms knob 0 keep the
chat path free of simulated inference time. Run: .venv/bin/python bench/latency_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from _common import (CHAT_BODY, INGRESS_HOST, PORT_BASES, STATE_ROOT, ForeignLoad, Verdict, bench_settings,
                     free_block, mesh_client_tls, pod, print_table, print_verdicts, run_loadgen, running_mesh,
                     summarize, target, wait_for_quiet, write_results)
from harness.platforms.local.launch import envoy_binary
from harness.platforms.local.platform import LocalPlatform
from harness.platforms.local.private import app_socket

AGENT_POD, USER_POD = "ai-agent-v1-us-east-0", "user-v1-us-east-0"
TARGET_MS_PER_PASS = 0.25
USER_CLUSTER = "outbound|8080||user-service.parallel-ai.svc.cluster.local"
# The chat fan-out (4 apps, 5 more Envoy passes, TLS to the external API) saturates 2 cores well below
# 200 rps (smoke run: direct chat p50 427 ms at 200 rps), so at 200 rps only the one-app paths run.
PACED_PATHS = ("user.direct", "user.inbound", "user.outbound+inbound", "agent.direct", "agent.ingress+inbound",
               "user.bare-envoy")
# label -> (envoy_concurrency, profile); the dev profile (the default) turns Envoy access logs on.
CONFIGS = {"concurrency=1, dev (harness defaults)": (1, "dev"),
           "concurrency=2 (Envoy's default on 2 cores), dev": (2, "dev"),
           "concurrency=1, prod (no access logs)": (1, "prod")}
BARE_OFFSETS = (960, 961)  # listener and admin of the reference Envoy, inside the mesh's port block


@dataclass(frozen=True)
class Pair:
    mesh: str
    direct: str
    passes: int
    kind: str  # what the passes are
    reference: bool = False  # not the mesh: a yardstick, so no verdict


PAIRS = (
    Pair("user.inbound", "user.direct", 1, "sidecar inbound (mTLS termination)"),
    Pair("user.outbound+inbound", "user.direct", 2, "sidecar outbound + sidecar inbound (mTLS between)"),
    Pair("agent.ingress+inbound", "agent.direct", 2, "ingress + sidecar inbound (mTLS, RBAC)"),
    Pair("chat.ingress+inbound", "chat.direct", 2, "ingress + sidecar inbound, real chat request"),
    Pair("user.bare-envoy", "user.direct", 1, "reference: bare Envoy, plaintext, router only", reference=True),
    Pair("floor.bare-envoy", "floor.direct", 1, "floor: bare Envoy before a trivial server", reference=True),
)


def targets(platform: LocalPlatform, status: dict[str, Any]) -> list[dict[str, Any]]:
    agent, user = pod(status, AGENT_POD), pod(status, USER_POD)
    ingress = int(status["ingress_url"].rsplit(":", 1)[1])
    user_path = "/api/v1/users/u1"
    # "direct": the app itself, on its Unix socket (its app_port is the sidecar's /metrics-only listener)
    user_uds, agent_uds = (str(app_socket(platform.state_dir, name)) for name in (USER_POD, AGENT_POD))
    return [
        target("user.direct", user["app_port"], user_path, uds=user_uds),
        target("user.inbound", user["inbound_port"], user_path, host="user-service",
               tls=mesh_client_tls(platform, "ai-agent-service")),
        target("user.outbound+inbound", agent["outbound_port"], user_path, host="user-service"),
        target("agent.direct", agent["app_port"], user_path, uds=agent_uds),
        target("agent.ingress+inbound", ingress, user_path, host=INGRESS_HOST),
        target("chat.direct", agent["app_port"], "/api/v1/chat", method="POST", body=CHAT_BODY, uds=agent_uds),
        target("chat.ingress+inbound", ingress, "/api/v1/chat", method="POST", body=CHAT_BODY, host=INGRESS_HOST),
    ]


def quiet_external_api(status: dict[str, Any]) -> None:
    """ai_jitter_ms defaults to 5 on the external API (the platform sets only AI_LATENCY_MS)."""
    url = f"https://{status['external']['address']}/admin/knobs"
    with httpx.Client(verify=False, trust_env=False, timeout=5) as client:  # 127.0.0.1, its own CA
        client.put(url, json={"ai_latency_ms": 0, "ai_jitter_ms": 0}).raise_for_status()


def user_cluster_counters(status: dict[str, Any]) -> dict[str, int]:
    """ai-agent's sidecar: connections opened and requests sent to user-service so far."""
    url = pod(status, AGENT_POD)["sidecar_admin_url"] + "/stats?filter=upstream_(cx|rq)_total$"
    text = httpx.get(url, trust_env=False, timeout=5).text
    prefix = f"cluster.{USER_CLUSTER}."
    return {line[len(prefix):].split(":")[0]: int(line.rsplit(":", 1)[1])
            for line in text.splitlines() if line.startswith(prefix)}


def bare_envoy_bootstrap(listen: int, admin: int, app: int | Path) -> dict[str, Any]:
    """The least an Envoy pass can be: plaintext HTTP/1.1, one route, a static cluster, no logs or filters."""
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "stat_prefix": "bare",
           "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                                               "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    address = ({"pipe": {"path": str(app)}} if isinstance(app, Path)
               else {"socket_address": {"address": "127.0.0.1", "port_value": app}})
    return {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "static_resources": {
                "listeners": [{"name": "bare", "address": {"socket_address": {"address": "127.0.0.1",
                                                                              "port_value": listen}},
                               "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                               "typed_config": hcm}]}]}],
                "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
                    "cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}]}}]}}


@contextmanager
def bare_envoy(listen: int, admin: int, app: int | Path, concurrency: int, workdir: Path) -> Iterator[int | None]:
    """A reference Envoy in front of `app`, started here and stopped by its PID; None if it did not get ready."""
    config = workdir / "bare-envoy.json"
    config.write_text(json.dumps(bare_envoy_bootstrap(listen, admin, app)))
    with open(workdir / "bare-envoy.log", "ab") as log:
        proc = subprocess.Popen([envoy_binary(), "-c", str(config), "--disable-hot-restart", "--concurrency",
                                 str(concurrency), "-l", "warning"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        yield listen if wait_200(f"http://127.0.0.1:{admin}/ready", proc) else None
    finally:
        stop(proc)


def wait_200(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, trust_env=False, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def envoy_floor(quick: bool, quiet_below: float = 0.25) -> dict[str, Any]:
    """What one Envoy pass costs here at best: bare Envoy (concurrency 1) before a trivial non-Python-app server."""
    quiet = wait_for_quiet(busy_below=quiet_below)
    base = free_block(PORT_BASES["latency_overhead"])
    workdir = STATE_ROOT / "latency_overhead-floor"
    workdir.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_tiny_http.py")), str(base), "120"],
                              stdin=subprocess.DEVNULL)
    try:
        with bare_envoy(base + 1, base + 2, base, 1, workdir) as port:
            if port is None or not wait_200(f"http://127.0.0.1:{base}/", server):
                return {"error": "the floor's Envoy or server did not start"}
            foreign = ForeignLoad()
            raw = run_loadgen({"mode": "sequential", "rounds": 4, "per_round": 200 if quick else 1000, "warmup": 100,
                               "targets": [target("floor.direct", base, "/"), target("floor.bare-envoy", port, "/")]},
                              timeout_s=300)
    finally:
        stop(server)
    paths = summarize_run(raw)
    return {"machine_before": quiet, "other_load": foreign.result(), "paths": paths, "per_pass_ms": per_pass(paths)}


def summarize_run(raw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, result in raw["targets"].items():
        out[name] = {"latency_ms": summarize(result["latencies_ms"]), "statuses": result["statuses"],
                     "served_by": result["served_by"], "errors": result["errors"],
                     "reconnects": result["reconnects"], "dropped": result["dropped"]}
        if result["schedule_latencies_ms"]:
            out[name]["from_planned_send_ms"] = summarize(result["schedule_latencies_ms"])
    return out


def per_pass(paths: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for pair in (p for p in PAIRS if p.mesh in paths and p.direct in paths):
        mesh, direct = paths[pair.mesh]["latency_ms"], paths[pair.direct]["latency_ms"]
        rows.append({"mesh": pair.mesh, "direct": pair.direct, "passes": pair.passes, "kind": pair.kind,
                     "reference": pair.reference,
                     **{q: round((mesh[q] - direct[q]) / pair.passes, 3) for q in ("min", "p50", "p90", "p99")}})
    return rows


def measure(concurrency: int, profile: str, quick: bool, quiet_below: float) -> dict[str, Any]:
    quiet = wait_for_quiet(busy_below=quiet_below)
    settings = bench_settings("latency_overhead", ai_latency_ms=0, envoy_concurrency=concurrency, profile=profile)
    with running_mesh(settings) as (platform, status), \
            bare_envoy(platform.settings.base_port + BARE_OFFSETS[0], platform.settings.base_port + BARE_OFFSETS[1],
                       app_socket(platform.state_dir, USER_POD), concurrency, platform.state_dir) as bare_port:
        quiet_external_api(status)
        specs = targets(platform, status)
        if bare_port is not None:
            specs.append(target("user.bare-envoy", bare_port, "/api/v1/users/u1"))
        time.sleep(1.0)  # let start-up work (first Prometheus scrapes, pushes) settle
        foreign = ForeignLoad()
        counters_before = user_cluster_counters(status)
        seq = run_loadgen({"mode": "sequential", "targets": specs, "rounds": 4,
                           "per_round": 100 if quick else 500, "warmup": 50, "max_s": 300}, timeout_s=400)
        churn = {f"{k}_delta": v - counters_before.get(k, 0) for k, v in user_cluster_counters(status).items()}
        seq_foreign = foreign.result()
        foreign = ForeignLoad()
        paced: dict[str, Any] = {}
        for spec in (s for s in specs if s["name"] in PACED_PATHS):
            raw = run_loadgen({"mode": "paced", "targets": [spec], "rate": 200,
                               "duration_s": 5 if quick else 20, "warmup_s": 1, "max_in_flight": 64},
                              timeout_s=60)
            paced.update(raw["targets"])
        sequential_paths = summarize_run(seq)
        paced_paths = summarize_run({"targets": paced})
        paced_foreign = foreign.result()
    return {"envoy_concurrency": concurrency, "profile": profile, "machine_before": quiet,
            "sequential": {"paths": sequential_paths, "per_pass_ms": per_pass(sequential_paths),
                           "other_load": seq_foreign, "ai_agent_sidecar_to_user_service": churn},
            "paced_200rps": {"paths": paced_paths, "per_pass_ms": per_pass(paced_paths), "other_load": paced_foreign}}


# The shipped failover-config DestinationRule for user-service, without maxRequestsPerConnection: 2.
USER_DR_NO_CONNECTION_LIMIT = """apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: failover-config, namespace: parallel-ai}
spec:
  host: user-service
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: us-west}, {from: us-west, to: eu-west}]
    connectionPool:
      tcp: {maxConnections: 50, connectTimeout: 30s, tcpKeepalive: {time: 7200s, interval: 75s, probes: 9}}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 100, maxRetries: 3}
    outlierDetection: {consecutiveGatewayErrors: 3, consecutive5xxErrors: 3, interval: 30s, baseEjectionTime: 30s}
"""


def churn_check(quick: bool, quiet_below: float) -> dict[str, Any]:
    """user.outbound+inbound with the shipped maxRequestsPerConnection: 2 (a new mTLS connection every 2nd
    request) and with that limit lifted by applying the same DestinationRule without it."""
    quiet = wait_for_quiet(busy_below=quiet_below)
    settings = bench_settings("latency_overhead", ai_latency_ms=0)
    spec = {"mode": "sequential", "rounds": 4, "per_round": 100 if quick else 500, "warmup": 50, "max_s": 300}
    out: dict[str, Any] = {"machine_before": quiet}
    with running_mesh(settings) as (platform, status):
        specs = [s for s in targets(platform, status) if s["name"] in ("user.direct", "user.outbound+inbound")]
        rule = STATE_ROOT / "latency_overhead-user-dr.yaml"
        rule.write_text(USER_DR_NO_CONNECTION_LIMIT)
        foreign = ForeignLoad()
        for label in ("shipped (maxRequestsPerConnection: 2)", "limit lifted"):
            if label == "limit lifted":
                platform.apply([rule])
            before = user_cluster_counters(status)
            paths = summarize_run(run_loadgen({**spec, "targets": specs}, timeout_s=400))
            counters = {f"{k}_delta": v - before.get(k, 0) for k, v in user_cluster_counters(status).items()}
            out[label] = {"paths": paths, "per_pass_ms": per_pass(paths), "ai_agent_sidecar_to_user_service": counters}
        platform.reset()
        out["other_load"] = foreign.result()
    return out


def report(label: str, result: dict[str, Any]) -> list[Verdict]:
    verdicts = []
    for mode in ("sequential", "paced_200rps"):
        print(f"\n== {label}, {mode}: latency per path (ms)")
        paths = result[mode]["paths"]
        print_table(["path", "n", "p50", "p90", "p99", "max", "statuses", "errors"],
                    [[name, p["latency_ms"]["n"], p["latency_ms"]["p50"], p["latency_ms"]["p90"],
                      p["latency_ms"]["p99"], p["latency_ms"]["max"], p["statuses"], p["errors"] or "-"]
                     for name, p in paths.items()])
        print(f"-- added per Envoy pass (ms) = (mesh - direct) / passes; other processes' CPU meanwhile: "
              f"{result[mode]['other_load']}")
        print_table(["pair", "passes", "min", "p50", "p90", "p99"],
                    [[f"{r['mesh']} - {r['direct']}", r["passes"], r["min"], r["p50"], r["p90"], r["p99"]]
                     for r in result[mode]["per_pass_ms"]])
        if "ai_agent_sidecar_to_user_service" in result[mode]:
            print(f"-- ai-agent sidecar -> user-service during the run: "
                  f"{result[mode]['ai_agent_sidecar_to_user_service']}")
        for row in (r for r in result[mode]["per_pass_ms"] if not r["reference"]):
            verdicts.append(Verdict(f"{label}, {mode}: {row['kind']}", f"{row['p50']:.3f} ms p50/pass",
                                    f"<= {TARGET_MS_PER_PASS} ms", row["p50"] <= TARGET_MS_PER_PASS))
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run, not for figures)")
    parser.add_argument("--quiet-below", type=float, default=0.25,
                        help="wait (up to 15 min per configuration) until others use less than this share of the CPUs")
    parser.add_argument("--churn-check", action="store_true",
                        help="only compare user.outbound+inbound with and without maxRequestsPerConnection: 2 "
                             "(writes results/latency_overhead_churn.json)")
    args = parser.parse_args()
    if args.churn_check:
        churn = churn_check(args.quick, args.quiet_below)
        for label in ("shipped (maxRequestsPerConnection: 2)", "limit lifted"):
            print(f"\n== {label}: {churn[label]['ai_agent_sidecar_to_user_service']}")
            print_table(["pair", "passes", "min", "p50", "p90", "p99"],
                        [[f"{r['mesh']} - {r['direct']}", r["passes"], r["min"], r["p50"], r["p90"], r["p99"]]
                         for r in churn[label]["per_pass_ms"]])
        print(f"\nwrote {write_results('latency_overhead_churn', churn)}")
        return
    results, verdicts = {}, []
    for label, (concurrency, profile) in CONFIGS.items():
        results[label] = measure(concurrency, profile, args.quick, args.quiet_below)
        verdicts += report(label, results[label])
    floor = envoy_floor(args.quick, args.quiet_below)
    if "per_pass_ms" in floor:
        print("\n== floor: one bare Envoy pass (concurrency 1) before a trivial server, sequential (ms)")
        print_table(["path", "n", "min", "p50", "p90", "p99"],
                    [[n, p["latency_ms"]["n"], p["latency_ms"]["min"], p["latency_ms"]["p50"], p["latency_ms"]["p90"],
                      p["latency_ms"]["p99"]] for n, p in floor["paths"].items()])
        print_table(["added per pass", "min", "p50", "p90", "p99"],
                    [[r["kind"], r["min"], r["p50"], r["p90"], r["p99"]] for r in floor["per_pass_ms"]])
    print_verdicts(verdicts)
    path = write_results("latency_overhead", {"envoy_floor": floor,
        "method": "sequential: 4 interleaved rounds x 500 requests per path after 50 warm-up, one at a time on "
                  "one keep-alive connection; paced: open-loop 200 rps for 20 s per one-app path after 1 s warm-up "
                  "(the chat fan-out saturates 2 cores below 200 rps)",
        "quick": args.quick, "target_ms_per_pass_p50": TARGET_MS_PER_PASS, "configs": results,
        "verdicts": [v.__dict__ for v in verdicts]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
