"""No chaos without load: start the run's load, wait until its users run, and stop the run if it dies.

chaostoolkit-lib swallows every Exception a control hook raises (chaoslib/control/__init__.py,
apply_controls: `except Exception: logger.debug(...)`), so a failed load must not be reported by
raising one. It re-raises only InterruptExecution, its documented way for a control to stop a run:
a load that does not start raises that from the before-experiment hook, so the hypothesis and the
method (every fault) never run. A load that dies later is seen by a watcher thread, which cannot
raise into the main thread: like the abort_on_breach watch it records the cause and sends the main
thread a signal (SIGUSR2, pthread_kill) whose handler, installed by the session, raises a
KeyboardInterrupt there; Chaos Toolkit treats that as Ctrl-C (status interrupted, rollbacks played). Either
way the session's `error` holds the cause with Locust's log tail, which makes the verdict exit 2.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from harness.errors import LoadError
from harness.slo.model import PHASES

logger = logging.getLogger("harness.run")
LOAD_SIGNAL = signal.SIGUSR2
START_TIMEOUT_S = 60.0  # Locust imports gevent and the locustfile; on a busy 2-core machine that takes seconds
CHECK_INTERVAL_S = 0.5  # how soon a dead load stops the run; a load run may set its own `check_interval_s`
CONFIRMATIONS = 2  # consecutive "not running" answers: an in-cluster check (kubectl exec) can fail once
LOG_TAIL_BYTES = 1500
WATCHED_PHASES = ("warmup", *PHASES)


class LoadFailed(Exception):
    """The load did not start or stopped; `cause` says why, with the end of Locust's log."""


def log_tail(run_dir: Path) -> str:
    """The end of Locust's log in the run directory, or a note that there is none."""
    path = Path(run_dir) / "locust.log"
    try:
        data = path.read_bytes()
    except OSError:
        return f"(no log at {path})"
    return data[-LOG_TAIL_BYTES:].decode(errors="replace").strip() or f"({path} is empty)"


class LoadGuard:
    """Starts the load for a session and watches it; one per run."""

    def __init__(self, session: Any, start: Callable[[], Any]) -> None:
        self.session = session
        self._start = start
        self.load: Any = None
        self.failure: str | None = None  # why the load failed, once it has
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Any:
        """Start the load and return it once its users run; LoadFailed (after recording the cause) when
        Locust cannot be started, exits, or does not start the users in time."""
        try:
            self.load = self._start()
            self.load.wait_started(START_TIMEOUT_S)
        except LoadError as exc:
            self._fail(f"the load did not start, so no fault was injected: {exc}")
            raise LoadFailed(self.failure) from exc
        except Exception as exc:  # anything else (a bad spec, the platform's status): Chaos Toolkit would drop it
            self._fail(f"the load did not start, so no fault was injected: {type(exc).__name__}: {exc}")
            raise LoadFailed(self.failure) from exc
        self._thread = threading.Thread(target=self._watch, name="harness-load-watch", daemon=True)
        self._thread.start()
        return self.load

    def check(self) -> None:
        """Before the method: LoadFailed when the load failed or is no longer running."""
        if self.failure is None and self.load is not None and self._stopped():
            self._fail(f"the load stopped during {self.session.current_phase}, so no fault was injected; "
                       f"{self.session.run_dir / 'locust.log'} ends with:\n{log_tail(self.session.run_dir)}")
        if self.failure is not None:
            raise LoadFailed(self.failure)

    def _stopped(self) -> bool:
        """True when the load answers "not running" CONFIRMATIONS times in a row (one check may fail)."""
        interval = float(getattr(self.load, "check_interval_s", CHECK_INTERVAL_S))
        for attempt in range(CONFIRMATIONS):
            if self._answers_running():
                return False
            if attempt + 1 < CONFIRMATIONS:
                time.sleep(interval)
        return True

    def _answers_running(self) -> bool:
        """One look at the load; a look that fails (a cluster unreachable) counts as one miss, not as proof
        of death: the callers want CONFIRMATIONS misses in a row."""
        try:
            return bool(self.load.running)
        except Exception as exc:
            logger.warning("could not tell whether the load runs: %s: %s", type(exc).__name__, exc)
            return False

    @property
    def stopping(self) -> bool:
        """True once the run stops the load itself (a dead load is then no longer news)."""
        return self._stop.is_set()

    def stop_watching(self) -> None:
        """Called before the run stops the load: from here on a stopped load is expected."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        interval = float(getattr(self.load, "check_interval_s", CHECK_INTERVAL_S))
        misses = 0
        while not self._stop.wait(interval):
            misses = 0 if self._answers_running() else misses + 1
            if misses < CONFIRMATIONS:
                continue
            phase = self.session.current_phase
            if self._stop.is_set() or phase not in WATCHED_PHASES:
                return
            self._fail(f"the load stopped during the {phase} phase; the run was stopped "
                       f"{'before any fault' if phase in ('warmup', 'baseline') else 'and its faults undone'}; "
                       f"{self.session.run_dir / 'locust.log'} ends with:\n{log_tail(self.session.run_dir)}")
            # To the main thread itself: signal.raise_signal() from this thread would be delivered to
            # this thread, and the main thread's sleep (a pause, a phase) would only see it once it ends.
            signal.pthread_kill(threading.main_thread().ident or 0, LOAD_SIGNAL)
            return

    def _fail(self, cause: str) -> None:
        self.failure = cause
        self.session.error = self.session.error or cause
        self.session.interrupted_by = self.session.interrupted_by or "load failure"
        logger.error("%s", cause)
        try:
            self.session.write_partial("failed")
        except OSError as exc:  # the journal is written again at the end; the stop matters more
            logger.warning("journal not written: %s", exc)
