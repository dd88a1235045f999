"""Live progress in the terminal: phase, rps, error rate, p99 from the load's live feed, live SLO state."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

REFRESH_S = 1.0
PLAIN_EVERY_S = 5.0  # without a terminal, a line every few seconds keeps CI logs short


class Progress(threading.Thread):
    def __init__(self, run: Any, *, enabled: bool = True) -> None:
        super().__init__(name="harness-progress", daemon=True)
        self.run_ref = run
        self.enabled = enabled
        self._stop_event = threading.Event()
        self._phase = "setup"
        self._t0 = time.monotonic()
        self._live = None

    def phase(self, name: str) -> None:
        self._phase = name
        if self.enabled and self._live is None:
            print(f"[harness] phase: {name}", file=sys.stderr, flush=True)

    def start(self) -> None:
        if self.enabled:
            super().start()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=3)

    def latest(self) -> dict[str, Any]:
        feed = Path(self.run_ref.run_dir) / "live.jsonl"
        try:
            with open(feed, "rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - 4096))
                lines = handle.read().decode(errors="replace").strip().splitlines()
            return json.loads(lines[-1]) if lines else {}
        except (OSError, ValueError):
            return {}

    def line(self) -> str:
        data = self.latest()
        elapsed = time.monotonic() - self._t0
        parts = [f"{elapsed:6.1f}s", f"phase={self._phase}"]
        if data:
            parts += [f"rps={data.get('rps', 0):.0f}", f"errors={100 * data.get('error_rate', 0):.2f}%",
                      f"p99={data.get('p99', 0):.0f}ms", f"users={data.get('users', 0)}"]
        live = getattr(self.run_ref, "live_slos", None)
        slo_state = live.summary() if live is not None else ""
        if slo_state:
            parts.append(slo_state)
        breach = self.run_ref.breach
        if breach:
            parts.append(f"BREACH {breach.get('name')}")
        return "  ".join(parts)

    def run(self) -> None:
        if sys.stderr.isatty():
            self._run_rich()
        else:
            self._run_plain()

    def _run_plain(self) -> None:
        while not self._stop_event.wait(PLAIN_EVERY_S):
            print(f"[harness] {self.line()}", file=sys.stderr, flush=True)

    def _run_rich(self) -> None:
        from rich.console import Console
        from rich.live import Live

        with Live(console=Console(stderr=True), refresh_per_second=2, transient=True) as live:
            self._live = live
            while not self._stop_event.wait(REFRESH_S):
                live.update(self.line())
        self._live = None
