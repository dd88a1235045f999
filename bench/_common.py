"""Shared helpers of the benchmarks: settings per benchmark, a mesh context, statistics, results files."""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform as pyplatform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import PortInUseError
from harness.platforms.local.launch import PIDS_FILE, envoy_binary
from harness.platforms.local.platform import LocalPlatform
from harness.procfs import cpu_seconds, machine_jiffies, read_registry, start_time_ticks
from harness.platforms.local.settings import LocalSettings

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
STATE_ROOT = BENCH_DIR / ".state"
# A preferred port block per benchmark, all in 30000-39999 (tests use 40000-60000); a mesh needs
# base..base+990. Others may hold a block too, so the first wholly free block from there is used.
PORT_BASES = {"up_time": 31000, "latency_overhead": 32000, "memory": 33000, "push_latency": 34000}
BLOCKS = range(30000, 40000, 1000)
INGRESS_HOST = "ai-agent-service.parallel-ai.svc.cluster.local"
CHAT_BODY = b'{"user_id": "u1", "prompt": "hello"}'
CLK_TCK = os.sysconf("SC_CLK_TCK")


def bench_settings(name: str, **extra: Any) -> LocalSettings:
    """The benchmark's own state dir and port block (base, ingress base+980, Prometheus base+990)."""
    base = free_block(PORT_BASES[name])
    return LocalSettings(state_dir=STATE_ROOT / name, base_port=base, ingress_port=base + 980,
                         prometheus_port=base + 990, **extra)


def free_block(preferred: int) -> int:
    """The first block from `preferred` on (wrapping within 30000-39999) whose mesh ports are all free."""
    order = [b for b in BLOCKS if b >= preferred] + [b for b in BLOCKS if b < preferred]
    for base in order:
        ports = [*range(base, base + 100), base + 900, base + 950, base + 980, base + 990]
        if all(_port_free(port) for port in ports):
            return base
    raise RuntimeError("no free block of ports in 30000-39999")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def running_mesh(settings: LocalSettings) -> Iterator[tuple[LocalPlatform, dict[str, Any]]]:
    """`up`, yield, and always `down` (which stops every process by its recorded PID).

    Someone may take a port between choosing the block and `up`: then the next free block is tried.
    """
    for attempt in range(3):
        platform = LocalPlatform(settings)
        try:
            status = platform.up()
            break
        except PortInUseError:
            platform.down()
            if attempt == 2:
                raise
            base = free_block(settings.base_port + 1000 if settings.base_port < 39000 else 30000)
            settings = LocalSettings(**{**settings.__dict__, "base_port": base, "ingress_port": base + 980,
                                        "prometheus_port": base + 990})
    try:
        yield platform, status
    finally:
        platform.down()


def pod(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in status["pods"] if p["name"] == name)


def mesh_processes(platform: LocalPlatform, status: dict[str, Any]) -> dict[str, int]:
    """Every process of the mesh by supervisor name, plus the daemon (`status` and the PID registry)."""
    pids = {"daemon": int(status["daemon_pid"]), "prometheus": int(status["prometheus"]["pid"]),
            status["gateway"]["name"]: int(status["gateway"]["pid"])}
    for p in status["pods"]:
        pids[f"{p['name']}/app"], pids[f"{p['name']}/sidecar"] = int(p["pid"]), int(p["sidecar_pid"])
    for record in read_registry(platform.state_dir / PIDS_FILE):  # the external API is not in status
        pids.setdefault(record.name, record.pid)
    return pids


def kind_of(name: str) -> str:
    if name == "daemon":
        return "daemon (Python)"
    if name == "prometheus":
        return "prometheus"
    if name.startswith("istio-ingressgateway"):
        return "ingress gateway (Envoy)"
    if name.endswith("/sidecar"):
        return "sidecar (Envoy)"
    if name.startswith("external-ai-api"):
        return "external AI API (uvicorn)"
    if name.endswith("/app"):
        return "app (uvicorn)"
    return "other"




def boot_time_wall() -> float:
    """Wall-clock time of boot to 10 ms (/proc/uptime), to turn /proc start ticks into timestamps."""
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - uptime


def process_start_wall(pid: int, boot: float) -> float | None:
    ticks = start_time_ticks(pid)
    return None if ticks is None else boot + ticks / CLK_TCK


# -- statistics --------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; `ordered` must be sorted and non-empty."""
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize(samples: Sequence[float], digits: int = 3) -> dict[str, float | int]:
    """n, min, p50, p90, p99, max and mean of `samples` (empty input gives n=0 only)."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    out: dict[str, float | int] = {"n": len(ordered)}
    for key, value in (("min", ordered[0]), ("p50", percentile(ordered, 50)), ("p90", percentile(ordered, 90)),
                       ("p99", percentile(ordered, 99)), ("max", ordered[-1]),
                       ("mean", sum(ordered) / len(ordered))):
        out[key] = round(value, digits)
    return out


# -- environment and output --------------------------------------------------------------------


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (out.stdout or out.stderr).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), "unknown")


def machine_info() -> dict[str, Any]:
    envoy = _first_line([envoy_binary(), "--version"])
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "kernel": pyplatform.release(),
        "python": sys.version.split()[0],
        "envoy": envoy.split("version:")[-1].strip(),
        "prometheus": _first_line(["prometheus", "--version"]),
        "harness_commit": _first_line(["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"]),
        "harness_uncommitted_files": len(_first_lines(["git", "-C", str(BENCH_DIR.parent), "status", "--porcelain",
                                                       "--untracked-files=no", "harness"])),
    }


def _first_lines(argv: list[str]) -> list[str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line for line in out.stdout.splitlines() if line.strip()]


def write_results(name: str, figures: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine_info(), **figures}, indent=2) + "\n")
    return path


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


@dataclass(frozen=True)
class Verdict:
    figure: str
    value: str
    target: str
    met: bool

    def row(self) -> list[str]:
        return [self.figure, self.value, self.target, "yes" if self.met else "NO"]


def print_verdicts(verdicts: Sequence[Verdict]) -> None:
    print()
    print_table(["figure", "measured", "target", "met?"], [v.row() for v in verdicts])


# -- load generator ----------------------------------------------------------------------------


def run_loadgen(spec: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run bench/_loadgen.py in its own process; on timeout it is killed by its PID."""
    proc = subprocess.Popen([sys.executable, str(BENCH_DIR / "_loadgen.py"), json.dumps(spec)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"load generator (pid {proc.pid}) exceeded {timeout_s} s and was killed")
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {err[-2000:]}")
    return json.loads(out)


def target(name: str, port: int, path: str, *, method: str = "GET", host: str | None = None,
           body: bytes | None = None, tls: dict[str, str] | None = None, uds: str | None = None) -> dict[str, Any]:
    """One load generator target on 127.0.0.1, or on the Unix socket `uds` (an app of the local mesh)."""
    headers = {"host": host} if host else {}
    return {"name": name, "port": port, "method": method, "path": path, "headers": headers,
            "body": body.decode() if body else None, "tls": tls, "uds": uds}


def mesh_client_tls(platform: LocalPlatform, service_account: str) -> dict[str, str]:
    """A mesh identity's certificate files (as its sidecar uses them), for an mTLS client."""
    pki = platform.state_dir / "pki" / "mesh"
    folder = pki / "workloads" / "parallel-ai" / service_account
    return {"ca": str(pki / "root-cert.pem"), "cert": str(folder / "cert-chain.pem"), "key": str(folder / "key.pem")}


# -- other work on the machine -----------------------------------------------------------------


def _cpu_ticks() -> dict[int, tuple[int, int, int]]:
    """pid -> (start ticks, utime+stime ticks, ppid) for every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        out[int(entry.name)] = (int(fields[19]), int(fields[11]) + int(fields[12]), int(fields[1]))
    return out


def _busy_fraction(seconds: float) -> float:
    busy0, total0 = machine_jiffies()
    time.sleep(seconds)
    busy1, total1 = machine_jiffies()
    return (busy1 - busy0) / max(1.0, total1 - total0)


_BENCH_LOCK: list[int] = []  # the lock file's descriptor, held until this process exits


def _hold_bench_lock(max_wait_s: float) -> float:
    """One benchmark at a time on this machine: an flock held until exit; returns seconds waited."""
    if _BENCH_LOCK:
        return 0.0
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE_ROOT / "bench.lock", os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() - started > max_wait_s:
                os.close(fd)
                print(f"another benchmark still holds {STATE_ROOT / 'bench.lock'}; running anyway")
                return round(time.monotonic() - started, 1)
            time.sleep(1.0)
    _BENCH_LOCK.append(fd)
    return round(time.monotonic() - started, 1)


def wait_for_quiet(max_wait_s: float = 900.0, busy_below: float = 0.25) -> dict[str, Any]:
    """Wait (bounded) for any other benchmark to finish, then until the machine is mostly idle for 5 s.

    Other engineers' tests share these 2 cores; the wait is bounded, and what was seen is returned
    so that results can say how quiet the machine was.
    """
    waited_for_lock = _hold_bench_lock(max_wait_s)
    started = time.monotonic()
    busy = _busy_fraction(5.0)
    while busy >= busy_below and time.monotonic() - started < max_wait_s:
        time.sleep(2.0)
        busy = _busy_fraction(5.0)
    waited = round(time.monotonic() - started, 1)
    print(f"machine busy {busy:.0%} after waiting {waited_for_lock} s for other benchmarks and {waited} s for "
          f"quiet (threshold {busy_below:.0%})")
    return {"busy_fraction_before": round(busy, 3), "waited_s": waited,
            "waited_for_other_benchmarks_s": waited_for_lock}


class ForeignLoad:
    """CPU time used during a measurement by processes that are not ours (not descendants of this one)."""

    def __init__(self) -> None:
        self.before = _cpu_ticks()
        self.started = time.monotonic()

    def result(self) -> dict[str, Any]:
        now, elapsed, me = _cpu_ticks(), time.monotonic() - self.started, os.getpid()
        foreign = 0
        for pid, (start, cpu, _) in now.items():
            seen, ancestor = 0, pid
            while ancestor not in (0, 1, me) and ancestor in now and seen < 64:
                ancestor, seen = now[ancestor][2], seen + 1
            if ancestor == me:
                continue
            old = self.before.get(pid)
            foreign += cpu - (old[1] if old and old[0] == start else 0)
        seconds = foreign / CLK_TCK
        return {"foreign_cpu_s": round(seconds, 2), "elapsed_s": round(elapsed, 1),
                "foreign_share_of_machine": round(seconds / max(elapsed * (os.cpu_count() or 1), 1e-9), 3)}
