"""`harness run`: validate, bring the mesh up if needed, run the experiment through chaostoolkit-lib, judge."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.chaos.audit import clean_orphans, snapshot_resources
from harness.chaos.context import current, run_context
from harness.chaos.ledger import check_no_foreign, ledger_for
from harness import tracing
from harness.errors import HarnessError
from harness.mesh.loader import declared_topology
from harness.platforms import get_platform
from harness.platforms.base import Platform
from harness.run import evaluation
from harness.run.mesh_telemetry import check_declared_telemetry, check_live_telemetry
from harness.run.overrides import RunOverrides, collect, settings_for
from harness.run.session import HarnessRun
from harness.run.settings import check_report_dir, parse_settings, with_workers
from harness.run.validate import (HARNESS_CONTROL, check_harness_activities, check_load_declared, harness_control_arguments,
                                  load_experiment_file)
from harness.run.verdict import exit_code, record_audit, verdict_table

__all__ = ["RunOutcome", "check_only", "default_run_dir", "run_file"]

logger = logging.getLogger("harness.run")
ROLLBACKS_ALWAYS = {"runtime": {"rollbacks": {"strategy": "always"}}}
PLAIN_CONTROL = {"name": "harness", "provider": {"type": "python", "module": HARNESS_CONTROL}}
"""Added (in memory only) to a plain experiment, so Chaos Toolkit calls the session's hooks."""


def has_harness_control(experiment: dict[str, Any]) -> bool:
    return any((c.get("provider") or {}).get("module") == HARNESS_CONTROL for c in experiment.get("controls") or []
               if isinstance(c, dict))


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int
    run_dir: Path
    journal: dict[str, Any]


def known_services() -> set[str]:
    """The declared mesh's service and app names, which the experiment's actions may name.

    Read without strict validation: `up` and `apply` validate the manifests when they apply them (a run
    whose mesh is down brings it up first), and validating them again here cost every run most of a
    second (schemas, CEL). Only the Kubernetes manifests name services and pods. Files that do not even read as a topology are validated strictly, so the
    error names the file and field."""
    try:
        topology = declared_topology(validate=False)
    except Exception:  # noqa: BLE001 - the strict pass below raises the error that names file and field
        topology = declared_topology()
    return {s.name for s in topology.services} | {p.app for p in topology.pods}


def prepare(path: Path, overrides: RunOverrides | None = None) -> tuple[dict[str, Any], Any]:
    """Everything that can be checked without the mesh; errors name file and field (exit 2).

    `overrides` (command line, HARNESS_* variables) go over the control's arguments; a plain Chaos
    Toolkit experiment without the harness control takes its load and SLOs from them alone."""
    experiment = load_experiment_file(path)
    arguments = harness_control_arguments(experiment, path) if has_harness_control(experiment) else None
    if overrides is None:  # HARNESS_USERS etc. scale every run, also a suite's
        overrides = collect({}, os.environ)
    settings = settings_for(experiment, path, arguments, overrides)
    check_load_declared(experiment, settings, path)
    check_harness_activities(experiment, path, known_services())
    check_declared_telemetry(settings, evaluation.load_slos(settings))
    return experiment, settings


def default_run_dir(experiment: dict[str, Any], path: Path) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{path.stem}"


def run_file(path: Path, *, platform_name: str, report_dir: Path | None = None, keep_up: bool = False,
             progress: bool = True, workers: int | None = None,
             platform_options: dict[str, Any] | None = None, overrides: RunOverrides | None = None) -> RunOutcome:
    experiment, settings = prepare(path, overrides)
    settings = with_workers(settings, workers)
    if not has_harness_control(experiment):  # the session drives it through the control's hooks
        experiment = {**experiment, "controls": [*(experiment.get("controls") or []), PLAIN_CONTROL]}
    run_dir = (report_dir or default_run_dir(experiment, path)).resolve()
    check_report_dir(run_dir, path)  # before anything starts: a reused directory would mix two runs
    platform = get_platform(platform_name, **(platform_options or {}))
    # Before anything else: faults a killed run left behind are undone, so this run never measures
    # on them; a run still in progress elsewhere is waited for instead.
    cleaned = clean_orphans(platform)
    for record in cleaned:
        print(f"harness: cleaned up before the run: {record['description']} (left by pid {record['owner_pid']}): "
              f"{record['outcome']}", file=sys.stderr)
    check_no_foreign(ledger_for(platform))
    was_up = platform.is_up()
    if not was_up:
        platform.up()
    try:
        # the Telemetry the mesh has now (a `harness apply` since `up` included) keeps what the SLOs read
        check_live_telemetry(settings, evaluation.load_slos(settings), platform)
        evaluation.validate_queries(settings, platform)
        current().undo.begin_run()  # the audit's "changed by this run" starts empty (snapshot below)
        with tracing.run_span(experiment.get("title", path.stem), run_dir, **{"harness.platform": platform_name}):
            return _run_session(experiment, path, settings, platform, run_dir, progress, cleaned=cleaned,
                                expected=snapshot_resources(platform))
    finally:
        if not was_up and not keep_up:
            platform.down()


def _run_session(experiment: dict[str, Any], path: Path, settings: Any, platform: Platform, run_dir: Path,
                 progress: bool, *, cleaned: list[dict[str, Any]] | None = None,
                 expected: dict[Any, Any] | None = None) -> RunOutcome:
    """One experiment through chaostoolkit-lib, with the harness session installed around it.

    `cleaned`: what was undone before the run (journaled); `expected`: the Istio resources at the
    start, which the residual-fault audit compares the mesh with at the end.
    """
    from chaoslib.experiment import run_experiment

    session = HarnessRun(experiment=experiment, experiment_path=path.resolve(), settings=settings,
                         platform=platform, run_dir=run_dir, show_progress=progress)
    session.cleaned_before_run = cleaned or []
    previous = session.install_signal_handlers()
    try:
        with run_context(platform=platform, session=session):  # every action, probe and control reads it
            session.write_partial("starting")
            with tracing.experiment_span(experiment.get("title", "")):
                journal = run_experiment(experiment, settings=ROLLBACKS_ALWAYS)
    except KeyboardInterrupt:  # before Chaos Toolkit's own handling starts, or after it ends
        session.interrupted_by = session.interrupted_by or "SIGINT"
        journal = {"experiment": experiment, "status": "interrupted"}
        if session.current_phase != "done":
            with run_context(platform=platform, session=session):
                journal = session.finish(journal)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if journal.get("status") == "interrupted" and session.interrupted_by is None:
        session.interrupted_by = "SIGINT"
    journal.setdefault("harness", session.harness_section())
    journal["harness"]["interrupted_by"] = session.interrupted_by
    _audit(journal, session, platform, expected)
    code = exit_code(journal, session)
    tracing.record_exit_code(code)
    journal["harness"]["exit_code"] = code
    journal["harness"]["trace_id"] = tracing.trace_id()
    session.journal.write(journal)
    _write_reports(run_dir)
    verdict_table(journal, session, code)
    return RunOutcome(code, run_dir, journal)


def _audit(journal: dict[str, Any], session: HarnessRun, platform: Platform, expected: dict[Any, Any] | None) -> None:
    """The residual-fault audit: anything the run left in the mesh is an error (exit 2) naming it."""
    for line in record_audit(journal["harness"], session, platform, expected):
        print(f"harness: error: left in the mesh after the run: {line} (`harness reset` restores it)",
              file=sys.stderr)


def _write_reports(run_dir: Path) -> None:
    """report.html, junit.xml, summary.md; a report that cannot be written never changes the verdict."""
    from harness.report import write_reports

    try:
        write_reports(run_dir)
    except HarnessError as exc:
        logger.warning("reports not written: %s", exc)


def check_only(path: Path, overrides: RunOverrides | None = None) -> None:
    """`harness validate`: the checks `run` makes before starting anything."""
    prepare(path, overrides)

