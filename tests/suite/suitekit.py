"""Stand-ins for the suite tests: a platform that records up/down, and a `harness run` that answers from a
script instead of running a mesh (the suite's own logic is what is under test; real runs are elsewhere)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.run.runner import RunOutcome


def write_experiment(directory: Path, name: str, tags: list[str]) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"version": "1.0.0", "title": f"{name} title", "description": name,
                                    "tags": tags, "method": []}))
    return path


def slo(name: str, phase: str, verdict: str, value: float | None, objective: float = 0.99,
        comparator: str = ">=") -> dict[str, Any]:
    return {"name": name, "phase": phase, "query": f"sum(rate({name}[30s]))", "value": value, "objective": objective,
            "comparator": comparator, "verdict": verdict, "window_start": 100.0, "window_end": 110.0,
            "source": "mesh", "detail": "" if value is not None else "Prometheus returned no series"}


def passing_slos() -> list[dict[str, Any]]:
    return [slo("ai-agent-availability", phase, "pass", 0.999) for phase in ("baseline", "chaos", "recovery")]


@dataclass
class FakeRun:
    """Answers each experiment by file stem: an exit code (with a journal), or an exception to raise."""

    answers: dict[str, Any]
    slos: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    write_report_for: set[str] = field(default_factory=set)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, path: Path, *, platform_name: str, report_dir: Path | None, keep_up: bool,
                 progress: bool) -> RunOutcome:
        self.calls.append({"name": path.stem, "platform_name": platform_name, "report_dir": report_dir,
                           "keep_up": keep_up})
        answer = self.answers.get(path.stem, 0)
        assert report_dir is not None
        report_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(answer, BaseException):
            raise answer
        status = "interrupted" if answer == 130 else "completed"
        journal = {"experiment": {"title": f"{path.stem} title"}, "status": status, "start": "2024-05-01T02:00:00",
                   "deviated": False,
                   "harness": {"slo_results": self.slos.get(path.stem, passing_slos()), "exit_code": answer,
                               "inconclusive": "Prometheus unreachable" if answer == 3 else None,
                               "interrupted_by": "SIGTERM" if answer == 130 else None}}
        (report_dir / "journal.json").write_text(json.dumps(journal))
        if path.stem in self.write_report_for:
            (report_dir / "report.html").write_text("<html>run report</html>")
        return RunOutcome(answer, report_dir, journal)
