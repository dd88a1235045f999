"""The operator's side of a game day: each action shown with the live SLOs, then go, skip or abort."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.suite.model import Choice, Decision, Step

__all__ = ["ANSWERS", "MAX_ASKS", "REHEARSAL_NOTE", "Walk", "step_of"]

logger = logging.getLogger("harness.suite")
ANSWERS: dict[str, Choice] = {"g": "go", "go": "go", "s": "skip", "skip": "skip", "a": "abort", "abort": "abort"}
MAX_ASKS = 5  # unclear answers in a row before the walk stops safely (abort)
REHEARSAL_NOTE = "unattended rehearsal (--yes)"


def step_of(activity: dict[str, Any], index: int, total: int) -> Step:
    provider = activity.get("provider") or {}
    kind = provider.get("type")
    if kind == "python":
        function = f"{provider.get('module')}.{provider.get('func')}"
    elif kind == "process":
        function = str(provider.get("path"))
    else:
        function = f"{kind} {provider.get('url', '')}".strip()
    return Step(index, total, str(activity.get("name", "?")), function, provider.get("arguments") or {})


class Walk:
    """The operator's side of one game day; gameday_control calls `before_action` before each action."""

    def __init__(self, *, total: int, prompt: Callable[[str], str], show: Callable[[str], None], yes: bool,
                 slo_state: Callable[[], Sequence[str]]) -> None:
        self.total = total
        self.prompt = prompt
        self.show = show
        self.yes = yes
        self.slo_state = slo_state
        self.decisions: list[Decision] = []
        self.in_method = False  # set by the control between before/after_method_control
        self._skipped: dict[int, dict[str, Any]] = {}  # id(activity) -> the provider and pauses a skip replaced
        self._lock = threading.Lock()  # Chaos Toolkit may call the control hooks from its threads
        self._seen = 0

    def before_action(self, activity: dict[str, Any]) -> Decision:
        """Show the step and the live SLOs, then ask (or, with yes, answer go)."""
        self._seen += 1
        step = step_of(activity, self._seen, max(self.total, self._seen))
        for line in [*step.describe(), *self._live()]:
            self.show(line)
        if self.yes:
            return self.record(step.name, "go", REHEARSAL_NOTE)
        try:
            choice, note = self._ask()
        except KeyboardInterrupt:
            self.record(step.name, "abort", "interrupted while waiting for the operator")
            raise
        return self.record(step.name, choice, note)

    def remember_skipped(self, activity: dict[str, Any]) -> None:
        """What a skip replaces in the activity Chaos Toolkit is about to run, to put back afterwards."""
        with self._lock:
            self._skipped[id(activity)] = {"provider": activity.get("provider") or {},
                                           "pauses": activity.get("pauses")}

    def restore_after_skip(self, activity: dict[str, Any]) -> dict[str, Any] | None:
        """The provider and pauses a skip replaced in this activity (once), or None if it was not skipped."""
        with self._lock:
            return self._skipped.pop(id(activity), None)

    def record(self, activity: str, choice: Choice, note: str) -> Decision:
        decision = Decision(activity=activity, decision=choice, note=note, at=time.time())
        self.decisions.append(decision)
        logger.info("game day: %s %s%s", choice, activity, f" ({note})" if note else "")
        return decision

    def _live(self) -> list[str]:
        try:
            return list(self.slo_state())
        except Exception as exc:  # the live view is advice; the operator can still decide without it
            return [f"live SLOs: not available ({type(exc).__name__}: {exc})"]

    def _ask(self) -> tuple[Choice, str]:
        try:
            for _ in range(MAX_ASKS):
                answer = self.prompt("go, skip or abort? [g/s/a] ").strip().lower()
                if answer in ANSWERS:
                    break
                self.show(f"please answer go, skip or abort (not {answer!r})")
            else:
                return "abort", f"no clear answer after {MAX_ASKS} tries"
            note = self.prompt("note (optional, Enter for none): ").strip()
        except EOFError:
            return "abort", "no operator input (end of input)"
        return ANSWERS[answer], note
