"""summary.md: a short Markdown account of one run for pull requests and chat: verdict, score, SLOs, faults, fixes."""

from __future__ import annotations

from harness.report import perf
from harness.report.analysis import Analysis
from harness.report.rundata import RunRecord

MAX_FIXES = 8  # a chat message, not the whole report: the rest is in report.html


def render_summary(analysis: Analysis) -> str:
    """The Markdown text."""
    run = analysis.run
    lines = [f"## {run.verdict}: {_md(run.title)}", ""]
    lines.append(f"**Verdict:** {run.verdict} (exit {run.exit_code})"
                 + (f": {_md(run.reason)}" if run.reason else "") + f" · **Resilience score:** {analysis.score}")
    lines += ["", f"Run: `{run.run_dir}` · platform {run.platform} · {analysis.samples} requests sampled", ""]
    lines += perf.summary_lines(run.journal) + _slos(run) + _faults(run) + _fixes(analysis)
    lines += ["", "Full report with plots: `report.html`; for CI: `junit.xml`."]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Text safe in a Markdown table cell or line."""
    return text.replace("|", "\\|").replace("\n", " ")


def _slos(run: RunRecord) -> list[str]:
    if not run.slos:
        return ["No SLO results.", ""]
    lines = ["| SLO | phase | value | objective | verdict |", "|---|---|---:|---|---|"]
    for row in run.slos:
        value = "-" if row.value is None else f"{row.value:.4g}"
        verdict = row.verdict if row.verdict == "pass" else f"**{row.verdict}**"
        lines.append(f"| {_md(row.name)} | {row.phase} | {value} | {row.comparator} {row.objective:g} | {verdict} |")
    return lines + [""]


def _faults(run: RunRecord) -> list[str]:
    if not run.faults:
        return []
    lines = ["**Faults**", ""]
    for f in run.faults:
        inject = "-" if f.inject_latency_ms is None else f"{f.inject_latency_ms:g} ms"
        revert = "-" if f.revert_latency_ms is None else f"{f.revert_latency_ms:g} ms"
        lines.append(f"- {_md(f.label)}: +{f.start - run.origin:.1f} s to +{f.end - run.origin:.1f} s "
                     f"(inject {inject}, revert {revert})")
    for k in run.kills:
        recovery = "not seen ready again" if k.recovery_s is None else f"ready again after {k.recovery_s:.2f} s"
        lines.append(f"- pod {k.pod} killed at +{k.killed_at - run.origin:.1f} s, {recovery}")
    return lines + [""]


def _fixes(analysis: Analysis) -> list[str]:
    if analysis.fix_note:
        return ["**What to fix**", "", analysis.fix_note]
    if not analysis.fixes:
        return []
    lines = ["**What to fix**", ""]
    for fix in analysis.fixes[:MAX_FIXES]:
        during = "; ".join(fix.faults) or "no fault in effect"
        lines.append(f"1. `{fix.resource}` `{fix.field}`: {_md(fix.text)} "
                     f"_(broke: {_md('; '.join(fix.slos))}; during: {_md(during)})_")
    if len(analysis.fixes) > MAX_FIXES:
        lines.append(f"\n…and {len(analysis.fixes) - MAX_FIXES} more in report.html.")
    return lines
