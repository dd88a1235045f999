"""A/B cost of Istio's full label set per Envoy pass: the stats access logger before and after issue 12.

Two Envoys side by side, each in front of the same trivial upstream (`_tiny_http.py`): A with the
stats logger the sidecars had before (5 tags, a counter and a duration histogram), B with what
`harness/mesh/translate/telemetry.py` gives an inbound sidecar now (a counter and three histograms
with Istio's labels; the peer metadata checked by the inbound routes, as peer_checked_routes writes
them, which carry it to the tags; the route removing its header) and the seed's tracing at its 1 % random sampling with its custom tags (OpenTelemetry tracer,
spans to the harness's own OTLP receiver run standalone), the request carrying the x-mesh-peer header
a caller's sidecar adds. Each round times A and B (sequential keep-alive requests) in an order drawn
per round, so that a busy machine slows both alike and neither gains from going first; the figure is
the median over rounds of B's p50 minus A's.

This is the telemetry alone, on a bare plaintext Envoy: a component figure. It leaves out what the
telemetry costs on a real sidecar (the certificate's URI SAN written into a header before routing,
the certificate's principal in every tag), so issue 12's limit is judged by bench/telemetry_pass.py, which times the
whole inbound sidecar pass with and without the telemetry in one run. The same rounds also time the
trivial upstream directly and behind a bare Envoy, so the increment is also given against the floor
measured in this run.

Run: .venv/bin/python bench/telemetry_tags.py [--rounds 10] [--per-round 1000] [--no-tracing]
Writes bench/results/telemetry_tags.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.mesh.loader import declared_model  # noqa: E402
from harness.mesh.translate.model import CertPaths, MeshState, ProxyNode, TraceCollector  # noqa: E402
from harness.mesh.translate.tracing import collector_cluster, hcm_tracing, proxy_tracing  # noqa: E402
from harness.mesh.translate.telemetry import (  # noqa: E402
    PEER_IDENTITY_HEADER, STATS_LOGGER, peer_checked_routes, peer_claims, peer_header_removal, peer_headers,
    peer_identity_mutation, request_stats_for,
)
from harness.net import free_port  # noqa: E402
from harness.platforms.local.launch import envoy_binary  # noqa: E402

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def old_logger(reporter: str = "destination") -> dict:
    """The stats logger of a sidecar's inbound (or outbound: reporter "source") listener before issue 12
    (harness 005307e, just before issue 12: translate/telemetry.py `_tags`)."""
    tags = [{"name": "reporter", "value_format": reporter},
            {"name": "response_code", "value_format": "%RESPONSE_CODE%"}]
    if reporter == "source":
        side = [{"name": "upstream_cluster", "value_format": "%UPSTREAM_CLUSTER%"},
                {"name": "route_host", "value_format": "%METADATA(ROUTE:istio:destination_service)%"}]
        counter_tags = tags + [{"name": "response_flags", "value_format": "%RESPONSE_FLAGS%"}] + side
        hist_tags = tags + side
    else:
        counter_tags = tags + [{"name": "response_flags", "value_format": "%RESPONSE_FLAGS%"},
                               {"name": "source_principal", "value_format": "%DOWNSTREAM_PEER_URI_SAN%"},
                               {"name": "response_code_details", "value_format": "%RESPONSE_CODE_DETAILS%"}]
        hist_tags = tags + [{"name": "source_principal", "value_format": "%DOWNSTREAM_PEER_URI_SAN%"}]
    return {"name": "envoy.access_loggers.stats", "typed_config": {
        "@type": STATS_LOGGER, "stats_scope": {"prefix": "istio"},
        "counters": [{"stat": {"name": "requests_total", "tags": counter_tags}, "value_fixed": 1}],
        "histograms": [{"stat": {"name": "request_duration_milliseconds", "tags": hist_tags},
                        "unit": "Milliseconds", "value_format": "%DURATION%"}]}}


def bootstrap(admin: int, listen: int, upstream: int, logger: dict | None, peer: tuple[dict, dict] | None,
              tracing: tuple[dict, dict] | None = None) -> dict:
    """`peer`: B's early header mutation and peer claims (identity -> metadata values), or None."""
    routes = [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "app"}}]
    route_config = {"virtual_hosts": [{"name": "v", "domains": ["*"],
                                       "routes": routes if peer is None else peer_checked_routes(routes, peer[1])}]}
    hcm = {"@type": HCM, "stat_prefix": "inbound_8080", "http_filters": [ROUTER], "route_config": route_config}
    if peer is not None:  # B: the peer headers never reach the app
        peer_header_removal(route_config)
        hcm["early_header_mutation_extensions"] = [peer[0]]
    if logger is not None:
        hcm["access_log"] = [logger]
    if tracing is not None:
        hcm["tracing"] = tracing[0]
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "stats_flush_interval": "1s",
        "static_resources": {
            "listeners": [{"name": "virtualInbound",
                           "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                           "typed_config": hcm}]}]}],
            "clusters": [{"name": "app", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
                "cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": upstream}}}}]}]}}],
        },
    }
    if tracing is not None:
        config["static_resources"]["clusters"].append(tracing[1])
    return config


def round_p50(port: int, requests: int, headers: str, *, path: str = "/", tls: ssl.SSLContext | None = None) -> float:
    """p50 (ms) of `requests` sequential keep-alive GETs on one connection (TLS when `tls` is given)."""
    request = f"GET {path} HTTP/1.1\r\nhost: user-service\r\n{headers}\r\n".encode()
    samples = []
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with (tls.wrap_socket(raw, server_hostname="user-service") if tls else raw) as sock:
        for _ in range(requests):
            started = time.perf_counter()
            sock.sendall(request)
            data = b""
            while not data.endswith(b"ok"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed")
                data += chunk
                if not data.startswith(b"HTTP/1.1 200 "[:len(data)]):
                    raise RuntimeError(f"not a 200: {data[:200]!r}")
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=1000)
    parser.add_argument("--no-tracing", action="store_true", help="B without the seed's tracing")
    args = parser.parse_args()
    model = declared_model()
    collector = TraceCollector("127.0.0.1", free_port())
    state = MeshState(istio=model.istio, topology=model.topology, endpoints={}, trace_collector=collector)
    pod = model.topology.pod("user-v1-us-east-0")
    caller = model.topology.pod("ai-agent-v1-us-east-0")
    nowhere = Path("/nonexistent")

    def node(p):
        return ProxyNode(name=p.name, kind="sidecar", namespace=p.namespace, labels=p.labels, region="us-east",
                         service_account=p.service_account, certs=CertPaths(nowhere, nowhere, nowhere),
                         xds_dir=nowhere, admin_port=0)

    new_logger = request_stats_for(state, node(pod), "destination", mtls=True, telemetry=model.istio.telemetry)
    # Plaintext here (no certificates): the early header mutation writes the caller's SPIFFE id as text
    # where over mTLS it writes the certificate's URI SAN, so the routes check the same two headers.
    mutation = peer_identity_mutation(True)
    (entry,) = [m for m in mutation["typed_config"]["mutations"] if m["append"]["header"]["key"] == PEER_IDENTITY_HEADER]
    entry["append"]["header"]["value"] = caller.spiffe_id
    new_peer = (mutation, peer_claims(state))
    plan = None if args.no_tracing else proxy_tracing(state, node(pod))
    tracing = None if plan is None else (hcm_tracing(plan, node(pod), collector), collector_cluster(collector))
    headers = "".join(f"{h['header']['key']}: {h['header']['value']}\r\n" for h in peer_headers(node(caller)))
    upstream = free_port()
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            procs.append(subprocess.Popen([sys.executable, str(Path(__file__).with_name("_tiny_http.py")),
                                           str(upstream), "600"]))
            if tracing is not None:
                procs.append(subprocess.Popen([sys.executable, "-m", "harness.platforms.local.otlp_receiver",
                                               "--port", str(collector.port)], stdout=subprocess.DEVNULL))
            ports = {"direct": upstream}
            for name, logger, peer, traces in (("A", old_logger(), None, None),
                                               ("B", new_logger, new_peer, tracing),
                                               ("bare", None, None, None)):
                listen = free_port()
                config = Path(tmp) / f"{name}.json"
                config.write_text(json.dumps(bootstrap(free_port(), listen, upstream, logger, peer, traces)))
                procs.append(subprocess.Popen([envoy_binary(), "-c", str(config), "--disable-hot-restart",
                                               "--concurrency", "1", "-l", "error", "--base-id", str(len(procs))],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                ports[name] = listen
            time.sleep(2.0)
            for name, port in ports.items():  # warm-up
                round_p50(port, 200, headers if name == "B" else "")
            p50s: dict[str, list[float]] = {name: [] for name in ports}
            order = random.Random(12)  # the order within a round (always A first would favour one side)
            names = list(ports)
            for _ in range(args.rounds):
                order.shuffle(names)
                for name in names:
                    p50s[name].append(round_p50(ports[name], args.per_round, headers if name == "B" else ""))
            a, b = p50s["A"], p50s["B"]
            diffs = [y - x for x, y in zip(a, b)]
            increment = statistics.median(diffs)
            print(f"A (before) p50 per round, ms: {[round(x, 3) for x in a]}")
            print(f"B (Istio's labels) p50 per round, ms: {[round(x, 3) for x in b]}")
            share = increment / statistics.median(a)
            print(f"B - A, median of rounds: {increment * 1000:.1f} us ({share:+.1%} of A's p50 per request)")
            # The floor, in this run: a bare Envoy pass before the same upstream.
            floor = statistics.median(y - x for x, y in zip(p50s["direct"], p50s["bare"]))
            print(f"floor in this run (bare Envoy pass p50): {floor * 1000:.1f} us; B - A is "
                  f"{increment / floor:.0%} of it (the whole sidecar pass: bench/telemetry_pass.py)")
            results = Path(__file__).resolve().parent / "results" / "telemetry_tags.json"
            results.write_text(json.dumps({
                "benchmark": "telemetry_tags", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "loadavg": os.getloadavg(), "tracing_percent": None if plan is None else plan.sampling_percent,
                "rounds": args.rounds, "per_round": args.per_round,
                "p50_ms": {name: [round(x, 4) for x in values] for name, values in p50s.items()},
                "b_minus_a_us_median": round(increment * 1000, 1), "b_minus_a_share_of_a": round(share, 4),
                "floor_us": round(floor * 1000, 1), "b_minus_a_share_of_floor": round(increment / floor, 4),
            }, indent=1) + "\n")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
