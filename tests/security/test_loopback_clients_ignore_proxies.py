"""Every HTTP client the harness points at 127.0.0.1 ignores HTTP_PROXY/HTTPS_PROXY/ALL_PROXY: a proxy
set in the user's shell must not receive PromQL, knob changes or health checks (and make runs inconclusive)."""

from __future__ import annotations

import ast
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from harness.net import free_port
from harness.slo import PrometheusClient

ROOT = Path(__file__).parents[2]
HTTPX_CALLS = {"Client", "AsyncClient", "get", "post", "put", "delete", "request", "stream"}


def _dead_port() -> int:
    return free_port()  # nothing listens there


@pytest.fixture
def dead_proxy(monkeypatch: pytest.MonkeyPatch) -> str:
    """Proxy variables (both cases) naming an address where nothing listens; no NO_PROXY escape."""
    proxy = f"http://127.0.0.1:{_dead_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
        monkeypatch.setenv(name.lower(), proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return proxy


class _FakePrometheus(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"status": "success", "data": {"resultType": "vector",
                                                         "result": [{"metric": {}, "value": [0, "42"]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_promql_reaches_a_loopback_prometheus_with_a_dead_proxy_set(dead_proxy: str, prometheus: str) -> None:
    with PrometheusClient(prometheus) as client:
        assert client.query("up", 0.0) == 42.0


def _calls_without_trust_env(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        if not (isinstance(owner, ast.Name) and owner.id == "httpx" and node.func.attr in HTTPX_CALLS):
            continue
        trust = [k for k in node.keywords if k.arg == "trust_env"]
        if not (trust and isinstance(trust[0].value, ast.Constant) and trust[0].value.value is False):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} httpx.{node.func.attr}")
    return found


def test_every_httpx_client_in_the_harness_and_locustfiles_sets_trust_env_false() -> None:
    """Every client the harness builds talks to 127.0.0.0/8 (the mesh, Prometheus, Envoy admin, the apps)."""
    files = [*sorted((ROOT / "harness").rglob("*.py")), *sorted((ROOT / "locustfiles").rglob("*.py"))]
    offenders = [call for path in files for call in _calls_without_trust_env(path)]
    assert offenders == []
