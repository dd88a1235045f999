"""`harness signoff`: one go/no-go for a release: every `release` experiment, each against its baseline.

The experiments run as a suite (harness.suite.runner: one mesh, one run directory each); then each run
is compared with its experiment's saved baseline (harness.report compare, with the tolerance given).
The verdict is GO (exit 0) only when every experiment passed and nothing regressed; otherwise the
worst of: a run's own verdict, a regression (exit 1), a missing baseline (exit 3: nothing to compare
with is no evidence of no regression). signoff.md and signoff.html in the suite's directory say what
regressed, by how much, and where the evidence is; signoff.json holds the same for machines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from html import escape
from pathlib import Path
from typing import Any

from harness.errors import ExitCode, HarnessError
from harness.files import atomic_write
from harness.platforms.base import Platform
from harness.suite.model import RunFunction

SIGNOFF_MD, SIGNOFF_HTML, SIGNOFF_JSON = "signoff.md", "signoff.html", "signoff.json"
RELEASE_TAG = "release"


@dataclass(frozen=True)
class Evidence:
    """One experiment of the sign-off: its run, its baseline and what regressed."""

    title: str
    path: str
    exit_code: int
    verdict: str  # the run's own
    run_dir: str | None
    reason: str = ""
    baseline: str | None = None
    regressions: list[dict[str, Any]] = field(default_factory=list)
    capacity: str | None = None  # "capacity at SLO: N req/s ..." of a capacity run
    code: int = ExitCode.PASS  # this experiment's part of the sign-off


@dataclass(frozen=True)
class Signoff:
    exit_code: int
    report_dir: Path
    evidence: tuple[Evidence, ...]

    @property
    def go(self) -> bool:
        return self.exit_code == ExitCode.PASS


def run_signoff(*, experiments_dir: Path, platform_name: str, tolerance: str | None = None,
                report_dir: Path | None = None, store: Path | None = None, tag: str = RELEASE_TAG,
                keep_up: bool = False, progress: bool = True, run: RunFunction | None = None,
                get_platform: Callable[[str], Platform] | None = None) -> Signoff:
    """Run the `tag` experiments, compare each with its baseline, write the one report."""
    from harness.report import parse_tolerance
    from harness.report.baseline import DEFAULT_STORE
    from harness.suite.runner import run_suite

    limits = parse_tolerance(tolerance)  # bad input fails before anything runs
    outcome = run_suite(tag, experiments_dir=experiments_dir, platform_name=platform_name, report_dir=report_dir,
                        keep_up=keep_up, progress=progress, run=run, get_platform=get_platform)
    evidence = tuple(_evidence(result, limits, store or DEFAULT_STORE) for result in outcome.results)
    code = ExitCode.worst([e.code for e in evidence]) if evidence else ExitCode.INCONCLUSIVE
    signoff = Signoff(exit_code=code, report_dir=outcome.report_dir, evidence=evidence)
    _write(signoff, tag, limits.describe())
    return signoff


def _evidence(result: Any, limits: Any, store: Path) -> Evidence:
    from harness.report import baseline_for, compare, comparison_exit_code

    harness = (result.journal or {}).get("harness") or {}
    capacity = (harness.get("capacity") or {}).get("headline")
    reason = result.error or harness.get("inconclusive") or ""
    base = Evidence(title=result.title, path=str(result.path), exit_code=result.exit_code,
                    verdict=ExitCode.of(result.exit_code).word, run_dir=str(result.run_dir) if result.run_dir else None,
                    reason=reason, capacity=capacity, code=result.exit_code)
    if result.run_dir is None or not result.ran or not (Path(result.run_dir) / "journal.json").is_file():
        return base
    try:
        baseline = baseline_for(Path(result.run_dir), store)
    except HarnessError as exc:
        return replace(base, reason=f"{reason}; baseline: {exc}".strip("; "),
                       code=ExitCode.worst([result.exit_code, exc.exit_code]))
    if baseline is None:
        why = (f"no baseline saved for this experiment: nothing to compare with (after a run you sign off, "
               f"`harness baseline save {result.run_dir}`)")
        return replace(base, reason=f"{reason}; {why}".strip("; "),
                       code=ExitCode.worst([result.exit_code, ExitCode.INCONCLUSIVE]))
    comparison = compare(Path(result.run_dir), baseline, limits)
    regressions = [{"subject": d.subject, "phase": d.phase, "metric": d.metric, "baseline": d.baseline, "run": d.run,
                    "change": None if d.change is None else round(d.change, 2), "unit": d.unit, "limit": d.limit,
                    "note": d.note} for d in comparison.regressions]
    return replace(base, baseline=str(baseline), regressions=regressions, code=comparison_exit_code(comparison))


def _change(r: dict[str, Any]) -> str:
    if r["change"] is None:
        return r["note"] or "no value"
    limit = "" if r["limit"] is None else f", tolerance {r['limit']:g}{r['unit']}"
    return f"{r['change']:+g}{r['unit']}{limit}" + (f"; {r['note']}" if r["note"] else "")


def _g(value: Any) -> str:
    return "none" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _write(signoff: Signoff, tag: str, tolerance: str) -> None:
    word = "GO" if signoff.go else "NO-GO"
    verdict = f"{word}: {ExitCode.of(signoff.exit_code).word} (exit {signoff.exit_code})"
    lines = [f"# Release sign-off: {verdict}", "", f"Experiments tagged `{tag}`; tolerance: {tolerance}.", "",
             "| experiment | run verdict | baseline | regressions | sign-off |", "|---|---|---|---:|---|"]
    for e in signoff.evidence:
        lines.append(f"| {e.title} | {e.verdict} | {'yes' if e.baseline else '**none**'} | {len(e.regressions)} | "
                     f"{ExitCode.of(e.code).word} |")
    for e in signoff.evidence:
        lines += ["", f"## {e.title}", "", f"- run: `{e.run_dir}` ({e.verdict}, exit {e.exit_code})"
                  + (f": {e.reason}" if e.reason else ""), f"- baseline: `{e.baseline}`" if e.baseline else
                  "- baseline: none"]
        if e.capacity:
            lines.append(f"- {e.capacity}")
        for r in e.regressions:
            lines.append(f"- regressed: {r['subject']} {r['metric']} in {r['phase']}: {_g(r['baseline'])} -> "
                         f"{_g(r['run'])} ({_change(r)})")
    # Reasons carry error messages, which may hold terminal colour codes: as in the suite's own reports
    from harness.report.xmltext import xml_safe

    atomic_write(signoff.report_dir / SIGNOFF_MD, xml_safe("\n".join(lines) + "\n"))
    atomic_write(signoff.report_dir / SIGNOFF_JSON, json.dumps(
        {"verdict": word, "exit_code": int(signoff.exit_code), "tag": tag, "tolerance": tolerance,
         "experiments": [e.__dict__ for e in signoff.evidence]}, indent=2, default=str) + "\n")
    atomic_write(signoff.report_dir / SIGNOFF_HTML, xml_safe(_html(signoff, verdict, tag, tolerance)))


def _html(signoff: Signoff, verdict: str, tag: str, tolerance: str) -> str:
    from harness.report.perf import capacity_html

    rows = []
    curves: list[tuple[str, dict[str, Any]]] = []
    for e in signoff.evidence:
        regressed = "<br>".join(escape(f"{r['subject']} {r['metric']} ({r['phase']}): {_change(r)}")
                                for r in e.regressions) or "none"
        link = f'<a href="{escape(Path(e.run_dir).name)}/report.html">report</a>' if e.run_dir else ""
        rows.append(f"<tr><td>{escape(e.title)}</td><td>{escape(e.verdict)}</td><td>{escape(e.reason)}</td>"
                    f"<td>{'saved' if e.baseline else '<b>none</b>'}</td><td>{regressed}</td>"
                    f"<td>{escape(e.capacity or '')}</td><td>{link}</td></tr>")
        journal = _journal(e.run_dir)
        if (journal.get("harness") or {}).get("capacity"):
            curves.append((e.title, journal))
    chart = ""
    if curves:
        first, *rest = curves
        chart = capacity_html(first[1], [(title, j["harness"]["capacity"]) for title, j in rest])
    colour = "#2a7f62" if signoff.go else "#b03030"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sign-off</title><style>"
            "body{font:14px sans-serif;margin:20px}td,th{border:1px solid #ddd;padding:3px 6px}"
            "table{border-collapse:collapse}</style></head><body>"
            f"<h1 style=\"color:{colour}\">Release sign-off: {escape(verdict)}</h1>"
            f"<p>Experiments tagged <code>{escape(tag)}</code>; tolerance: {escape(tolerance)}.</p>"
            "<table><tr><th>experiment</th><th>run verdict</th><th>why</th><th>baseline</th><th>regressed</th>"
            "<th>capacity</th><th>evidence</th></tr>" + "".join(rows) + "</table>" + chart + "</body></html>\n")


def _journal(run_dir: str | None) -> dict[str, Any]:
    if not run_dir:
        return {}
    try:
        return json.loads((Path(run_dir) / "journal.json").read_text())
    except (OSError, ValueError):
        return {}
