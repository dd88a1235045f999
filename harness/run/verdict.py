"""A run's verdict: its exit code and the table printed at the end."""

from __future__ import annotations

from typing import Any

PASS, FAIL, INVALID, INCONCLUSIVE, INTERRUPTED = 0, 1, 2, 3, 130  # INVALID: bad input or harness error


def exit_code(journal: dict[str, Any], session: Any) -> int:
    """0 pass; 1 an SLO breached or the hypothesis deviated; 3 inconclusive; 130 interrupted."""
    harness = journal.get("harness") or {}
    if session.error or "slo_results" not in harness:
        return INVALID
    if session.interrupted_by == "abort_on_breach":
        return FAIL
    if journal.get("status") == "interrupted":
        return INTERRUPTED
    if harness.get("inconclusive"):
        return INCONCLUSIVE
    results = harness.get("slo_results") or []
    if journal.get("deviated") or journal.get("status") in ("failed", "aborted") or failed_activities(journal):
        return FAIL
    if any(r["verdict"] != "pass" for r in results):
        return FAIL
    return PASS


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
    for kill in (harness.get("chaos") or {}).get("pod_kills", []):
        recovery = "not seen" if kill["recovery_s"] is None else f"{kill['recovery_s']:.2f} s"
        console.print(f"pod {kill['pod']} killed, ready again after {recovery}")
    words = {0: "[green]PASS[/]", 1: "[red]FAIL[/]", 2: "[red]ERROR[/]", 3: "[yellow]INCONCLUSIVE[/]", 130: "[yellow]INTERRUPTED[/]"}
    failed = failed_activities(journal)
    reason = harness.get("inconclusive") or ("deviated" if journal.get("deviated") else "")
    if failed:
        reason = f"activities failed: {', '.join(failed)}"
    if session.interrupted_by:
        reason = f"interrupted by {session.interrupted_by}"
    console.print(f"verdict: {words.get(code, code)} (exit {code}) {reason}  journal: {session.run_dir}/journal.json")
