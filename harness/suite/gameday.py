"""`harness gameday FILE`: run an experiment step by step, the operator saying go, skip or abort before each action.

The experiment runs as `harness run` runs it (load, phases, SLOs, undo guarantee), with one more
Chaos Toolkit control, harness.suite.gameday_control. Before each action of the method, while the
load runs, that control stops and shows the action (name, function, arguments) and every SLO over the
last 30 s, then asks the operator:

    go      the action runs
    skip    the action is replaced by a stand-in that does nothing (its journal record says so)
    abort   the run stops as an interrupted one: rollbacks and every registered undo run, exit 130
and an optional note. Decisions and notes go into journal.json under `harness.gameday` as
[{activity, decision, note, at}]. `yes=True` (`--yes`) answers go to everything, for a rehearsal.

What actually runs is written beside the journal as gameday-experiment.json: the experiment with the
control added, its file paths made absolute, and background actions made foreground (a step-by-step
walk cannot stop before an action that is already running in a thread).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.chaos.context import run_context
from harness.suite.model import Decision, RunFunction
from harness.suite.walk import Walk

CONTROL_MODULE = "harness.suite.gameday_control"
HARNESS_CONTROL = "harness.run.control"
WALKED_FILE = "gameday-experiment.json"


def count_actions(experiment: dict[str, Any]) -> int:
    return sum(1 for a in experiment.get("method") or [] if isinstance(a, dict) and a.get("type") == "action")


def gameday_experiment(experiment: dict[str, Any], path: Path) -> dict[str, Any]:
    """The experiment as the game day runs it: the gameday control added, the harness control's file
    paths made absolute (the copy lives in the run directory), every method activity in the foreground."""
    from harness.run.settings import resolve_path

    walked = copy.deepcopy(experiment)
    for activity in walked.get("method") or []:
        if isinstance(activity, dict):
            activity.pop("background", None)
    controls = [c for c in walked.get("controls") or [] if (c.get("provider") or {}).get("module") != CONTROL_MODULE]
    for control in controls:
        arguments = (control.get("provider") or {}).get("arguments")
        if (control.get("provider") or {}).get("module") == HARNESS_CONTROL and isinstance(arguments, dict):
            if isinstance(arguments.get("slo_file"), str):
                arguments["slo_file"] = str(resolve_path(arguments["slo_file"], path.parent))
            load = arguments.get("load")
            if isinstance(load, dict) and isinstance(load.get("locustfile"), str):
                load["locustfile"] = str(resolve_path(load["locustfile"], path.parent))
    # First, so the operator decides before any other control starts its bookkeeping for the action.
    walked["controls"] = [{"name": "gameday", "provider": {"type": "python", "module": CONTROL_MODULE}}, *controls]
    walked["tags"] = [*(walked.get("tags") or []), "gameday"]
    return walked


def run_gameday(path: Path, *, platform_name: str, report_dir: Path | None = None, yes: bool = False,
                prompt: Callable[[str], str] = input, show: Callable[[str], None] = print, keep_up: bool = False,
                run: RunFunction | None = None, slo_state: Callable[[], Sequence[str]] | None = None) -> int:
    """Walk the experiment at `path` with the operator; returns the run's exit code (abort: 130).

    `run` is harness.run.runner.run_file unless a test gives a stand-in; `slo_state` gives the lines
    of live SLO state (default: the running session's SLOs over the last 30 s from Prometheus).
    """
    from harness.run.runner import default_run_dir, run_file
    from harness.run.validate import load_experiment_file
    from harness.suite.live import session_slo_state

    experiment = load_experiment_file(path)
    run_dir = (report_dir or default_run_dir(experiment, path)).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    walked = gameday_experiment(experiment, path.resolve())
    walked_path = run_dir / WALKED_FILE
    walked_path.write_text(json.dumps(walked, indent=2, default=str), encoding="utf-8")
    walk = Walk(total=count_actions(walked), prompt=prompt, show=show, yes=yes,
                slo_state=slo_state or session_slo_state)
    try:
        with run_context(walk=walk):  # the run's own context inherits it; gameday_control reads it there
            outcome = (run or run_file)(walked_path, platform_name=platform_name, report_dir=run_dir,
                                        keep_up=keep_up, progress=yes)  # a progress line would garble prompts
    finally:
        record_decisions(run_dir, walk.decisions, source=path, rehearsal=yes)
    return outcome.exit_code


def record_decisions(run_dir: Path, decisions: Sequence[Decision], *, source: Path, rehearsal: bool) -> Path:
    """Put the decisions in the run's journal.json (harness.gameday); without a journal (the run failed
    before writing one), in gameday.json beside where it would be."""
    from harness.run.journal import JournalWriter

    entries = [dataclasses.asdict(d) for d in decisions]
    journal_path = run_dir / "journal.json"
    try:
        journal = json.loads(journal_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        journal = None
    if not isinstance(journal, dict):
        fallback = run_dir / "gameday.json"
        fallback.write_text(json.dumps({"source": str(source), "rehearsal": rehearsal, "gameday": entries}, indent=2),
                            encoding="utf-8")
        return fallback
    harness = journal.setdefault("harness", {})
    harness["gameday"] = entries
    harness["gameday_source"] = str(source)
    harness["gameday_rehearsal"] = rehearsal
    JournalWriter(run_dir).write(journal)
    return journal_path
