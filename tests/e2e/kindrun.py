"""Helpers of the end-to-end tests: the `harness` command as a user runs it, and kind's cluster list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT_S = 1800  # cold image pulls for Istio, Prometheus and Jaeger
RUN_TIMEOUT_S = 900


def harness(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def kind_clusters() -> list[str]:
    listed = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, timeout=60, check=True)
    return listed.stdout.split()


def report_dir(tmp_path: Path, name: str) -> Path:
    """Where a run's directory goes: $HARNESS_E2E_RUNS/<name> when set (CI keeps it), else tmp_path."""
    kept = os.environ.get("HARNESS_E2E_RUNS")
    return Path(kept) / name if kept else tmp_path / name


def journal(run_dir: Path) -> dict:
    return json.loads((run_dir / "journal.json").read_text())


def passed(run: subprocess.CompletedProcess[str]) -> str:
    """The message of an assertion that a run must pass (exit 0), with its output's tail."""
    return f"exit {run.returncode} (a failed verdict or a harness error):\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
