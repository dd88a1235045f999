"""Command lines and environment for the Locust processes of a LoadSpec (pure, so tests can read them)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.load._spec import LoadSpec

PLUGIN = Path(__file__).with_name("_locust_plugin.py")
"""Loaded by Locust beside the user's locustfile; the only file of harness.load that imports locust."""
MASTER_HOST = "127.0.0.1"
EXPECT_WORKERS_MAX_WAIT_S = 30  # the master gives up (exit 1) if workers do not connect by then
DEADLINE_MARGIN_S = 10  # the recorder stops a run this long past its duration, whatever the shape does

# Environment variables the recorder plugin reads.
ENV_RUN_DIR = "HARNESS_LOAD_RUN_DIR"
ENV_PARENT_PID = "HARNESS_LOAD_PARENT_PID"
ENV_DEADLINE_S = "HARNESS_LOAD_DEADLINE_S"
ENV_RATE_PER_USER = "HARNESS_RATE_PER_USER"  # each user's constant_throughput (requests/s)
ENV_TARGET_FILE = "HARNESS_LOAD_TARGET_FILE"  # users the harness asks for mid-run (capacity steps)
TARGET_FILE = "target.json"


def _locustfiles(spec: LoadSpec) -> str:
    return f"{spec.locustfile},{PLUGIN}"


def master_argv(spec: LoadSpec, run_dir: Path, master_port: int | None) -> list[str]:
    """The standalone process, or the master when `master_port` is given (spec.workers > 0)."""
    argv = [sys.executable, "-m", "locust", "-f", _locustfiles(spec), "--headless", "--only-summary",
            "--host", spec.host, "--csv", str(run_dir / "locust"), "--csv-full-history",
            "--stop-timeout", str(spec.stop_timeout_s), "--exit-code-on-error", "0"]
    if spec.shape is None:  # a shape reads HARNESS_USERS etc.; Locust would only warn about -u/-r/-t
        argv += ["-u", str(spec.users), "-r", str(spec.spawn_rate), "-t", f"{spec.run_time_s}s"]
    if master_port is not None:
        argv += ["--master", "--master-bind-host", MASTER_HOST, "--master-bind-port", str(master_port),
                 "--expect-workers", str(spec.workers),
                 "--expect-workers-max-wait", str(EXPECT_WORKERS_MAX_WAIT_S)]
    return argv


def worker_argv(spec: LoadSpec, master_port: int) -> list[str]:
    """One worker: same files, connects to the master on 127.0.0.1."""
    return [sys.executable, "-m", "locust", "-f", _locustfiles(spec), "--worker",
            "--master-host", MASTER_HOST, "--master-port", str(master_port)]


def child_env(spec: LoadSpec, run_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) without LOCUST_* (the spec decides), plus extra_env, plus ours."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("LOCUST_")}
    env.update(spec.extra_env)
    env.update({ENV_RUN_DIR: str(run_dir), ENV_PARENT_PID: str(os.getpid()),
                ENV_DEADLINE_S: str(spec.run_time_s + spec.stop_timeout_s + DEADLINE_MARGIN_S),
                "PYTHONUNBUFFERED": "1"})
    if spec.host_header is not None:
        env["HARNESS_INGRESS_HOST"] = spec.host_header
    if spec.think_time_s is not None:
        env["HARNESS_THINK_TIME"] = f"{spec.think_time_s[0]},{spec.think_time_s[1]}"
    env.pop(ENV_RATE_PER_USER, None)
    if spec.rate_per_user is not None:
        env[ENV_RATE_PER_USER] = repr(spec.rate_per_user)
    env[ENV_TARGET_FILE] = str(run_dir / TARGET_FILE)
    if spec.shape is None:
        env.pop("HARNESS_LOAD_SHAPE", None)  # inherited from the harness's shell, it would override -u/-r/-t
    else:
        env.update({"HARNESS_LOAD_SHAPE": spec.shape, "HARNESS_USERS": str(spec.users),
                    "HARNESS_SPAWN_RATE": str(spec.spawn_rate), "HARNESS_DURATION_S": str(spec.duration_s)})
    return env
