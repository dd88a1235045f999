"""Specifications of `harness gameday FILE`: the operator's go, skip or abort before each action, in the journal.

The experiment runs through the real chaostoolkit-lib with the real game-day control; only the harness
boundary (load, mesh, SLO verdicts: harness.run.runner.run_file) is replaced by `chaos_run`, which runs
the written experiment as run_file would and maps its status to run_file's exit codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.run import control
from harness.run.runner import ROLLBACKS_ALWAYS, RunOutcome, check_only
from harness.suite import gameday_control, run_gameday
from harness.suite.gameday import WALKED_FILE, gameday_experiment
from harness.suite.gameday_control import OPERATOR_ABORT
from harness.suite.walk import REHEARSAL_NOTE
from tests.suite import gameday_activities

ROOT = Path(__file__).resolve().parents[2]
ACTIVITIES = gameday_activities.__name__  # Chaos Toolkit imports the activities by this name
SLO_LINES = ["live SLOs (last 30 s):", "  ai-agent-availability  0.999  (>= 0.995)  PASS"]


def action(name: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"type": "action", "name": name, **extra,
            "provider": {"type": "python", "module": ACTIVITIES, "func": "act", "arguments": {"label": label}}}


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    probe = {"type": "probe", "name": "healthy", "tolerance": True,
             "provider": {"type": "python", "module": ACTIVITIES, "func": "healthy"}}
    document = {
        "version": "1.0.0", "title": "three faults", "description": "game-day test", "tags": ["nightly"],
        "steady-state-hypothesis": {"title": "healthy", "probes": [probe]},
        "method": [action("kill-pods", "one", pauses={"after": 0}), dict(probe, name="still-healthy"),
                   action("inject-delay", "two", pauses={"after": 0.01}), action("fail-region", "three", background=True)],
        "rollbacks": [{"type": "action", "name": "remove-faults",
                       "provider": {"type": "python", "module": ACTIVITIES, "func": "undo"}}],
    }
    path = tmp_path / "three-faults.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(autouse=True)
def fresh_calls() -> Iterator[None]:
    gameday_activities.CALLS.clear()
    yield
    gameday_activities.CALLS.clear()


class Script:
    """A scripted operator: answers in order; running out is the end of input (EOFError), like input()."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.questions: list[str] = []

    def __call__(self, question: str) -> str:
        self.questions.append(question)
        if not self.answers:
            raise EOFError
        return self.answers.pop(0)


def chaos_run(path: Path, *, platform_name: str, report_dir: Path | None, keep_up: bool,
              progress: bool) -> RunOutcome:
    from chaoslib.experiment import run_experiment
    from chaoslib.loader import load_experiment

    assert report_dir is not None and path == report_dir / WALKED_FILE
    journal = run_experiment(load_experiment(str(path)), settings=ROLLBACKS_ALWAYS)
    code = 130 if journal["status"] == "interrupted" else 0 if journal["status"] == "completed" else 1
    (report_dir / "journal.json").write_text(json.dumps(journal, default=str))
    return RunOutcome(code, report_dir, journal)


def gameday(experiment: Path, tmp_path: Path, prompt: Any, *, yes: bool = False,
            shown: list[str] | None = None) -> tuple[int, dict[str, Any]]:
    code = run_gameday(experiment, platform_name="local", report_dir=tmp_path / "run", yes=yes, prompt=prompt,
                       show=(shown.append if shown is not None else lambda line: None), run=chaos_run,
                       slo_state=lambda: SLO_LINES)
    return code, json.loads((tmp_path / "run" / "journal.json").read_text())


def test_each_decision_and_note_is_recorded_in_the_journal(experiment: Path, tmp_path: Path) -> None:
    code, journal = gameday(experiment, tmp_path, Script("go", "pods first", "skip", "", "g", "region last"))
    decisions = journal["harness"]["gameday"]
    assert [(d["activity"], d["decision"], d["note"]) for d in decisions] == [
        ("kill-pods", "go", "pods first"), ("inject-delay", "skip", ""), ("fail-region", "go", "region last")]
    assert all(set(d) == {"activity", "decision", "note", "at"} and isinstance(d["at"], float) for d in decisions)
    assert decisions[0]["at"] <= decisions[1]["at"] <= decisions[2]["at"]
    assert code == 0


def test_a_skipped_action_does_not_run_and_its_journal_record_says_so(experiment: Path, tmp_path: Path) -> None:
    code, journal = gameday(experiment, tmp_path, Script("go", "", "skip", "latency is already high", "go", ""))
    assert gameday_activities.CALLS == ["one", "three", "rollback"]
    skipped = next(r for r in journal["run"] if r["activity"]["name"] == "inject-delay")
    assert skipped["output"] == {"skipped_by_operator": True, "activity": "inject-delay",
                                 "function": f"{ACTIVITIES}.act", "note": "latency is already high"}
    assert "pauses" not in skipped["activity"]  # nothing to wait for after an action that did not run
    method = {a["name"]: a for a in journal["experiment"]["method"]}
    assert method["inject-delay"]["provider"]["func"] == "act"  # the experiment itself is left as written
    assert code == 0


def test_abort_stops_before_the_action_ends_interrupted_with_130_and_plays_the_rollbacks(
        experiment: Path, tmp_path: Path) -> None:
    code, journal = gameday(experiment, tmp_path, Script("go", "", "abort", "error budget gone"))
    assert code == 130 and journal["status"] == "interrupted"
    assert gameday_activities.CALLS == ["one", "rollback"]
    assert [r["activity"]["name"] for r in journal["rollbacks"]] == ["remove-faults"]
    assert journal["harness"]["gameday"][-1]["decision"] == "abort"
    assert journal["harness"]["gameday"][-1]["note"] == "error budget gone"


def test_an_abort_tells_the_harness_session_the_operator_interrupted_the_run(experiment: Path, tmp_path: Path) -> None:
    class Session:
        interrupted_by: str | None = None

    session = Session()
    control.set_session(session)  # type: ignore[arg-type]
    try:
        code, _ = gameday(experiment, tmp_path, Script("abort", ""))
    finally:
        control.set_session(None)
    assert code == 130 and session.interrupted_by == OPERATOR_ABORT
    assert gameday_activities.CALLS == ["rollback"]


def test_yes_runs_unattended_and_never_prompts(experiment: Path, tmp_path: Path) -> None:
    def never(question: str) -> str:
        raise AssertionError(f"prompted: {question}")

    code, journal = gameday(experiment, tmp_path, never, yes=True)
    assert code == 0 and gameday_activities.CALLS == ["one", "two", "three", "rollback"]
    assert [(d["decision"], d["note"]) for d in journal["harness"]["gameday"]] == [("go", REHEARSAL_NOTE)] * 3
    assert journal["harness"]["gameday_rehearsal"] is True


def test_the_operator_sees_each_action_its_function_arguments_and_the_live_slos_before_deciding(
        experiment: Path, tmp_path: Path) -> None:
    shown: list[str] = []
    gameday(experiment, tmp_path, Script("go", "", "go", "", "go", ""), shown=shown)
    assert shown[:6] == ["--- game day: action 1 of 3 ---", "action     kill-pods",
                         f"function   {ACTIVITIES}.act", 'arguments  {"label": "one"}', *SLO_LINES]
    assert "--- game day: action 3 of 3 ---" in shown


def test_only_method_actions_are_stopped_for_not_probes_the_hypothesis_or_rollbacks(
        experiment: Path, tmp_path: Path) -> None:
    script = Script("go", "", "go", "", "go", "")
    gameday(experiment, tmp_path, script)
    assert script.questions == ["go, skip or abort? [g/s/a] ", "note (optional, Enter for none): "] * 3


def test_an_unclear_answer_is_asked_again_and_the_end_of_input_aborts(experiment: Path, tmp_path: Path) -> None:
    shown: list[str] = []
    code, journal = gameday(experiment, tmp_path, Script("maybe", "G", "ok"), shown=shown)
    assert "please answer go, skip or abort (not 'maybe')" in shown
    decisions = journal["harness"]["gameday"]
    assert [(d["decision"], d["note"]) for d in decisions] == [("go", "ok"),
                                                              ("abort", "no operator input (end of input)")]
    assert code == 130 and gameday_activities.CALLS == ["one", "rollback"]


def test_a_failure_to_ask_the_operator_aborts_instead_of_running_the_action(experiment: Path, tmp_path: Path) -> None:
    def broken(question: str) -> str:
        raise OSError("the terminal went away")

    code, journal = gameday(experiment, tmp_path, broken)
    assert code == 130 and gameday_activities.CALLS == ["rollback"]
    assert "the terminal went away" in journal["harness"]["gameday"][0]["note"]


def test_the_control_is_uninstalled_after_the_game_day(experiment: Path, tmp_path: Path) -> None:
    gameday(experiment, tmp_path, Script("go", "", "go", "", "go", ""))
    assert gameday_control.current() is None


def test_the_walked_experiment_is_valid_for_harness_run_with_absolute_paths_and_the_gameday_control(
        tmp_path: Path) -> None:
    source = ROOT / "experiments" / "pod-kill.yaml"
    original = yaml.safe_load(source.read_text())
    original["method"][0]["background"] = True
    walked = gameday_experiment(original, source)
    assert walked["controls"][0]["provider"]["module"] == "harness.suite.gameday_control"  # asks before the rest
    arguments = walked["controls"][1]["provider"]["arguments"]
    assert Path(arguments["slo_file"]).is_absolute() and Path(arguments["slo_file"]).is_file()
    assert Path(arguments["load"]["locustfile"]).is_absolute() and Path(arguments["load"]["locustfile"]).is_file()
    assert "background" not in walked["method"][0] and "gameday" in walked["tags"]
    assert original["controls"] == yaml.safe_load(source.read_text())["controls"]  # the original is left alone
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / WALKED_FILE).write_text(json.dumps(walked))
    check_only(elsewhere / WALKED_FILE)  # what `harness run` checks before starting anything
