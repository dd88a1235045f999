"""The suite's aggregate report: summary.md, index.html (linking each run's report), junit.xml, suite.json."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from harness.errors import ExitCode, verdict_word
from harness.files import atomic_write
from harness.report.xmltext import xml_safe
from harness.suite.junit import write_junit
from harness.suite.model import INDEX, JUNIT, SUITE_JSON, SUMMARY, ExperimentResult, SuiteOutcome

RUN_REPORTS = ("report.html", "summary.md", "journal.json")  # what a run directory's link points at, first found
COLOURS = {ExitCode.PASS: "#1a7f37", ExitCode.FAIL: "#cf222e", ExitCode.INVALID: "#cf222e", ExitCode.INCONCLUSIVE: "#9a6700",
           ExitCode.INTERRUPTED: "#9a6700"}


def write_all(outcome: SuiteOutcome) -> None:
    directory = outcome.report_dir
    write_junit(outcome.results, directory / JUNIT, tag=outcome.tag)
    _write(directory / SUMMARY, summary_markdown(outcome))
    _write(directory / INDEX, index_html(outcome))
    _write(directory / SUITE_JSON, json.dumps(suite_json(outcome), indent=2, default=str))


def run_report(result: ExperimentResult) -> Path | None:
    """The run's own report if the run directory has one (report.html once harness.report writes it)."""
    if result.run_dir is None:
        return None
    for name in RUN_REPORTS:
        if (result.run_dir / name).is_file():
            return result.run_dir / name
    return None


def score_text(value: float | None) -> str | None:
    """A 0..100 score as shown in the reports."""
    return None if value is None else f"{value:.1f}/100"


def _run_score(result: ExperimentResult) -> str:
    if result.score is None:
        return "-"
    return score_text(result.score.value) or "-"


def _counts(outcome: SuiteOutcome) -> str:
    tally: dict[str, int] = {}
    for result in outcome.results:
        key = result.verdict_text.lower()
        tally[key] = tally.get(key, 0) + 1
    return ", ".join(f"{n} {key}" for key, n in tally.items())


def _slo_tally(result: ExperimentResult) -> str:
    slos = result.record.slos if result.record is not None else ()
    if not slos:
        return "-"
    return f"{sum(1 for r in slos if r.verdict == 'pass')}/{len(slos)}"


def _link(result: ExperimentResult, base: Path) -> str | None:
    report = run_report(result)
    return None if report is None else os.path.relpath(report, base)


def _reason(result: ExperimentResult) -> str:
    if result.error:
        return result.error
    return result.record.reason if result.record is not None else ""


def _breaches(result: ExperimentResult) -> list[str]:
    """`name` [phase]: value against objective, for every SLO result that is not a pass."""
    from harness.report.junit import failure_message

    if result.record is None:
        return []
    lines = []
    for row in result.record.slos:
        if row.verdict != "pass":
            kind = "" if row.verdict == "fail" else f" ({row.verdict})"
            lines.append(f"`{row.name}` [{row.phase}]: {failure_message(row)}{kind}")
    return lines


def summary_markdown(outcome: SuiteOutcome) -> str:
    lines = [f"# Suite `{outcome.tag}`: {verdict_word(outcome.exit_code)} (exit {outcome.exit_code})", "",
             f"{len(outcome.results)} experiment(s): {_counts(outcome)}."]
    score = score_text(outcome.score)
    if score:
        lines.append(f"Resilience score: **{score}** (the mean of the runs that have one).")
    lines += ["", "| experiment | verdict | exit | score | SLO checks passed | report |", "|---|---|---|---|---|---|"]
    for result in outcome.results:
        link = _link(result, outcome.report_dir)
        cell = f"[{link}]({link})" if link else "-"
        verdict = result.verdict_text
        lines.append(f"| {_md(result.name)} | {verdict} | {result.exit_code} | {_run_score(result)} | "
                     f"{_slo_tally(result)} | {cell} |")
    problems = []
    for result in outcome.results:
        if result.counted_exit_code == ExitCode.PASS:
            continue  # a pass, or a failing variant that failed as it should
        problems += [f"- **{_md(result.name)}** {_md(text)}" for text in _breaches(result)]
        reason = _reason(result)
        if reason:
            problems.append(f"- **{_md(result.name)}**: {_md(reason)}")
    if problems:
        lines += ["", "## What failed", "", *problems,
                  "", "What to fix, setting by setting: each run's summary.md and report.html."]
    lines += ["", f"JUnit: `{JUNIT}`. Each run's journal is in its directory."]
    return "\n".join(lines) + "\n"


def index_html(outcome: SuiteOutcome) -> str:
    esc = html.escape
    rows = []
    for result in outcome.results:
        link = _link(result, outcome.report_dir)
        report = f'<a href="{esc(link)}">{esc(Path(link).name)}</a>' if link else "-"
        verdict = result.verdict_text
        colour = COLOURS.get(result.counted_exit_code, "#cf222e")
        rows.append(f"<tr><td>{esc(result.name)}</td><td>{esc(result.title)}</td>"
                    f'<td style="color:{colour};font-weight:bold">{esc(verdict)}</td><td>{result.exit_code}</td>'
                    f"<td>{esc(_run_score(result))}</td><td>{esc(_slo_tally(result))}</td><td>{report}</td>"
                    f"<td>{esc(_reason(result))}</td></tr>")
    score = score_text(outcome.score)
    score_line = f"<p>Resilience score: <strong>{esc(score)}</strong></p>" if score else ""
    colour = COLOURS.get(outcome.exit_code, "#cf222e")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>harness suite {esc(outcome.tag)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head>
<body><h1>Suite <code>{esc(outcome.tag)}</code>:
<span id="verdict" style="color:{colour}">{esc(verdict_word(outcome.exit_code))}</span> (exit {outcome.exit_code})</h1>
<p>{esc(_counts(outcome))}</p>{score_line}
<table><thead><tr><th>experiment</th><th>title</th><th>verdict</th><th>exit</th><th>score</th><th>SLO checks passed</th>
<th>report</th><th>reason</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p><a href="{JUNIT}">{JUNIT}</a> · <a href="{SUMMARY}">{SUMMARY}</a> · <a href="{SUITE_JSON}">{SUITE_JSON}</a></p>
</body></html>
"""


def suite_json(outcome: SuiteOutcome) -> dict[str, Any]:
    experiments = []
    for r in outcome.results:
        slos = r.record.slos if r.record is not None else ()
        experiments.append({
            "name": r.name, "path": str(r.path), "title": r.title, "exit_code": r.exit_code,
            "verdict": verdict_word(r.exit_code), "ran": r.ran, "run_dir": str(r.run_dir) if r.run_dir else None,
            "expect_fail": r.expect_fail, "counted_exit_code": r.counted_exit_code,
            "error": r.error, "reason": _reason(r), "score": r.score.value if r.score is not None else None,
            "slo_checks": len(slos), "slo_checks_failed": sum(1 for row in slos if row.verdict != "pass"),
        })  # fmt: skip
    return {"tag": outcome.tag, "exit_code": outcome.exit_code, "verdict": verdict_word(outcome.exit_code),
            "score": outcome.score, "experiments": experiments}


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _write(path: Path, text: str) -> None:
    atomic_write(path, xml_safe(text))  # index.html and summary.md: XML 1.0 characters only
