"""Background watcher of a run: pod readiness transitions, for kill recovery times."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from harness.platforms.base import Platform

logger = logging.getLogger("harness.run")
POD_POLL_S = 0.1  # recovery times are reported to a tenth of a second


class PodWatcher(threading.Thread):
    """Records when each pod stops and starts being ready, to report kill recovery times."""

    def __init__(self, platform: Platform, deadline_s: float = 6 * 3600) -> None:
        super().__init__(name="harness-pod-watcher", daemon=True)
        self.platform = platform
        self.transitions: list[dict[str, Any]] = []
        self._stop_event = threading.Event()
        self._deadline = time.monotonic() + deadline_s
        self._lock = threading.Lock()

    def run(self) -> None:
        last: dict[str, bool] = {}
        while not self._stop_event.is_set() and time.monotonic() < self._deadline:
            try:
                pods = self.platform.pods()
            except Exception as exc:  # the platform may be going down; the watch just ends
                logger.debug("pod watch stopped: %s", exc)
                return
            now = time.time()
            for pod in pods:
                ready = bool(pod["ready"])
                if last.get(pod["name"], True) != ready:
                    with self._lock:
                        self.transitions.append({"pod": pod["name"], "ready": ready, "at": now})
                last[pod["name"]] = ready
            self._stop_event.wait(POD_POLL_S)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)

    def ready_again_after(self, pod: str, since: float) -> float | None:
        with self._lock:
            for item in self.transitions:
                if item["pod"] == pod and item["ready"] and item["at"] >= since:
                    return item["at"]
        return None
