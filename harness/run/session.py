"""One run of one experiment: load, phases, watchers, undo guarantee, SLO evaluation and the journal."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NoReturn

from harness import tracing
from harness.chaos.context import current
from harness.errors import HarnessError, InconclusiveError
from harness.platforms.base import Platform
from harness.run import evaluation
from harness.run.journal import JournalWriter
from harness.run.loadguard import LOAD_SIGNAL, WATCHED_PHASES, LoadFailed, LoadGuard
from harness.run.progress import Progress
from harness.run.settings import ExperimentSettings
from harness.run.watchers import PodWatcher
from harness.slo.model import PHASES

if TYPE_CHECKING:
    from harness.run.live import LiveSlos

logger = logging.getLogger("harness.run")

# What the end of a run imports (samples, evaluation, reports, the audit): pandas alone takes 0.4 s
# and more on a busy machine, and the report's advice reads the Telemetry resources again, which needs
# cel-python's parser (another 0.3 s). Done in the warm-up, which is not judged and where the main
# thread only waits, they are off the path from the last phase to the verdict.
END_OF_RUN_MODULES = ("pandas", "pyarrow.parquet", "harness.slo.client_side", "harness.report.write",
                      "harness.run.traces", "harness.chaos.audit", "harness.run.verdict")


def _import_ahead(modules: tuple[str, ...]) -> threading.Thread:
    """Import `modules` in a thread; the main thread's own import of one waits for it (import lock)."""
    import importlib

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError as exc:  # optional (pyarrow) or broken: the main thread's import says so
                logger.debug("not imported ahead: %s (%s)", name, exc)
        from harness.mesh import cel

        try:
            cel.load_parser()
        except ImportError as exc:
            logger.debug("cel-python's parser not built ahead: %s", exc)

    thread = threading.Thread(target=load, name="harness-import-ahead", daemon=True)
    thread.start()
    return thread


class Terminated(KeyboardInterrupt):
    """SIGTERM or an abort_on_breach stop, delivered to the main thread like Ctrl-C."""


@dataclass
class Phase:
    name: str
    start: float | None = None
    end: float | None = None


@dataclass
class HarnessRun:
    """Created by `harness run` (or by the control itself under plain `chaos run`)."""

    experiment: dict[str, Any]
    experiment_path: Path
    settings: ExperimentSettings
    platform: Platform
    run_dir: Path
    show_progress: bool = True
    phases: dict[str, Phase] = field(default_factory=lambda: {name: Phase(name) for name in PHASES})
    status: dict[str, Any] = field(default_factory=dict)
    breach: dict[str, Any] | None = None
    interrupted_by: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None  # the harness itself failed (exit 2)

    def __post_init__(self) -> None:
        self.journal = JournalWriter(self.run_dir)
        self.slos = evaluation.load_slos(self.settings)
        self.load = None
        self.load_guard = LoadGuard(self, lambda: evaluation.start_load(self.settings.load, self.platform,
                                                                        self.run_dir))
        self.pod_watcher: PodWatcher | None = None
        self.breach_watcher: threading.Thread | None = None
        self._breach_stop = threading.Event()
        self.progress = Progress(self, enabled=self.show_progress)
        self.live_slos: LiveSlos | None = None  # the progress line's SLO state; started with the load
        self.ejections: dict[str, Any] | None = None  # evaluation.wait_for_ejections, before the load
        self.current_phase = "setup"
        current().recorder.clear()

    # -- journal ---------------------------------------------------------------------------------

    def harness_section(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            # The file's name is the experiment's stable id (baselines); plain `chaos run` may know no file.
            "experiment_file": str(self.experiment_path) if self.experiment_path.is_file() else None,
            "platform": self.platform.name,
            "phase": self.current_phase,
            "phases": {name: {"start": p.start, "end": p.end} for name, p in self.phases.items()},
            "chaos": current().recorder.snapshot(),
            "undo": [{"description": u.description, "registered_at": u.registered_at, "done_at": u.done_at,
                      "error": u.error} for u in current().undo.history()],
            "pending_undo": current().undo.pending(),
            "cleaned_before_run": getattr(self, "cleaned_before_run", []),  # a killed run's faults, undone
            "ejections_before_load": self.ejections,  # hosts out on an earlier run's traffic, waited for
            "abort_on_breach": self.breach,
            "interrupted_by": self.interrupted_by,
            "error": self.error,
            **(self.result or {}),
        }

    def write_partial(self, status: str = "running") -> None:
        self.journal.write({"experiment": self.experiment, "status": status, "harness": self.harness_section()})

    def enter(self, phase: str) -> None:
        tracing.enter_phase(phase)
        self.current_phase = phase
        self.progress.phase(phase)
        self.write_partial()

    # -- phases ------------------------------------------------------------------------------------

    def install_signal_handlers(self) -> dict[int, Any]:
        """SIGTERM and an abort_on_breach stop become a KeyboardInterrupt, which Chaos Toolkit treats as
        Ctrl-C (status interrupted, rollbacks played) wherever it lands; Chaos Toolkit's own SIGTERM
        handler raises an exception that an activity in progress would swallow as its own failure.
        Installed again from the control once Chaos Toolkit has put its handlers in place."""

        def on_term(signum: int, frame: Any) -> None:
            if self.current_phase in ("rollback", "evaluation", "done"):
                return  # already cleaning up: finish that instead of leaving it half done
            self.interrupted_by = self.interrupted_by or "SIGTERM"
            raise Terminated("SIGTERM received")

        def on_breach(signum: int, frame: Any) -> None:
            if self.current_phase == "chaos":
                raise Terminated("an abort_on_breach SLO was breached; stopping the chaos")

        def on_load_lost(signum: int, frame: Any) -> None:
            if self.current_phase in WATCHED_PHASES and not self.load_guard.stopping:
                raise Terminated(self.load_guard.failure or "the load stopped")

        return {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term),
                signal.SIGUSR1: signal.signal(signal.SIGUSR1, on_breach),
                LOAD_SIGNAL: signal.signal(LOAD_SIGNAL, on_load_lost)}

    def _start_load(self) -> None:
        """Chaos never runs without its load: InterruptExecution (the one exception Chaos Toolkit lets a
        control raise) when it does not start; `error` holds the cause, so the verdict is exit 2."""
        from chaoslib.exceptions import InterruptExecution

        assert self.settings.load is not None
        try:
            self.load = self.load_guard.start()
            self.load_started_at = time.time()  # users run from here (load `duration_s` counts from it)
        except LoadFailed as exc:
            self.load = self.load_guard.load
            raise InterruptExecution(str(exc)) from exc

    def begin(self) -> None:
        """Before the experiment: watchers and load start, warm-up, then the baseline window.

        With mesh SLOs the warm-up also measures the telemetry lag (marked requests, in a thread while
        the load starts) and ends only once Prometheus answers every mesh SLO's query with data (the
        readiness gate, bounded at READINESS_TIMEOUT_S past warmup_s). Past it no fault is injected:
        the run stops, inconclusive (exit 3), naming the queries."""
        self.install_signal_handlers()
        self.enter("warmup")
        self.telemetry_lag, self.not_ready, self.readiness_s = None, None, None
        mesh = any(slo.source == "mesh" for slo in self.slos)
        if mesh:
            self._ejections_gate()
        # The whole run, baseline included, on the settings the experiment names; before the lag probe, so
        # that its marked requests meet the mesh the phases use, not proxies taking a listener update.
        self._change_mesh()
        deadline = time.monotonic() + self.settings.warmup_s + evaluation.READINESS_TIMEOUT_S
        probe = evaluation.LagProbe(self.platform, deadline) if mesh else None
        if probe is not None:
            probe.start()
        self.pod_watcher = PodWatcher(self.platform)
        self.pod_watcher.start()
        # The warm-up counts from the moment the load is asked to start: Locust's start-up and the
        # spawning of its users are part of the traffic settling that warmup_s declares, not extra time.
        warm_until = time.monotonic() + self.settings.warmup_s
        if self.settings.load is not None:
            self._start_load()  # returns once users run; a failure stops the run before any fault
        _import_ahead(END_OF_RUN_MODULES)
        self.progress.start()
        time.sleep(max(0.0, warm_until - time.monotonic()))
        if probe is not None:
            self._readiness_gate(probe, time.monotonic() + evaluation.READINESS_TIMEOUT_S)
        if self.show_progress and mesh:
            from harness.run.live import LiveSlos

            self._live_client = evaluation.prometheus(self.platform)
            self.live_slos = LiveSlos(self.slos, self._live_client, lag_s=self.telemetry_lag.upper_s)
            self.live_slos.start()
        self.phases["baseline"].start = time.time()
        self.enter("baseline")
        time.sleep(self.settings.baseline_s)

    def _ejections_gate(self) -> None:
        """No baseline on hosts an earlier run's faults got ejected: wait until they are back (bounded)."""
        try:
            self.ejections = evaluation.wait_for_ejections(self.platform)
        except InconclusiveError as exc:
            self._not_ready(exc)
        if self.ejections["ejected_at_start"]:
            logger.warning("waited %.1f s before the load for hosts outlier detection had ejected on earlier "
                           "traffic: %s", self.ejections["waited_s"], "; ".join(self.ejections["ejected_at_start"]))

    def _readiness_gate(self, probe: evaluation.LagProbe, deadline: float) -> None:
        try:
            self.telemetry_lag = probe.result()
            self.readiness_s = evaluation.wait_until_ready(self.slos, self.platform, self.telemetry_lag, deadline)
        except InconclusiveError as exc:
            self._not_ready(exc)

    def _not_ready(self, exc: InconclusiveError) -> NoReturn:
        """A gate before the baseline gave up: no fault is injected, the run is inconclusive (exit 3)."""
        from chaoslib.exceptions import InterruptExecution

        self.not_ready = f"not ready for the baseline: {exc}"
        self.write_partial()
        raise InterruptExecution(self.not_ready) from exc  # the one exception Chaos Toolkit lets through

    def method_starts(self) -> None:
        if self.settings.load is not None:
            from chaoslib.exceptions import InterruptExecution

            try:  # the load may have died in the baseline: then no fault may be injected
                self.load_guard.check()
            except LoadFailed as exc:
                raise InterruptExecution(str(exc)) from exc
        now = time.time()
        if self.phases["baseline"].end is None:
            self.phases["baseline"].end = now
        self.phases["chaos"].start = now
        self.enter("chaos")
        breach_slos = [s for s in self.slos if s.abort_on_breach]
        if breach_slos:
            # Samples up to the telemetry lag's upper bound after the chaos starts still hold baseline
            # requests: the watch judges only what follows, as the chaos phase's own window does.
            lag = self.telemetry_lag
            since = now + (lag.upper_s if lag is not None else 0.0)

            def watch() -> None:
                try:
                    breach = evaluation.breach_watch(breach_slos, self.platform, since, self._breach_stop)
                except Exception as exc:  # Prometheus trouble shows again, and counts, at evaluation
                    logger.warning("abort-on-breach watch ended: %s", exc)
                    return
                if breach is not None and not self._breach_stop.is_set():
                    self._on_breach(breach)

            self.breach_watcher = threading.Thread(target=watch, name="harness-breach-watch", daemon=True)
            self.breach_watcher.start()

    def _on_breach(self, breach: dict[str, Any]) -> None:
        """Stop the chaos early: the main thread gets an interrupt; rollbacks and undos still run."""
        self.breach = breach
        self.interrupted_by = "abort_on_breach"
        self.write_partial()
        # To the main thread itself: raise_signal() from this watcher thread is delivered to this thread,
        # and the main thread, asleep in an activity's pause, would only see it once the pause ended.
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    def finish(self, journal: dict[str, Any] | None) -> dict[str, Any]:
        """After the experiment (always, also when interrupted): undo, recover, evaluate, record.

        Undoing and evaluating ignore further Ctrl-C so they are never left half done; an interrupt
        during the recovery window only cuts that window short.
        """
        # the readiness gate's stop is the harness's own: inconclusive, not an interrupt
        interrupted = bool(journal and journal.get("status") == "interrupted") and not getattr(self, "not_ready", None)
        with _signals_ignored():
            self._undo_everything()
        if not interrupted and self.phases["chaos"].start is not None:
            interrupted = not self._recovery_window()
        with _signals_ignored():
            return self._conclude(journal, interrupted)

    def _undo_everything(self) -> None:
        self._breach_stop.set()
        if self.breach_watcher is not None:
            self.breach_watcher.join(timeout=5)
        self.enter("rollback")
        current().undo.run_all()
        now = time.time()
        for name in ("baseline", "chaos"):
            phase = self.phases[name]
            if phase.start is not None and phase.end is None:
                phase.end = now

    def _load_left_s(self) -> float:
        """With a load `duration_s`, the recovery window lasts until the load has run that long."""
        load, started = self.settings.load, getattr(self, "load_started_at", None)
        if load is None or load.duration_s is None or started is None:
            return 0.0
        return started + load.duration_s - time.time()

    def _recovery_window(self) -> bool:
        """Load keeps running on the restored mesh; False when an interrupt cut it short."""
        self.phases["recovery"].start = time.time()
        self.enter("recovery")
        try:
            time.sleep(max(self.settings.recovery_s, self._load_left_s()))
            return True
        except KeyboardInterrupt:
            self.interrupted_by = self.interrupted_by or "SIGINT"
            return False
        finally:
            self.phases["recovery"].end = time.time()

    def _conclude(self, journal: dict[str, Any] | None, interrupted: bool) -> dict[str, Any]:
        self.load_guard.stop_watching()  # the load stops next, as planned
        if self.load is not None:
            self.load.stop()
        self._restore_mesh()
        self.progress.stop()
        if self.live_slos is not None:
            self.live_slos.stop()
            self._live_client.close()
        if self.pod_watcher is not None:
            self.pod_watcher.stop()
        self.enter("evaluation")
        self.result = evaluation.evaluate_run(self, interrupted=interrupted)
        if self.settings.capacity is not None:
            from harness.run import capacity

            capacity.judge(self)
        self._judge_generator()
        self._save_traces()
        final = journal if journal is not None else {"experiment": self.experiment}
        if interrupted:
            final["status"] = "interrupted"
        elif getattr(self, "not_ready", None):
            final["status"] = "aborted"  # stopped by the readiness gate; the verdict says inconclusive
        final["harness"] = self.harness_section()
        self.current_phase = "done"
        final["harness"]["phase"] = "done"
        self.journal.write(final)
        return final

    def _save_traces(self) -> None:
        """The phases' sampled request traces into the run dir, for the report's waterfall (local only)."""
        if self.platform.name != "local":
            return
        from harness.errors import HarnessError
        from harness.run import traces

        try:
            status = self.platform.status()
        except HarnessError as exc:  # the mesh is gone: no traces.json, so the report has no traces section
            logger.warning("no request traces for this run: %s", exc)
            return
        traces.collect(status, {name: (p.start, p.end) for name, p in self.phases.items()}, self.run_dir,
                       tracing.trace_id())

    def _change_mesh(self) -> None:
        """The experiment's `mesh:` applied; one that fails stops the run before its load and any fault
        (InterruptExecution, which Chaos Toolkit lets a control raise; `error` holds the cause: exit 2)."""
        from chaoslib.exceptions import InterruptExecution

        from harness.chaos.tuning import apply_mesh_change

        self.mesh_restores = getattr(self, "mesh_restores", [])
        for manifest in self.settings.mesh:
            try:
                self.mesh_restores.append((manifest, apply_mesh_change(self.platform, manifest)))
            except HarnessError as exc:
                self.error = self.error or f"could not apply the mesh change {manifest}: {exc}"
                raise InterruptExecution(self.error) from exc

    def _restore_mesh(self) -> None:
        """After the load stopped: the seed's rules back; a failure is the harness's error (exit 2)."""
        while getattr(self, "mesh_restores", []):
            manifest, restore = self.mesh_restores.pop()
            try:
                restore()
            except Exception as exc:  # the next restore still runs; the audit names what is left
                self.error = self.error or f"could not restore the mesh after {manifest}: {exc}"

    def _judge_generator(self) -> None:
        """Locust's CPU over each judged window; a saturated generator makes the run inconclusive."""
        from harness.run import generator

        if self.load is None or self.result is None:
            return
        windows = {n: (p.start, p.end) for n, p in self.phases.items() if p.start is not None and p.end is not None}
        if self.settings.capacity is not None:  # the steps are judged, not the chaos phase as a whole
            from harness.run import capacity

            windows.pop("chaos", None)
            windows.update(capacity.generator_windows(self))
        workers = self.settings.load.workers if self.settings.load is not None else 0
        try:
            samples = self.load.samples()
        except (OSError, ValueError):
            samples = None
        self.result["generator"] = generator.judge(self.run_dir, windows, workers, samples)
        if self.settings.capacity is not None:
            capacity.attach_generator(self, self.result["generator"])
        reason = generator.inconclusive(self.result["generator"])
        if reason and not self.result.get("inconclusive"):
            self.result["inconclusive"] = reason


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (it undoes faults or writes the verdict)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
