"""An abort_on_breach stop reaches the main thread at once, even while it sleeps in an activity's pause."""

from __future__ import annotations

import signal
import threading
import time
from types import SimpleNamespace

import pytest

from harness.run.session import HarnessRun, Terminated


def test_a_breach_found_by_the_watcher_thread_cuts_the_main_threads_pause_short() -> None:
    """The watcher runs in its own thread; signal.raise_signal() there is delivered to that thread, so a
    main thread in time.sleep() (an activity's `pauses.after`) would finish the whole pause first. The
    stop is sent to the main thread (pthread_kill), which wakes the sleep with the Terminated interrupt."""
    run = SimpleNamespace(current_phase="chaos", breach=None, interrupted_by=None, load_guard=None,
                          write_partial=lambda: None)
    previous = HarnessRun.install_signal_handlers(run)  # type: ignore[arg-type]
    watcher = threading.Timer(0.2, HarnessRun._on_breach, args=(run, {"slo": "ai-agent-availability"}))
    try:
        watcher.start()
        started = time.monotonic()
        with pytest.raises(Terminated, match="abort_on_breach"):
            time.sleep(60)
        # Not a speed bound: without the fix the interrupt is raised only once the 60 s pause is over.
        assert time.monotonic() - started < 30
    finally:
        watcher.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert run.interrupted_by == "abort_on_breach" and run.breach == {"slo": "ai-agent-availability"}


def test_the_breach_watch_judges_only_samples_after_the_lag_that_hold_chaos_requests(monkeypatch) -> None:
    """Samples stamped up to the telemetry lag's upper bound after the chaos starts still hold baseline
    requests (harness/slo/lag.py), so the watch starts there, as the chaos phase's own window does: a
    breach in the baseline never stops the chaos as if the fault had caused it."""
    from harness.run import evaluation
    from harness.run.session import Phase

    seen: list[float] = []
    monkeypatch.setattr(evaluation, "breach_watch", lambda slos, platform, since, stop: seen.append(since))
    slo = SimpleNamespace(abort_on_breach=True)
    run = SimpleNamespace(settings=SimpleNamespace(load=None), phases={p: Phase(p) for p in ("baseline", "chaos")},
                          enter=lambda phase: None, slos=[slo], platform=None, _breach_stop=threading.Event(),
                          telemetry_lag=SimpleNamespace(upper_s=2.4), breach_watcher=None)
    before = time.time()
    HarnessRun.method_starts(run)  # type: ignore[arg-type]
    run.breach_watcher.join(5)
    assert seen and seen[0] >= before + 2.4 and seen[0] == pytest.approx(run.phases["chaos"].start + 2.4)
