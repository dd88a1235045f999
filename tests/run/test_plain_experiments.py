"""Experiments as users bring them: plain Chaos Toolkit files without the harness control.

`harness run` runs one when its load and SLOs are given on the command line (harness.run.overrides),
adding the harness control in memory only; without them the error names the flags to add. The
steady state is Chaos Toolkit's own `http` probe (chaoslib/provider/http.py: `url`, `method`,
`headers`, `arguments` as the JSON body, a status code as tolerance), the method a `process` action
and a Python action. The platform is the stand-in of test_no_chaos_without_load.py, its ingress a real
chat target on 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import main
from harness.platforms.fake import FakePlatform
from tests.load.loadkit import ChatTarget
from tests.run.test_no_chaos_without_load import MARKER_MODULE

ROOT = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
CLIENT_SLOS = textwrap.dedent("""\
    slos:
      - {name: client-ok, source: client, template: availability, objective: 0.99, comparator: '>='}
      - {name: client-fast, source: client, template: latency, quantile: 0.99, objective: 2000, comparator: '<='}
    """)


def plain_experiment(tmp_path: Path, target: ChatTarget) -> tuple[Path, Path]:
    (tmp_path / "h14_marker_action.py").write_text(MARKER_MODULE)
    marker = tmp_path / "fault-was-injected"
    document = {
        "version": "1.0.0", "title": "a plain chaos toolkit experiment", "description": "no harness control",
        "steady-state-hypothesis": {"title": "the chat answers", "probes": [{
            "type": "probe", "name": "chat-answers", "tolerance": 200,
            "provider": {"type": "http", "url": f"{target.url}/api/v1/chat", "method": "POST", "timeout": 3,
                         "headers": {"x-user-id": "u1", "traceparent": TRACEPARENT,
                                     "Content-Type": "application/json"},
                         "arguments": {"user_id": "u1", "prompt": "hello"}}}]},
        "method": [
            {"type": "action", "name": "a-process", "provider": {
                "type": "process", "path": sys.executable, "arguments": ["-c", "print('process action ran')"]}},
            {"type": "action", "name": "a-python-action", "provider": {
                "type": "python", "module": "h14_marker_action", "func": "inject",
                "arguments": {"marker": str(marker)}}, "pauses": {"after": 2}},  # chaos under load for 2 s
        ],
    }
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(document))
    (tmp_path / "slos.yaml").write_text(CLIENT_SLOS)
    return path, marker


@pytest.fixture
def chat() -> ChatTarget:
    server = ChatTarget(fail_header=None).start()
    yield server
    server.stop()


def test_a_plain_experiment_runs_under_harness_run_with_load_and_slos_from_the_command_line(
        tmp_path: Path, chat: ChatTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    path, marker = plain_experiment(tmp_path, chat)
    platform = FakePlatform(pods=[], declared=[], ingress_url=chat.url, ingress_host="ai-agent.test")
    monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: platform)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("HARNESS_BASELINE_S", "HARNESS_RECOVERY_S", "HARNESS_WARMUP_S"):
        monkeypatch.setenv(name, "1")
    run_dir = tmp_path / "run"
    code = main(["run", str(path), "--report-dir", str(run_dir), "--no-progress",
                 "--locustfile", str(ROOT / "locustfiles" / "ai_agent.py"), "--users", "2", "--rate", "10",
                 "--slo-file", str(tmp_path / "slos.yaml")])
    journal = json.loads((run_dir / "journal.json").read_text())
    assert code == 0, journal["harness"].get("error") or journal["harness"].get("inconclusive")
    assert marker.exists()
    assert journal["steady_states"]["before"]["steady_state_met"] is True
    assert {r["name"] for r in journal["harness"]["slo_results"]} == {"client-ok", "client-fast"}
    assert json.loads(path.read_text()).get("controls") is None  # the file itself is not changed


def test_a_plain_experiment_without_them_names_the_flags_to_add(
        tmp_path: Path, chat: ChatTarget, capsys: pytest.CaptureFixture[str]) -> None:
    path, marker = plain_experiment(tmp_path, chat)
    assert main(["run", str(path), "--report-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--locustfile FILE" in err and "--users N (or --rate R)" in err and "--slo-file FILE" in err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_chaos_run_of_a_plain_experiment_keeps_working(tmp_path: Path, chat: ChatTarget) -> None:
    """Chaos Toolkit's own runner, in-process: the harness adds nothing to a file without its control."""
    from chaoslib.experiment import run_experiment

    path, marker = plain_experiment(tmp_path, chat)
    sys.path.insert(0, str(tmp_path))
    try:
        journal = run_experiment(json.loads(path.read_text()))
    finally:
        sys.path.remove(str(tmp_path))
    assert journal["status"] == "completed" and marker.exists()
    assert "harness" not in journal


def test_a_steady_state_not_met_before_the_method_fails_the_run_instead_of_passing_it(
        tmp_path: Path, chat: ChatTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    """chaostoolkit-lib 1.44 marks such a run "completed" and skips the method: no chaos ran, so no pass."""
    path, marker = plain_experiment(tmp_path, chat)
    document = json.loads(path.read_text())
    document["steady-state-hypothesis"]["probes"][0]["tolerance"] = 201  # the chat answers 200
    path.write_text(json.dumps(document))
    platform = FakePlatform(pods=[], declared=[], ingress_url=chat.url, ingress_host="ai-agent.test")
    monkeypatch.setattr("harness.run.runner.get_platform", lambda *_a, **_k: platform)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("HARNESS_BASELINE_S", "HARNESS_RECOVERY_S", "HARNESS_WARMUP_S"):
        monkeypatch.setenv(name, "1")
    code = main(["run", str(path), "--report-dir", str(tmp_path / "run"), "--no-progress",
                 "--locustfile", str(ROOT / "locustfiles" / "ai_agent.py"), "--users", "2", "--rate", "10",
                 "--slo-file", str(tmp_path / "slos.yaml")])
    assert code == 1 and not marker.exists()
