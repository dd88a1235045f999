"""The suite's JUnit XML: one <testsuite> per experiment, one <testcase> per SLO and phase, plus its verdict.

Built from each run's journal.json `harness.slo_results`, so CI systems show SLOs as they show tests:

    pass      a passing testcase
    fail      <failure type="slo_breach" message="value 812 vs objective <= 500">
    no_data   <failure type="no_data">   (no data is never a pass)
    error     <error type="slo_query_error">
Each testsuite also has a testcase "verdict" carrying the run's exit code, so a run that failed for
another reason (the hypothesis deviated, an invalid file, an interruption) is never green; experiments
left when the suite was interrupted are <skipped>.
"""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.suite.verdict import FAILED, INCONCLUSIVE, INTERRUPTED, INVALID, PASSED, word

if TYPE_CHECKING:
    from harness.suite.runner import ExperimentResult


def slo_message(result: dict[str, Any]) -> str:
    """`value 0.93 vs objective >= 0.99`, or what stood in for the value."""
    objective = f"{result.get('comparator', '')} {_number(result.get('objective'))}".strip()
    if result.get("value") is None:
        reason = "no data" if result.get("verdict") == "no_data" else "no value"
        detail = f": {result['detail']}" if result.get("detail") else ""
        return f"{reason} (objective {objective}){detail}"
    return f"value {_number(result['value'])} vs objective {objective}"


def testsuite_element(result: ExperimentResult, *, tag: str) -> ET.Element:
    """One experiment's <testsuite>."""
    suite = ET.Element("testsuite", name=result.name)
    properties = ET.SubElement(suite, "properties")
    for key, value in (("experiment", str(result.path)), ("title", result.title), ("exit_code", str(result.exit_code)),
                       ("verdict", word(result.exit_code)), ("run_dir", str(result.run_dir or ""))):
        ET.SubElement(properties, "property", name=key, value=value)
    classname = f"{tag}.{result.name}"
    cases = [_slo_case(r, classname) for r in result.slo_results] + [_verdict_case(result, classname)]
    suite.extend(cases)
    counts = {kind: sum(1 for c in cases if c.find(kind) is not None) for kind in ("failure", "error", "skipped")}
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(counts["failure"]))
    suite.set("errors", str(counts["error"]))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", f"{result.duration_s:.3f}")
    start = result.journal.get("start")
    if start:
        suite.set("timestamp", str(start)[:19])
    suite.set("hostname", socket.gethostname())
    return suite


def junit_document(results: Sequence[ExperimentResult], *, tag: str) -> ET.ElementTree:
    root = ET.Element("testsuites", name=f"harness suite {tag}")
    suites = [testsuite_element(r, tag=tag) for r in results]
    root.extend(suites)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    root.set("time", f"{sum(r.duration_s for r in results):.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(results: Sequence[ExperimentResult], path: Path, *, tag: str) -> Path:
    junit_document(results, tag=tag).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _slo_case(result: dict[str, Any], classname: str) -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=f"{result.get('name')} [{result.get('phase')}]")
    start, end = result.get("window_start"), result.get("window_end")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)):
        case.set("time", f"{max(0.0, end - start):.3f}")
    verdict = result.get("verdict")
    body = "\n".join(part for part in (f"source: {result.get('source', '')}", f"query: {result.get('query', '')}",
                                        result.get("detail") or "") if part)
    if verdict == "fail":
        ET.SubElement(case, "failure", type="slo_breach", message=slo_message(result)).text = body
    elif verdict == "no_data":
        ET.SubElement(case, "failure", type="no_data", message=slo_message(result)).text = body
    elif verdict != "pass":
        message = result.get("detail") or f"verdict {verdict!r}"
        ET.SubElement(case, "error", type="slo_query_error", message=str(message)).text = body
    return case


def _verdict_case(result: ExperimentResult, classname: str) -> ET.Element:
    case = ET.Element("testcase", classname=classname, name="verdict", time=f"{result.duration_s:.3f}")
    code = result.exit_code
    harness = result.journal.get("harness") or {}
    if code == PASSED:
        return case
    if not result.ran:
        ET.SubElement(case, "skipped", message=result.error or "not run")
    elif code == FAILED:
        ET.SubElement(case, "failure", type="verdict", message=_failure_reason(result))
    elif code == INCONCLUSIVE:
        reason = harness.get("inconclusive") or result.error or "no verdict possible"
        ET.SubElement(case, "error", type="inconclusive", message=f"inconclusive (exit 3): {reason}")
    elif code == INTERRUPTED:
        by = harness.get("interrupted_by") or "an interrupt"
        ET.SubElement(case, "error", type="interrupted", message=f"interrupted by {by} (exit 130)")
    else:
        reason = result.error or harness.get("error") or "invalid input or harness error"
        ET.SubElement(case, "error", type="invalid" if code == INVALID else "exit", message=f"{word(code)} (exit {code}): {reason}")
    return case


def _failure_reason(result: ExperimentResult) -> str:
    harness = result.journal.get("harness") or {}
    reasons = []
    if harness.get("interrupted_by") == "abort_on_breach":
        breach = harness.get("abort_on_breach") or {}
        reasons.append(f"chaos stopped early: {breach.get('name', 'an SLO')} breached (abort_on_breach)")
    if result.journal.get("deviated"):
        reasons.append("the steady-state hypothesis deviated")
    failed = [r for r in result.slo_results if r.get("verdict") != "pass"]
    if failed:
        reasons.append(f"{len(failed)} SLO check(s) not met: "
                       + "; ".join(f"{r.get('name')} [{r.get('phase')}] {slo_message(r)}" for r in failed[:5]))
    if result.journal.get("status") in ("failed", "aborted"):
        reasons.append(f"Chaos Toolkit status {result.journal['status']}")
    return "FAIL (exit 1): " + ("; ".join(reasons) or "see the run's journal")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}"
