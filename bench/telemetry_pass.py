"""Issue 12's per-pass limit, in one run: sidecar passes with and without Istio's telemetry.

bench/telemetry_tags.py times the telemetry alone, on a bare plaintext Envoy; its share of a pass then
depends on a pass measured at another time, and this VM's speed changes from hour to hour (a bare Envoy
pass cost 0.716 ms on 2026-11-26, 0.085 ms and 0.036 ms on 2026-12-05), and not alike for the
telemetry's user-space work and a pass's system calls. Here both sides of the ratio come from the same
rounds. Sidecars for user-v1 and ai-agent-v1, built as the local platform builds them (translate_proxy,
file-based xDS, the mesh CA's certificates, mTLS, the declared DestinationRules, the dev profile's
access log and stats inclusion), in two variants, before the same trivial app (`_tiny_http.py`):

  B  the sidecars as they are: Istio's labels on four metrics per reporter, the peer metadata (the
     caller's header; the receiver's check, by its inbound routes against the certificate's URI SAN
     written into a header before routing; both headers removed before the app) and the seed's
     tracing at 1 %;
  A  the same sidecars with the telemetry they had before issue 12: the stats loggers of harness
     005307e (telemetry_tags.old_logger), no peer metadata, no tracing.

Two paths, as bench/latency_overhead.py names them:
  inbound             client (ai-agent's certificate, one keep-alive TLS connection, B's requests
                      carrying the header ai-agent's sidecar adds) -> user sidecar -> app: 1 pass;
  outbound+inbound    client -> ai-agent sidecar's outbound listener -> mTLS -> the same variant's
                      user sidecar -> app: 2 passes.
Sequential GETs of /api/v1/users/u1; the app directly and every variant of every path in an order
drawn per round. A pass is (a path's p50 minus the direct p50) / passes; the figure is B's pass over
A's, the median over rounds. Each repeat starts fresh processes: on this 2-core VM one process keeps
its own luck (where it runs, what it shares) for its life, a few us either way, which more rounds
with the same processes do not average out.

--breakdown adds three inbound variants of B, to show where the increment goes: B without its tracing
(no span), B without the peer-metadata check (no early header mutation, the inbound route as before
issue 12; the header is still removed before the app), and B without either: Istio's labels alone.

Run: .venv/bin/python bench/telemetry_pass.py [--repeats 4] [--rounds 12] [--per-round 800] [--pin]
[--breakdown]. Writes bench/results/telemetry_pass.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telemetry_tags import old_logger, round_p50  # noqa: E402

from harness.mesh.loader import declared_model  # noqa: E402
from harness.mesh.profiles import proxy_stats_inclusion  # noqa: E402
from harness.mesh.translate.bootstrap import bootstrap  # noqa: E402
from harness.mesh.translate.model import (  # noqa: E402
    CertPaths, Endpoint, MeshState, ProxyConfig, ProxyNode, TraceCollector,
)
from harness.mesh.translate.proxy import translate_proxy  # noqa: E402
from harness.mesh.translate.secrets import workload_secret  # noqa: E402
from harness.mesh.translate.telemetry import (  # noqa: E402
    PEER_HEADER, PEER_IDENTITY_HEADER, STATS_LOGGER, peer_headers,
)
from harness.mesh.translate.xds_files import XdsWriter  # noqa: E402
from harness.net import free_port  # noqa: E402
from harness.pki import MeshCA  # noqa: E402
from harness.platforms.local.launch import envoy_binary  # noqa: E402

PATH = "/api/v1/users/u1"
SERVER, CLIENT = "user-v1-us-east-0", "ai-agent-v1-us-east-0"
NO_PEER = {"name": PEER_HEADER, "present_match": False}  # the inbound route for requests without the header
_HANDED_OUT: set[int] = set()


def _port() -> int:
    """A free port not handed out before in this run: free_port may return one twice before it is bound,
    and Envoy binds its listeners with SO_REUSEPORT, so two sidecars given one port would split its
    connections (the likely cause of a TLS handshake reset seen once in a run of this script)."""
    for _ in range(100):
        port = free_port()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port not handed out already, after 100 tries")


def before_issue_12(config: ProxyConfig) -> ProxyConfig:
    """The sidecar's telemetry as it was: the old stats loggers, no peer metadata, no tracing."""
    without_peer_check(config)
    for listener in config.listeners:
        for chain in listener.get("filter_chains", []):
            for network_filter in chain.get("filters", []):
                hcm = network_filter["typed_config"]
                if "http_filters" not in hcm:
                    continue
                hcm.pop("tracing", None)
                reporter = "destination" if listener["name"] == "virtualInbound" else "source"
                hcm["access_log"] = [old_logger(reporter) if entry["typed_config"]["@type"] == STATS_LOGGER
                                     else entry for entry in hcm.get("access_log", [])]
    for route_config in config.routes.values():
        removed = [h for h in route_config.pop("request_headers_to_remove", []) if h != PEER_HEADER]
        if removed:
            route_config["request_headers_to_remove"] = removed
        for vhost in route_config.get("virtual_hosts", []):
            for route in vhost.get("routes", []):
                added = [h for h in route.pop("request_headers_to_add", []) if h["header"]["key"] != PEER_HEADER]
                if added:
                    route["request_headers_to_add"] = added
    return config


def without_tracing(config: ProxyConfig) -> ProxyConfig:
    for hcm in _hcms(config):
        hcm.pop("tracing", None)
    return config


def without_peer_check(config: ProxyConfig) -> ProxyConfig:
    """No early header mutation; the inbound routes as they were before the check (x-mesh-peer is still
    removed before the app)."""
    for hcm in _hcms(config):
        hcm.pop("early_header_mutation_extensions", None)
    for name, route_config in config.routes.items():
        if not name.startswith("inbound"):
            continue
        route_config["request_headers_to_remove"] = [h for h in route_config.get("request_headers_to_remove", [])
                                                     if h != PEER_IDENTITY_HEADER]
        for vhost in route_config.get("virtual_hosts", []):
            vhost["routes"] = [{**route, "match": {**route["match"], "headers": [
                h for h in route["match"]["headers"] if h != NO_PEER]}} for route in vhost["routes"]
                if NO_PEER in route["match"].get("headers", [])]
            for route in vhost["routes"]:
                if not route["match"]["headers"]:
                    del route["match"]["headers"]
    return config


def _hcms(config: ProxyConfig) -> list[dict[str, Any]]:
    return [network_filter["typed_config"] for listener in config.listeners
            for chain in listener.get("filter_chains", []) for network_filter in chain.get("filters", [])
            if "http_filters" in network_filter["typed_config"]]


PATHS = {"inbound": 1, "outbound+inbound": 2}  # path -> Envoy passes
# --breakdown: inbound variants of B, each without a part of issue 12's telemetry
BREAKDOWN = {"B without tracing": (without_tracing,),
             "B without the peer check": (without_peer_check,),
             "B without either (labels only)": (without_tracing, without_peer_check)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4, help="fresh Envoys each time (a process's own luck)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=800)
    parser.add_argument("--pin", action="store_true",
                        help="client on CPU 0, Envoys and upstream on CPU 1: steadier, a slower pass")
    parser.add_argument("--breakdown", action="store_true",
                        help="also B's inbound pass without its tracing, its peer check, or both")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {0})
    rounds: dict[str, list[float]] = {}
    for repeat in range(args.repeats):
        for name, values in measure(args.rounds, args.per_round, args.pin, args.breakdown, seed=repeat).items():
            rounds.setdefault(name, []).extend(values)
    result: dict[str, Any] = {
        "benchmark": "telemetry_pass", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": os.getloadavg(),
        "repeats": args.repeats, "rounds": args.rounds, "per_round": args.per_round, "pinned": args.pin,
        "p50_ms": {name: [round(x, 4) for x in values] for name, values in rounds.items()},
        "target_share": 0.05, "paths": {}}
    print(f"{args.repeats} x {args.rounds} rounds of {args.per_round}{', pinned' if args.pin else ''}; "
          "per Envoy pass, p50 minus the direct p50:")
    for path, count in PATHS.items():
        passes = {side: [(x - d) / count for x, d in zip(rounds[f"{path} {side}"], rounds["direct"])]
                  for side in ("A", "B")}
        figures = {"pass_before_us": round(statistics.median(passes["A"]) * 1000, 1),
                   "pass_now_us": round(statistics.median(passes["B"]) * 1000, 1),
                   "increment_us": round(statistics.median(b - a for a, b in zip(passes["A"], passes["B"])) * 1000, 1),
                   "increment_share": round(statistics.median(b / a - 1 for a, b in zip(passes["A"], passes["B"])), 4)}
        result["paths"][path] = figures
        print(f"  {path}: before issue 12's telemetry (A) {figures['pass_before_us']} us, now (B) "
              f"{figures['pass_now_us']} us; B - A {figures['increment_us']} us per pass, "
              f"{figures['increment_share']:+.1%} (target: within 5 %)")
    if args.breakdown:
        result["breakdown"] = {}
        inbound_a = [x - d for x, d in zip(rounds["inbound A"], rounds["direct"])]
        print("  inbound, B without a part (increment over A per pass):")
        for variant in BREAKDOWN:
            passes = [x - d for x, d in zip(rounds[f"inbound {variant}"], rounds["direct"])]
            figures = {"pass_us": round(statistics.median(passes) * 1000, 1),
                       "increment_us": round(statistics.median(b - a for a, b in zip(inbound_a, passes)) * 1000, 1),
                       "increment_share": round(statistics.median(b / a - 1 for a, b in zip(inbound_a, passes)), 4)}
            result["breakdown"][variant] = figures
            print(f"    {variant}: {figures['pass_us']} us; over A {figures['increment_us']} us, "
                  f"{figures['increment_share']:+.1%}")
    results = Path(__file__).resolve().parent / "results" / "telemetry_pass.json"
    results.write_text(json.dumps(result, indent=1) + "\n")


def measure(rounds: int, per_round: int, pin: bool, breakdown: bool, seed: int) -> dict[str, list[float]]:
    """One set of fresh processes: the rounds' p50s (ms) of the direct app and of each path and variant."""
    model = declared_model()
    pod, caller = model.topology.pod(SERVER), model.topology.pod(CLIENT)
    upstream = _port()
    taskset = ["taskset", "-c", "1"] if pin else []
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = MeshCA.create(root / "pki")
        issued = {sa: ca.issue_workload(pod.namespace, sa) for sa in (pod.service_account, caller.service_account)}
        certs = {sa: CertPaths(i.cert_chain_path, i.key_path, i.root_cert_path) for sa, i in issued.items()}
        collector = TraceCollector("127.0.0.1", _port())
        client = ssl.create_default_context(cafile=str(certs[caller.service_account].root))
        client.check_hostname = False  # the sidecar's certificate names a SPIFFE id, no DNS name
        client.load_cert_chain(str(certs[caller.service_account].cert_chain), str(certs[caller.service_account].key))
        header = "".join(f"{h['header']['key']}: {h['header']['value']}\r\n"
                         for h in peer_headers(_node(caller, certs, root / "unused")))
        targets: dict[str, tuple[int, str, ssl.SSLContext | None]] = {"direct": (upstream, "", None)}

        def start(node: ProxyNode, variant: str, state: MeshState) -> None:
            config = translate_proxy(state, node)
            cuts = (before_issue_12,) if variant == "A" else BREAKDOWN.get(variant, ())
            for cut in cuts:
                config = cut(config)
            XdsWriter(node).write(config)
            path = node.xds_dir.parent / "bootstrap.json"
            path.write_text(json.dumps(bootstrap(node)))
            procs.append(subprocess.Popen([*taskset, envoy_binary(), "-c", str(path), "--disable-hot-restart",
                                           "--concurrency", "1", "-l", "error", "--base-id", str(len(procs))],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        try:
            procs.append(subprocess.Popen([*taskset, sys.executable, str(Path(__file__).with_name("_tiny_http.py")),
                                           str(upstream), "900"]))
            procs.append(subprocess.Popen([*taskset, sys.executable, "-m", "harness.platforms.local.otlp_receiver",
                                           "--port", str(collector.port)], stdout=subprocess.DEVNULL))
            for variant in ("A", "B"):
                server = _node(pod, certs, root / variant / "user", app_port=upstream)
                agent = _node(caller, certs, root / variant / "ai-agent", app_port=upstream)
                assert server.inbound_port is not None and agent.outbound_port is not None
                # ai-agent's outbound reaches this variant's user sidecar; user's other pod is not ready
                endpoints = {p.name: Endpoint(pod=p.name, address="127.0.0.1", port=server.inbound_port,
                                              ready=p.name == pod.name)
                             for p in model.topology.pods if p.service_account == pod.service_account}
                state = MeshState(istio=model.istio, topology=model.topology, endpoints=endpoints,
                                  secrets={sa: workload_secret(paths) for sa, paths in certs.items()},
                                  trace_collector=collector)
                start(server, variant, state)
                start(agent, variant, state)
                targets[f"inbound {variant}"] = (server.inbound_port, header if variant == "B" else "", client)
                targets[f"outbound+inbound {variant}"] = (agent.outbound_port, "", None)
            for n, variant in enumerate(BREAKDOWN if breakdown else ()):
                server = _node(pod, certs, root / f"cut{n}" / "user", app_port=upstream)
                start(server, variant, MeshState(istio=model.istio, topology=model.topology, endpoints={},
                                                 secrets={sa: workload_secret(paths) for sa, paths in certs.items()},
                                                 trace_collector=collector))
                targets[f"inbound {variant}"] = (server.inbound_port, header, client)
            deadline = time.monotonic() + 30
            while True:  # the sidecars answer once their xDS files are loaded
                try:
                    for port, headers, tls in targets.values():
                        round_p50(port, 100, headers, path=PATH, tls=tls)
                    break
                except (OSError, RuntimeError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            p50s: dict[str, list[float]] = {name: [] for name in targets}
            order = random.Random(seed)  # the order within a round (always A first would favour one side)
            names = list(targets)
            for _ in range(rounds):
                order.shuffle(names)
                for name in names:
                    port, headers, tls = targets[name]
                    p50s[name].append(round_p50(port, per_round, headers, path=PATH, tls=tls))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)
    return p50s


def _node(pod: Any, certs: dict[str, CertPaths], folder: Path, *, app_port: int = 0) -> ProxyNode:
    """A sidecar for `pod` as the local platform configures one (ports free on 127.0.0.1)."""
    return ProxyNode(name=pod.name, kind="sidecar", namespace=pod.namespace, labels=pod.labels,
                     region=pod.region, service_account=pod.service_account, certs=certs[pod.service_account],
                     xds_dir=folder / "xds", admin_port=_port(), inbound_port=_port(), app_port=app_port,
                     outbound_port=_port(), access_log=True, stats_inclusion=proxy_stats_inclusion("dev"))


if __name__ == "__main__":
    main()
