"""Issue 12's per-pass limit, in one run: the inbound sidecar pass with and without Istio's telemetry.

bench/telemetry_tags.py times the telemetry alone, on a bare plaintext Envoy; its share of a pass then
depends on a pass measured at another time, and this VM's speed changes from hour to hour (a bare Envoy
pass cost 0.716 ms on 2026-11-26, 0.085 ms and 0.036 ms on 2026-12-05), and not alike for the
telemetry's user-space work and a pass's system calls. Here both sides of the ratio come from the same
rounds. Two sidecars for user-v1, built as the local platform builds them (translate_proxy, file-based
xDS, the mesh CA's certificates, mTLS, the seed's AuthorizationPolicy, the dev profile's access log
and stats inclusion), in front of the same trivial upstream (`_tiny_http.py`):

  B  the sidecar as it is: Istio's labels on four metrics, the peer metadata (its RBAC check,
     set_filter_state, the header removed before the app) and the seed's tracing at 1 %;
  A  the same sidecar with the telemetry it had before issue 12: the stats logger of harness 7b1bb84
     (telemetry_tags.old_logger), no peer metadata filters, no tracing.

The client (ai-agent's mesh certificate, one keep-alive TLS connection, sequential GETs of
/api/v1/users/u1, B's requests carrying the x-mesh-peer header ai-agent's sidecar adds) times the
upstream directly, A and B in an order drawn per round. A pass is a side's p50 minus the direct p50;
the figure is B's pass over A's, the median over rounds. Each repeat starts fresh processes: on this
2-core VM one process keeps its own luck (where it runs, what it shares) for its life, a few us either
way, which more rounds with the same processes do not average out.

Run: .venv/bin/python bench/telemetry_pass.py [--repeats 4] [--rounds 12] [--per-round 800] [--pin]
Writes bench/results/telemetry_pass.json.
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
from harness.mesh.translate.model import CertPaths, MeshState, ProxyConfig, ProxyNode, TraceCollector  # noqa: E402
from harness.mesh.translate.proxy import translate_proxy  # noqa: E402
from harness.mesh.translate.secrets import workload_secret  # noqa: E402
from harness.mesh.translate.telemetry import (  # noqa: E402
    PEER_FIELDS_FILTER, PEER_HEADER, PEER_RBAC_FILTER, PEER_STATE_FILTER, STATS_LOGGER, peer_headers,
)
from harness.mesh.translate.xds_files import XdsWriter  # noqa: E402
from harness.net import free_port  # noqa: E402
from harness.pki import MeshCA  # noqa: E402
from harness.platforms.local.launch import envoy_binary  # noqa: E402

PATH = "/api/v1/users/u1"
SERVER, CLIENT = "user-v1-us-east-0", "ai-agent-v1-us-east-0"


def before_issue_12(config: ProxyConfig) -> ProxyConfig:
    """The sidecar's telemetry as it was: the old stats logger, no peer metadata filters, no tracing."""
    for listener in config.listeners:
        for chain in listener.get("filter_chains", []):
            for network_filter in chain.get("filters", []):
                hcm = network_filter["typed_config"]
                if "http_filters" not in hcm:
                    continue
                hcm.pop("tracing", None)
                hcm["http_filters"] = [f for f in hcm["http_filters"]
                                       if f["name"] not in (PEER_RBAC_FILTER, PEER_STATE_FILTER, PEER_FIELDS_FILTER)]
                if listener["name"] == "virtualInbound":
                    hcm["access_log"] = [old_logger() if entry["typed_config"]["@type"] == STATS_LOGGER else entry
                                         for entry in hcm["access_log"]]
    for route_config in config.routes.values():
        removed = [h for h in route_config.get("request_headers_to_remove", []) if h != PEER_HEADER]
        route_config.pop("request_headers_to_remove", None)
        if removed:
            route_config["request_headers_to_remove"] = removed
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=4, help="fresh Envoys each time (a process's own luck)")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=800)
    parser.add_argument("--pin", action="store_true",
                        help="client on CPU 0, Envoys and upstream on CPU 1: steadier, a slower pass")
    args = parser.parse_args()
    if args.pin:
        os.sched_setaffinity(0, {0})
    rounds: dict[str, list[float]] = {"direct": [], "A": [], "B": []}
    for repeat in range(args.repeats):
        for name, values in measure(args.rounds, args.per_round, args.pin, seed=repeat).items():
            rounds[name] += values
    passes = {side: [x - d for x, d in zip(rounds[side], rounds["direct"])] for side in ("A", "B")}
    increments = [b - a for a, b in zip(passes["A"], passes["B"])]
    shares = [b / a - 1 for a, b in zip(passes["A"], passes["B"])]
    result: dict[str, Any] = {
        "benchmark": "telemetry_pass", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "loadavg": os.getloadavg(),
        "repeats": args.repeats, "rounds": args.rounds, "per_round": args.per_round, "pinned": args.pin,
        "p50_ms": {name: [round(x, 4) for x in values] for name, values in rounds.items()},
        "pass_before_us": round(statistics.median(passes["A"]) * 1000, 1),
        "pass_now_us": round(statistics.median(passes["B"]) * 1000, 1),
        "increment_us": round(statistics.median(increments) * 1000, 1),
        "increment_share": round(statistics.median(shares), 4), "target_share": 0.05}
    print(f"inbound sidecar pass p50 (minus the direct p50), {args.repeats} x {args.rounds} rounds"
          f"{', pinned' if args.pin else ''}: before issue 12's telemetry (A) {result['pass_before_us']} us, "
          f"now (B) {result['pass_now_us']} us; B - A {result['increment_us']} us per pass")
    print(f"B over A, median of rounds: {result['increment_share']:+.1%} (target: within 5 %)")
    results = Path(__file__).resolve().parent / "results" / "telemetry_pass.json"
    results.write_text(json.dumps(result, indent=1) + "\n")


def measure(rounds: int, per_round: int, pin: bool, seed: int) -> dict[str, list[float]]:
    """One set of fresh processes: the rounds' p50s (ms) of the direct upstream, A and B."""
    model = declared_model()
    pod, caller = model.topology.pod(SERVER), model.topology.pod(CLIENT)
    upstream = free_port()
    taskset = ["taskset", "-c", "1"] if pin else []
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = MeshCA.create(root / "pki")
        issued = {sa: ca.issue_workload(pod.namespace, sa) for sa in (pod.service_account, caller.service_account)}
        certs = {sa: CertPaths(i.cert_chain_path, i.key_path, i.root_cert_path) for sa, i in issued.items()}
        collector = TraceCollector("127.0.0.1", free_port())
        state = MeshState(istio=model.istio, topology=model.topology, endpoints={},
                          secrets={sa: workload_secret(paths) for sa, paths in certs.items()},
                          trace_collector=collector)
        client = ssl.create_default_context(cafile=str(certs[caller.service_account].root))
        client.check_hostname = False  # the sidecar's certificate names a SPIFFE id, no DNS name
        client.load_cert_chain(str(certs[caller.service_account].cert_chain), str(certs[caller.service_account].key))
        header = "".join(f"{h['header']['key']}: {h['header']['value']}\r\n"
                         for h in peer_headers(_caller_node(model, certs)))
        targets: dict[str, tuple[int, str, ssl.SSLContext | None]] = {"direct": (upstream, "", None)}
        try:
            procs.append(subprocess.Popen([*taskset, sys.executable, str(Path(__file__).with_name("_tiny_http.py")),
                                           str(upstream), "900"]))
            procs.append(subprocess.Popen([*taskset, sys.executable, "-m", "harness.platforms.local.otlp_receiver",
                                           "--port", str(collector.port)], stdout=subprocess.DEVNULL))
            for variant in ("A", "B"):
                proxy = ProxyNode(name=pod.name, kind="sidecar", namespace=pod.namespace, labels=pod.labels,
                                  region=pod.region, service_account=pod.service_account,
                                  certs=certs[pod.service_account], xds_dir=root / variant / "xds",
                                  admin_port=free_port(), inbound_port=free_port(), app_port=upstream,
                                  outbound_port=free_port(), access_log=True,
                                  stats_inclusion=proxy_stats_inclusion("dev"))
                config = translate_proxy(state, proxy)
                XdsWriter(proxy).write(before_issue_12(config) if variant == "A" else config)
                path = root / variant / "bootstrap.json"
                path.write_text(json.dumps(bootstrap(proxy)))
                procs.append(subprocess.Popen([*taskset, envoy_binary(), "-c", str(path), "--disable-hot-restart",
                                               "--concurrency", "1", "-l", "error", "--base-id", str(len(procs))],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                assert proxy.inbound_port is not None
                targets[variant] = (proxy.inbound_port, header if variant == "B" else "", client)
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


def _caller_node(model: Any, certs: dict[str, CertPaths]) -> ProxyNode:
    caller = model.topology.pod(CLIENT)
    return ProxyNode(name=caller.name, kind="sidecar", namespace=caller.namespace, labels=caller.labels,
                     region=caller.region, service_account=caller.service_account,
                     certs=certs[caller.service_account], xds_dir=Path("/nonexistent"), admin_port=0)


if __name__ == "__main__":
    main()
