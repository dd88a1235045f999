"""junit.xml: one testsuite per experiment, one testcase per SLO and phase, so CI shows SLOs as it shows tests.

A failed SLO or one without data is a <failure message="value X against objective >= Y">; an SLO
that could not be evaluated is an <error>. A run whose verdict the SLOs do not explain (a deviated
hypothesis, an interruption, a harness error) gets one more testcase, classname "experiment", saying why.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from harness.errors import ExitCode
from harness.report.rundata import RunRecord, SloRow
from harness.report.score import Score
from harness.report.xmltext import sanitize_tree


def failure_message(row: SloRow) -> str:
    """e.g. "value 0.572 against objective >= 0.995", or "no data against objective >= 0.995"."""
    value = "no data" if row.value is None else f"value {row.value:.6g}"
    return f"{value} against objective {row.comparator} {row.objective:g}"


def render_junit(runs: Sequence[tuple[RunRecord, Score]]) -> str:
    """A <testsuites> document with one <testsuite> per run (a suite of runs shares one file)."""
    root = ET.Element("testsuites", name="harness")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    seconds = 0.0
    for run, score in runs:
        suite = _suite(run, score)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
        seconds += float(suite.get("time", "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    sanitize_tree(root)  # an error message may carry ANSI colour codes, which XML 1.0 forbids
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(run: RunRecord, score: Score) -> ET.Element:
    suite = ET.Element("testsuite", name=run.title, hostname=str(run.journal.get("node") or "localhost"),
                       timestamp=_timestamp(run), time=f"{float(run.journal.get('duration') or 0):.3f}")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("verdict", run.verdict), ("exit_code", str(run.exit_code)), ("resilience_score", str(score)),
                        ("run_dir", str(run.run_dir)), ("platform", run.platform)):
        ET.SubElement(properties, "property", name=name, value=value)
    failures = errors = 0
    for row in run.slos:
        case = ET.SubElement(suite, "testcase", classname=row.name, name=row.phase,
                             time=f"{max(0.0, row.window_end - row.window_start):.3f}")
        text = f"{row.detail}\nquery: {row.query}".strip()
        if row.verdict in ("fail", "no_data"):
            ET.SubElement(case, "failure", message=failure_message(row), type=row.verdict).text = text
            failures += 1
        elif row.verdict == "error":
            message = row.detail or "the SLO could not be evaluated"
            ET.SubElement(case, "error", message=message, type="error").text = text
            errors += 1
    extra = _verdict_case(run)
    if extra is not None:
        suite.append(extra)
        failures += extra.find("failure") is not None
        errors += extra.find("error") is not None
    suite.set("tests", str(len(suite.findall("testcase"))))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    return suite


def _verdict_case(run: RunRecord) -> ET.Element | None:
    """A testcase for what the SLO testcases do not show: a deviated hypothesis, an interruption, an error."""
    slo_failed = any(row.verdict in ("fail", "no_data") for row in run.slos)
    slo_error = any(row.verdict == "error" for row in run.slos)
    case = ET.Element("testcase", classname="experiment", name="verdict", time="0.000")
    reason = run.reason or run.verdict
    if run.exit_code == ExitCode.FAIL and not slo_failed:
        ET.SubElement(case, "failure", message=reason, type="deviated")
    elif run.exit_code in (ExitCode.INVALID, ExitCode.INTERRUPTED) or (run.exit_code == ExitCode.INCONCLUSIVE
                                                                       and not slo_error):
        ET.SubElement(case, "error", message=f"{run.verdict} (exit {run.exit_code}): {reason}",
                      type=run.verdict.lower())
    else:
        return None
    return case


def _timestamp(run: RunRecord) -> str:
    """The run's start as JUnit wants it: ISO 8601 in UTC without a zone suffix."""
    try:
        start = dt.datetime.fromisoformat(str(run.journal.get("start")))
    except ValueError:
        start = dt.datetime.fromtimestamp(run.origin, dt.timezone.utc)
    if start.tzinfo is not None:
        start = start.astimezone(dt.timezone.utc)
    return start.replace(tzinfo=None).isoformat(timespec="seconds")
