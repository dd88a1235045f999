"""The harness as a Chaos Toolkit control: load, phases, SLOs and the undo guarantee around a run.

Experiments declare it (`controls: [{name: harness, provider: {type: python, module:
harness.run.control, arguments: {load: ..., slo_file: ...}}}]`), so plain `chaos run` drives the
same run as `harness run`, which creates the session itself and adds platform choice and exit codes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from harness import environment, tracing
from harness.chaos import context
from harness.chaos.context import current_platform
from harness.errors import HarnessError
from harness.run.session import HarnessRun
from harness.run.settings import check_report_dir, parse_settings
from harness.run.validate import check_load_declared

logger = logging.getLogger("harness.run")
_brought_up: Any = None  # under plain `chaos run`: the platform this control stood up, to take down
_plain_expected: dict[Any, Any] | None = None  # under plain `chaos run`: Istio resources at the start, to audit
_not_configured: str | None = None  # under plain `chaos run`: why configure_control built no session


def set_session(session: HarnessRun | None) -> None:
    """Plain `chaos run`: the control puts the session it builds into the current run context
    (harness.chaos.context); `harness run` installs its own with run_context instead."""
    context.current().session = session


def session() -> HarnessRun | None:
    """The current run context's session, if a run is on."""
    return context.current().session


def configure_control(experiment: dict[str, Any] | None = None, **arguments: Any) -> None:
    """Under plain `chaos run`, build the session from the control's arguments.

    Chaos Toolkit logs an exception raised here at debug level and runs the experiment anyway, so a
    failure is kept and before_experiment_control refuses the run (no chaos without the harness's load).
    """
    global _not_configured
    if session() is not None:
        return
    if experiment is None:
        _not_configured = "Chaos Toolkit gave the control no experiment"
        return
    try:
        _configure(experiment, arguments)
        _not_configured = None
    except Exception as exc:
        _not_configured = str(exc) if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"
        logger.error("the harness control is not configured: %s", _not_configured)


def _configure(experiment: dict[str, Any], arguments: dict[str, Any]) -> None:
    source = Path(experiment.get("__harness_path__", os.getcwd()))
    base_dir = source.parent if source.is_file() else Path.cwd()
    settings = parse_settings({k: v for k, v in arguments.items() if k not in ("configuration", "secrets",
                                                                                "settings", "event_registry")},
                              base_dir, file=source if source.is_file() else None)
    from harness.run.overrides import apply, collect

    settings = apply(settings, collect({}, os.environ))  # HARNESS_USERS, HARNESS_RATE, ... as under `harness run`
    check_load_declared(experiment, settings, source)
    title = "".join(c if c.isalnum() else "-" for c in experiment.get("title", "experiment").lower())[:40]
    run_dir = environment.get_path("HARNESS_RUN_DIR") or Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{title}"
    check_report_dir(run_dir, source if source.is_file() else None)
    platform = current_platform()
    from harness.chaos.audit import clean_orphans, snapshot_resources

    for record in clean_orphans(platform):  # a killed run's faults, undone before this run starts
        logger.warning("cleaned up before the run: %s (left by pid %s): %s", record["description"],
                       record["owner_pid"], record["outcome"])
    global _brought_up, _plain_expected
    if not platform.is_up():
        platform.up()
        _brought_up = platform
    context.current().undo.begin_run()  # the audit's "changed by this run" starts empty
    _plain_expected = snapshot_resources(platform)  # `harness run` audits itself (runner._audit)
    from harness.run.evaluation import load_slos
    from harness.run.mesh_telemetry import check_live_telemetry

    check_live_telemetry(settings, load_slos(settings), platform)  # as `harness run`, before anything starts
    set_session(HarnessRun(experiment=experiment, experiment_path=source, settings=settings,
                           platform=platform, run_dir=run_dir.resolve()))


def before_experiment_control(context: Any, **_: Any) -> None:
    current = session()
    if current is None:
        from chaoslib.exceptions import InterruptExecution

        # InterruptExecution is the one exception Chaos Toolkit lets a control raise: the method
        # (every fault) is skipped, as it must be without the harness's load.
        raise InterruptExecution(f"the harness control is not configured, so the experiment does not run "
                                 f"(no chaos without its load): {_not_configured or 'no session'}")
    current.begin()


def before_method_control(context: Any, **_: Any) -> None:
    current = session()
    if current is not None:
        current.method_starts()


def before_activity_control(context: Any, **_: Any) -> None:
    if session() is not None:
        tracing.start_activity(context)


def after_activity_control(context: Any, state: Any = None, **_: Any) -> None:
    current = session()
    if current is not None:
        tracing.end_activity(context, state)
        current.write_partial()


def after_experiment_control(context: Any, state: dict[str, Any] | None = None, **_: Any) -> None:
    """Always runs, interrupted or not: every undo, the recovery window, the SLO verdicts."""
    current = session()
    if current is None:
        return
    try:
        final = current.finish(state)
    except Exception as exc:  # Chaos Toolkit would swallow it: record it for the verdict instead
        logger.exception("the harness could not finish the run")
        current.error = f"{type(exc).__name__}: {exc}"
        current.write_partial("failed")
        raise
    if _plain_expected is not None:
        _audit_plain_run(current, final)
    if state is not None:
        state["harness"] = final["harness"]


def _audit_plain_run(current: HarnessRun, final: dict[str, Any]) -> None:
    """Plain `chaos run`: the residual-fault audit `harness run` makes, recorded in the run's journal."""
    from harness.run.verdict import record_audit

    global _plain_expected
    expected, _plain_expected = _plain_expected, None
    for line in record_audit(final["harness"], current, current.platform, expected):
        logger.error("left in the mesh after the run: %s (`harness reset` restores it)", line)
    current.journal.write(final)


def cleanup_control() -> None:
    """Plain `chaos run`: take down the mesh this control stood up; `harness run` does its own."""
    global _brought_up
    platform, _brought_up = _brought_up, None
    if platform is not None:
        set_session(None)
        platform.down()
