"""A run's verdict: its exit code and the table printed at the end."""

from __future__ import annotations

import sys
from typing import Any

from harness.chaos.audit import audit_run, changed_by_others
from harness.chaos.context import current
from harness.errors import ExitCode, verdict_word


def record_audit(harness: dict[str, Any], session: Any, platform: Any, expected: dict[Any, Any] | None) -> list[str]:
    """The end-of-run audit into the run's `harness` journal section: what the run left is its error
    (exit 2), what others changed while it ran makes it inconclusive (exit 3). Returns the leftovers,
    for the caller to name where its user reads (stderr, or Chaos Toolkit's log)."""
    leftovers, others = audit_run(platform, expected, current().undo.touched_resources())
    harness["residual_faults"] = leftovers
    harness["changed_during_run"] = others
    if others:  # no fault of this run: its measurements are in doubt, not the next run's mesh
        harness["inconclusive"] = "; ".join(r for r in (harness.get("inconclusive"), changed_by_others(others)) if r)
    if leftovers:
        session.error = session.error or "faults left in the mesh after the run: " + "; ".join(leftovers)
        harness["error"] = session.error
    return leftovers


def exit_code(journal: dict[str, Any], session: Any) -> ExitCode:
    """0 pass; 1 an SLO breached or the hypothesis deviated; 3 inconclusive; 130 interrupted."""
    harness = journal.get("harness") or {}
    if session.error or "slo_results" not in harness:
        return ExitCode.INVALID
    if session.interrupted_by == "abort_on_breach":
        return ExitCode.FAIL
    if journal.get("status") == "interrupted":
        return ExitCode.INTERRUPTED
    if harness.get("inconclusive"):
        return ExitCode.INCONCLUSIVE
    results = harness.get("slo_results") or []
    if not_met_before(journal):
        return ExitCode.FAIL
    if journal.get("deviated") or journal.get("status") in ("failed", "aborted") or failed_activities(journal):
        return ExitCode.FAIL
    if any(r["verdict"] != "pass" for r in results):
        return ExitCode.FAIL
    return ExitCode.PASS


def not_met_before(journal: dict[str, Any]) -> bool:
    """The steady state did not hold before the method, so the chaos never ran: chaostoolkit-lib 1.44
    (chaoslib/run.py) still calls such a run "completed", without "deviated"; it cannot pass."""
    before = (journal.get("steady_states") or {}).get("before")
    return isinstance(before, dict) and before.get("steady_state_met") is False


def failed_activities(journal: dict[str, Any]) -> list[str]:
    """Method activities that raised: the chaos did not happen as designed, so the run cannot pass."""
    return [run["activity"]["name"] for run in journal.get("run") or [] if run.get("status") == "failed"]


def verdict_table(journal: dict[str, Any], session: Any, code: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False)
    harness = journal.get("harness") or {}
    table = Table("SLO", "phase", "source", "value", "objective", "verdict", title="SLOs")
    for result in harness.get("slo_results") or []:
        value = "-" if result["value"] is None else f"{result['value']:.4g}"
        colour = "green" if result["verdict"] == "pass" else "red"
        table.add_row(result["name"], result["phase"], result["source"], value,
                      f"{result['comparator']} {result['objective']:g}", f"[{colour}]{result['verdict']}[/]")
    console.print(table)
    if harness.get("capacity"):
        console.print(harness["capacity"]["headline"], markup=False)
    for kill in (harness.get("chaos") or {}).get("pod_kills", []):
        recovery = "not seen" if kill["recovery_s"] is None else f"{kill['recovery_s']:.2f} s"
        console.print(f"pod {kill['pod']} killed, ready again after {recovery}")
    colour = {ExitCode.PASS: "green", ExitCode.FAIL: "red", ExitCode.INVALID: "red"}.get(ExitCode.of(code), "yellow")
    failed = failed_activities(journal)
    reason = harness.get("inconclusive") or ("deviated" if journal.get("deviated") else "")
    if not_met_before(journal):
        reason = "the steady state did not hold before the method, so the chaos did not run"
    if failed:
        reason = f"activities failed: {', '.join(failed)}"
    if session.interrupted_by:
        reason = f"interrupted by {session.interrupted_by}"
    console.print(f"verdict: [{colour}]{verdict_word(code)}[/] (exit {code}) {reason}  journal: {session.run_dir}/journal.json")
    if session.error:  # the cause (e.g. Locust's log tail), printed as is: it is not rich markup
        print(f"harness: error: {session.error}", file=sys.stderr)
