"""Load driven by harness.load.LoadRun versus raw `locust --headless`: requests per second, one run.

    .venv/bin/python bench/load_overhead.py [--users 10] [--duration 15] [--rounds 2] [--quick]

Both variants run locustfiles/ai_agent.py with think time 0 and the same users against the same
trivial local target (this file with --serve, in its own process, on 127.0.0.1), in interleaved
rounds so that drift on the shared machine hits both alike. Raw is plain Locust (no CSV, no
recorder); LoadRun adds the CSV stats, the per-request samples and the live feed. The figure is
requests per second over the run time (Locust's own request count / -t); the target is
LoadRun >= 0.95 x raw. CPU per request of the Locust process (start-up included) is reported beside
it, being steadier on a shared machine. Writes bench/results/load_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ForeignLoad, print_table, wait_for_quiet, write_results

from harness.load import LoadRun, LoadSpec

ROOT = Path(__file__).resolve().parents[1]
AI_AGENT = ROOT / "locustfiles" / "ai_agent.py"
TARGET_RATIO = 0.95
SERVER_MAX_LIFETIME_S = 1800  # the target stops itself even if this script dies
MARGIN_S = 60  # beyond the run time, before a Locust run counts as hung
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n"
            b'{"service": "bench-target"}')


# -- the target: a trivial keep-alive HTTP/1.1 server, fast enough not to be the bottleneck --------


class _Chat(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(RESPONSE)


def serve() -> None:
    """Print the port, answer every request 200 until SIGTERM or SERVER_MAX_LIFETIME_S."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Chat, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SERVER_MAX_LIFETIME_S)
        server.close()

    asyncio.run(main())


def start_target() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# -- the two variants ---------------------------------------------------------------------------


def children_cpu_s() -> float:
    """CPU seconds of every reaped child so far (the Locust processes, once they have exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_raw(url: str, users: int, duration_s: int, work: Path) -> dict[str, Any]:
    """Plain `locust --headless` on the same file; requests from its --json-file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "HARNESS_"))}
    env["HARNESS_THINK_TIME"] = "0"
    argv = [sys.executable, "-m", "locust", "-f", str(AI_AGENT), "--headless", "--only-summary",
            "-u", str(users), "-r", str(users), "-t", f"{duration_s}s", "--host", url,
            "--json-file", str(work / "raw")]
    started, cpu = time.monotonic(), children_cpu_s()
    with open(work / "raw.log", "wb") as log:
        # Its own session, as LoadRun starts Locust (and as a terminal would): with the kernel's
        # autogroup scheduling a session is a CPU-share group, so both variants compete alike.
        process = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=duration_s + MARGIN_S)
        finally:
            stop_process(process)
    wall, cpu = time.monotonic() - started, children_cpu_s() - cpu
    entries = json.loads((work / "raw.json").read_text())
    requests = sum(e["num_requests"] for e in entries)
    return {"requests": requests, "failures": sum(e["num_failures"] for e in entries),
            "rps": round(requests / duration_s, 1), "cpu_us_per_request": round(1e6 * cpu / max(requests, 1), 1),
            "wall_s": round(wall, 2), "exit_code": process.returncode}


def run_harness(url: str, users: int, duration_s: int, work: Path) -> dict[str, Any]:
    """LoadRun on the same file; requests from Locust's stats CSV, checked against the samples."""
    spec = LoadSpec(locustfile=AI_AGENT, users=users, spawn_rate=users, duration_s=duration_s, host=url,
                    think_time_s=(0.0, 0.0))
    started, cpu = time.monotonic(), children_cpu_s()
    with LoadRun(spec) as run:
        run.start(work / "harness")
        code = run.wait(duration_s + MARGIN_S)
    wall, cpu = time.monotonic() - started, children_cpu_s() - cpu
    stats = run.stats()
    assert stats.locust is not None, "LoadRun wrote no Locust stats"
    requests = stats.locust.total.requests
    return {"requests": requests, "failures": stats.locust.total.failures, "samples": stats.samples.total.requests,
            "rps": round(requests / duration_s, 1), "cpu_us_per_request": round(1e6 * cpu / max(requests, 1), 1),
            "wall_s": round(wall, 2), "exit_code": code}


RECORDER_COST = """
import time, importlib.util, tempfile, pathlib
spec = importlib.util.spec_from_file_location("recorder", {plugin!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
class Response: status_code = 200
with tempfile.TemporaryDirectory() as scratch:
    writer = module.SampleWriter(pathlib.Path(scratch) / "samples.csv")
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for i in range({calls}):
            writer.on_request(request_type="POST", name="chat [premium]", response_time=1.234, response_length=80,
                              response=Response(), context={{"tier": "premium"}}, exception=None, start_time=1e9 + i)
        writer.flush()
        best = min(best, (time.perf_counter() - started) / {calls})
print(best * 1e6)
"""


def recorder_cost_us(calls: int = 100_000) -> float:
    """The recorder's own cost per request (best of 5), timed apart from Locust: a floor for the overhead."""
    from harness.load._command import PLUGIN

    code = RECORDER_COST.format(plugin=str(PLUGIN), calls=calls)
    env = {**os.environ, "LOCUST_SKIP_MONKEY_PATCH": "1", "HARNESS_LOAD_RUN_DIR": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return round(float(out.stdout.strip()), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--duration", type=int, default=15, help="seconds per variant and round")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved raw/LoadRun pairs")
    parser.add_argument("--quick", action="store_true", help="one round of 5 s (a smoke run)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    duration, rounds = (5, 1) if args.quick else (args.duration, args.rounds)
    quiet = wait_for_quiet(max_wait_s=120)
    foreign = ForeignLoad()
    target, url = start_target()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="load-overhead-") as scratch:
            for index in range(rounds):
                # Alternate which variant goes first, so neither always gets the warmer machine.
                order = ("raw", "harness") if index % 2 == 0 else ("harness", "raw")
                result: dict[str, Any] = {"round": index + 1, "first": order[0]}
                for variant in order:
                    work = Path(scratch) / f"{index}-{variant}"
                    work.mkdir()
                    runner = run_raw if variant == "raw" else run_harness
                    result[variant] = runner(url, args.users, duration, work)
                result["ratio"] = round(result["harness"]["rps"] / result["raw"]["rps"], 3)
                rows.append(result)
                raw, harness = result["raw"], result["harness"]
                print(f"round {index + 1}: raw {raw['rps']} rps ({raw['cpu_us_per_request']} us CPU/request), "
                      f"LoadRun {harness['rps']} rps ({harness['cpu_us_per_request']} us CPU/request), "
                      f"ratio {result['ratio']}", flush=True)
    finally:
        stop_process(target)
    raw_total = sum(r["raw"]["requests"] for r in rows)
    harness_total = sum(r["harness"]["requests"] for r in rows)
    ratio = round(harness_total / raw_total, 3)
    cpu = {v: round(sum(r[v]["cpu_us_per_request"] * r[v]["requests"] for r in rows)
                    / max(sum(r[v]["requests"] for r in rows), 1), 1) for v in ("raw", "harness")}
    figures = {
        "method": (f"{rounds} interleaved round(s) of raw `locust --headless` and LoadRun, {duration} s each, "
                   f"{args.users} users, think time 0, locustfiles/ai_agent.py against a trivial uvloop target "
                   f"in its own process on 127.0.0.1; rps = Locust's request count / run time"),
        "users": args.users, "duration_s": duration, "rounds": rows,
        "raw_rps": round(raw_total / (duration * rounds), 1),
        "harness_rps": round(harness_total / (duration * rounds), 1),
        "ratio": ratio, "ratio_median_of_rounds": round(statistics.median(r["ratio"] for r in rows), 3),
        "target_ratio": TARGET_RATIO, "meets_target": ratio >= TARGET_RATIO,
        # CPU per request is steadier than rps on a shared machine: the same work costs the same CPU.
        "cpu_us_per_request": cpu, "cpu_efficiency_ratio": round(cpu["raw"] / cpu["harness"], 3),
        "recorder_us_per_request": recorder_cost_us(),
        "machine_load": {**quiet, **foreign.result()},
    }
    path = write_results("load_overhead", figures)
    print_table(["variant", "rps", "requests"],
                [["raw locust", figures["raw_rps"], raw_total], ["LoadRun", figures["harness_rps"], harness_total]])
    print(f"ratio LoadRun/raw = {ratio} (target >= {TARGET_RATIO}: {'met' if figures['meets_target'] else 'NOT met'}); "
          f"median of rounds {figures['ratio_median_of_rounds']}")
    print(f"CPU per request: raw {cpu['raw']} us, LoadRun {cpu['harness']} us "
          f"(efficiency ratio {figures['cpu_efficiency_ratio']})")
    print(f"the recorder alone: {figures['recorder_us_per_request']} us per request")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
