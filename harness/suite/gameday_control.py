"""The game day as a Chaos Toolkit control: before each method action, the operator's go, skip or abort.

harness.suite.gameday adds this control to the experiment it runs and installs its Walk here, as
`harness run` installs its session in harness.run.control. With no walk installed (plain `chaos run`
of the written file) every hook does nothing.

Chaos Toolkit calls before_activity_control with the very dict it is about to run and reads the
activity's provider and pauses only after the hook returns, so:
    skip   swaps in the `skipped` stand-in for this one run (restored in after_activity_control);
    abort  raises InterruptExecution, which Chaos Toolkit handles as an interruption: rollbacks are
           played (harness run always plays them) and the harness control's after-experiment hook
           runs every registered undo before the verdict (exit 130).
Chaos Toolkit logs and swallows any other error a control raises and would then run the action, so
a failure to ask the operator is turned into an abort here.
"""

from __future__ import annotations

import logging
from typing import Any

from chaoslib.exceptions import InterruptExecution

from harness.chaos.context import current as run_context_now
from harness.suite.model import Decision
from harness.suite.walk import Walk

logger = logging.getLogger("harness.suite")
OPERATOR_ABORT = "operator (game day abort)"


def current() -> Walk | None:
    """The game day's walk in the current run context (harness.suite.gameday installs it); None
    under a plain run."""
    return run_context_now().walk


def before_method_control(context: Any, **_: Any) -> None:
    walk = current()
    if walk is not None:
        walk.in_method = True


def after_method_control(context: Any, **_: Any) -> None:
    walk = current()
    if walk is not None:
        walk.in_method = False


def before_activity_control(context: dict[str, Any], **_: Any) -> None:
    """Stops before each action of the method (not probes, not the hypothesis, not rollbacks)."""
    walk = current()
    if walk is None or not walk.in_method or context.get("type") != "action":
        return
    try:
        decision = walk.before_action(context)
    except Exception as exc:
        logger.exception("game day: could not ask the operator")
        decision = walk.record(str(context.get("name", "?")), "abort",
                               f"the game day could not ask the operator ({type(exc).__name__}: {exc})")
    if decision.decision == "skip":
        _skip(context, decision)
    elif decision.decision == "abort":
        _abort(decision)


def after_activity_control(context: dict[str, Any], **_: Any) -> None:
    walk = current()
    original = walk.restore_after_skip(context) if walk is not None else None
    if original is None:
        return
    context["provider"] = original["provider"]
    if original["pauses"] is not None:
        context["pauses"] = original["pauses"]


def skipped(activity: str, function: str = "", note: str = "") -> dict[str, Any]:
    """Stands in for an action the operator skipped; its run record in the journal says so."""
    return {"skipped_by_operator": True, "activity": activity, "function": function, "note": note}


def _skip(activity: dict[str, Any], decision: Decision) -> None:
    provider = activity.get("provider") or {}
    parts = [str(p) for p in (provider.get("module"), provider.get("func")) if p]
    function = ".".join(parts) or str(provider.get("type"))
    walk = current()
    if walk is not None:
        walk.remember_skipped(activity)
    activity.pop("pauses", None)
    activity["provider"] = {"type": "python", "module": __name__, "func": "skipped",
                            "arguments": {"activity": decision.activity, "function": function, "note": decision.note}}


def _abort(decision: Decision) -> None:
    from harness.run import control

    session = control.session()
    if session is not None and session.interrupted_by is None:
        session.interrupted_by = OPERATOR_ABORT
    raise InterruptExecution(f"the operator aborted the game day before {decision.activity!r}"
                             + (f": {decision.note}" if decision.note else ""))
