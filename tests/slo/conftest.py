"""A real Prometheus for the SLO tests, holding Istio series written at known past timestamps.

The data (all times relative to T0, one sample per series per second from -10 to 400):
  ai-agent-service, reporter=source, two gateway pods (6 and 4 requests/s)
    baseline (0, 100]   10/s, all 200
    chaos   (100, 200]  1000 requests, 3 of them 503 (at 130, 150 and 170)
    recovery(200, 300]  10/s, all 200
    silence (300, 400]  no requests (counters flat)
  latency of those requests, per second: baseline and recovery 5 in (5, 10] ms and 5 in (10, 25];
    chaos 5 in (5, 10], 4 in (10, 25] and 1 in (250, 500]
  ai-agent-service, reporter=destination: 10/s, all 200
  user-service, reporter=source: 10/s; in chaos 8 x 200 and 2 x 503 per second
  analytics-service, reporter=source: 5/s, all 200, and no 5xx series at all
  review-service, reporter=source: 10/s, all 200, in (5, 10] ms; and a 503 series (flags UO) first
    scraped at 150 already at 20 (a burst, all in (250, 500] ms), flat after: born in the chaos phase,
    as a proxy creates a series at its first request with new labels
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.net import free_port

FIRST, LAST = -10, 400
ERROR_SECONDS = (130, 150, 170)
BUCKETS = ("0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "+Inf")


@dataclass(frozen=True)
class LivePrometheus:
    url: str
    t0: float  # epoch seconds of the data's T0
    process: subprocess.Popen[bytes]

    def at(self, seconds: float) -> float:
        return self.t0 + seconds

    def stop(self) -> None:
        stop(self.process)


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        pytest.fail(f"{name} not found: `make setup` installs prometheus (with promtool) via apt-get")
    return found


def _counter(labels: str, per_second: Callable[[int], int], t0: int) -> list[str]:
    lines, total = [], 0
    for second in range(FIRST, LAST + 1):
        total += per_second(second) if second > FIRST else 0
        lines.append(f"istio_requests_total{{{labels}}} {total} {t0 + second}")
    return lines


def _born(labels: str, at: int, value: int, t0: int, metric: str = "istio_requests_total") -> list[str]:
    """A series first scraped at `at`, already at `value`, flat after."""
    return [f"{metric}{{{labels}}} {value} {t0 + second}" for second in range(at, LAST + 1)]


def _phase(second: int) -> str:
    if 0 < second <= 100:
        return "baseline"
    if 100 < second <= 200:
        return "chaos"
    if 200 < second <= 300:
        return "recovery"
    return "silence" if second > 300 else "before"


def _openmetrics(t0: int) -> str:
    def labels(service: str, reporter: str, code: str, pod: str = "p0", app: str = "istio-ingressgateway") -> str:
        return (
            f'reporter="{reporter}",source_app="{app}",destination_service_name="{service}",'
            f'destination_service="{service}.parallel-ai.svc.cluster.local",destination_version="v1",'
            f'response_code="{code}",pod="{pod}",instance="127.0.0.1:{15000 + len(pod)}"'
        )

    def busy(second: int) -> bool:
        return _phase(second) in ("before", "baseline", "chaos", "recovery")

    def gateway_ok(share: int) -> Callable[[int], int]:
        return lambda s: (share - (s in ERROR_SECONDS and share == 6)) if busy(s) else 0

    lines = ["# TYPE istio_requests_total counter"]
    lines += _counter(labels("ai-agent-service", "source", "200", "gw-a"), gateway_ok(6), t0)
    lines += _counter(labels("ai-agent-service", "source", "200", "gw-b"), gateway_ok(4), t0)
    lines += _counter(labels("ai-agent-service", "source", "503", "gw-a"), lambda s: int(s in ERROR_SECONDS), t0)
    lines += _counter(labels("ai-agent-service", "destination", "200", "ai", "unknown"), lambda s: 10 * busy(s), t0)
    chaos = lambda s: _phase(s) == "chaos"  # noqa: E731
    lines += _counter(labels("user-service", "source", "200", "ai", "ai-agent"), lambda s: (8 if chaos(s) else 10) * busy(s), t0)
    lines += _counter(labels("user-service", "source", "503", "ai", "ai-agent"), lambda s: 2 * chaos(s), t0)
    lines += _counter(labels("analytics-service", "source", "200", "ai", "ai-agent"), lambda s: 5 * busy(s), t0)
    lines += _counter(labels("review-service", "source", "200", "ai", "ai-agent"), lambda s: 10 * busy(s), t0)
    lines += _born(labels("review-service", "source", "503", "ai", "ai-agent") + ',response_flags="UO"', 150, 20, t0)
    lines.append("# TYPE istio_request_duration_milliseconds histogram")
    for le in BUCKETS:
        def per_second(second: int, le: float = float(le)) -> int:
            if not busy(second):
                return 0
            slow = _phase(second) == "chaos"
            return (5 if le >= 10 else 0) + ((4 if slow else 5) if le >= 25 else 0) + (1 if slow and le >= 500 else 0)

        series = labels("ai-agent-service", "source", "x", "gw-a").replace(',response_code="x"', f',le="{le}"')
        lines += [line.replace("istio_requests_total", "istio_request_duration_milliseconds_bucket")
                  for line in _counter(series, per_second, t0)]  # fmt: skip
        review = labels("review-service", "source", "x", "ai", "ai-agent").replace(',response_code="x"', f',le="{le}"')
        lines += [line.replace("istio_requests_total", "istio_request_duration_milliseconds_bucket")
                  for line in _counter(review, lambda s, le=float(le): 10 * busy(s) * (le >= 10), t0)]
        burst = review.replace(f',le="{le}"', f',response_code="503",response_flags="UO",le="{le}"')
        lines += _born(burst, 150, 20 * (float(le) >= 500), t0, "istio_request_duration_milliseconds_bucket")
    return "\n".join([*lines, "# EOF", ""])


def start_prometheus(workdir: Path, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start Prometheus on a free loopback port over `data_dir`; wait (bounded) until it is ready."""
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n")
    port = free_port()
    argv = [
        _binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data_dir}",
        "--storage.tsdb.retention.time=3650d", f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    with open(workdir / "prometheus.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    for _ in range(400):
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited {process.returncode}:\n{(workdir / 'prometheus.log').read_text()}")
        try:
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    stop(process)
    raise AssertionError(f"prometheus not ready at {url}:\n{(workdir / 'prometheus.log').read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePrometheus]:
    """Prometheus over the data above, T0 about an hour ago (inside the retention, outside the head)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    t0 = (int(time.time()) - 3600) // 60 * 60
    source = workdir / "data.om"
    source.write_text(_openmetrics(t0))
    created = subprocess.run(
        [_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(source), str(workdir / "data")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr + created.stdout
    process, url = start_prometheus(workdir, workdir / "data")
    try:
        yield LivePrometheus(url=url, t0=float(t0), process=process)
    finally:
        stop(process)


@pytest.fixture
def stoppable_prometheus(tmp_path: Path) -> Iterator[LivePrometheus]:
    """A Prometheus of its own (no data), for a test to stop."""
    process, url = start_prometheus(tmp_path, tmp_path / "data")
    try:
        yield LivePrometheus(url=url, t0=time.time(), process=process)
    finally:
        stop(process)
