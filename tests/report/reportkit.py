"""Where the report tests' real run directories are, and helpers to read them.

The data folders hold journal.json and samples.csv of real `harness run`s on the local platform:
  pod-kill-pass          experiments/pod-kill.yaml, PASS: three ai-agent v1 app kills, every SLO held
  abort-critical-fail    experiments/abort-injection-critical.yaml, FAIL: 503s on half the calls to user
  delay-too-slow-fail    experiments/latency-injection-too-slow.yaml, FAIL: 1.5 s delay on user-service
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
PASSING, FAILING, SLOW = "pod-kill-pass", "abort-critical-fail", "delay-too-slow-fail"

RunFactory = Callable[..., Path]


def journal_of(name: str) -> dict[str, Any]:
    """A fixture run's journal as parsed JSON (a fresh copy each call)."""
    return json.loads((DATA / name / "journal.json").read_text())
