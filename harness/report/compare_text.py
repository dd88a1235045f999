"""A comparison as a plain-text table for the terminal and CI logs, regressions marked and listed last."""

from __future__ import annotations

from harness.errors import ExitCode
from harness.report.compare import Comparison, Delta
from harness.report.xmltext import xml_safe

METRIC_NAMES = {"p50_ms": "p50 ms", "p95_ms": "p95 ms", "p99_ms": "p99 ms", "availability": "availability %",
                "throughput_rps": "req/s", "value": "value"}
HEADERS = ("service / SLO", "phase", "metric", "baseline", "run", "change", "limit", "")


def render_comparison(comparison: Comparison) -> str:
    """The readable table: one row per metric, service and phase; then the verdict."""
    lines = [f"run:       {comparison.run}", f"baseline:  {comparison.baseline}",
             f"experiment: {comparison.experiment}", f"tolerance: {comparison.tolerance.describe()}"]
    lines += [f"note: {note}" for note in comparison.notes]
    rows = [HEADERS] + [_row(d) for d in comparison.deltas]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    right = {3, 4, 5, 6}
    lines.append("")
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    regressions = comparison.regressions
    lines.append("")
    if comparison.run_exit_code != ExitCode.PASS:
        lines.append(f"NOT SIGNED OFF: the run's own verdict is {ExitCode.of(comparison.run_exit_code).word} "
                     f"(exit {comparison.run_exit_code})")
    if not regressions and comparison.run_exit_code == ExitCode.PASS:
        lines.append(f"no regressions past the tolerance ({len(comparison.deltas)} metrics compared)")
    elif not regressions:
        lines.append(f"no metric regressed past the tolerance ({len(comparison.deltas)} metrics compared)")
    else:
        lines.append(f"{len(regressions)} regression{'s' if len(regressions) != 1 else ''} past the tolerance:")
        lines += [f"  {_sentence(d)}" for d in regressions]
    return xml_safe("\n".join(lines) + "\n")  # request names come from a locustfile: no control characters


def _value(delta: Delta, value: float | None) -> str:
    if value is None:
        return "-"
    if delta.metric == "availability":
        return f"{value * 100:.3f}"
    return f"{value:.4g}" if delta.metric == "value" else f"{value:.1f}"


def _row(delta: Delta) -> tuple[str, ...]:
    change = "-" if delta.change is None else f"{delta.change:+.1f}{'%' if delta.unit == '%' else ' pts'}"
    if delta.limit is None:
        limit = "-"
    else:
        worse_sign = "+" if delta.worse_if_higher else "-"
        limit = f"{worse_sign}{delta.limit:g}{'%' if delta.unit == '%' else ' pts'}"
    flag = "REGRESSION" if delta.regression else ""
    if delta.note:
        flag = f"{flag} ({delta.note})".strip()
    return (delta.subject, delta.phase, METRIC_NAMES.get(delta.metric, delta.metric), _value(delta, delta.baseline),
            _value(delta, delta.run), change, limit, flag)


def _sentence(delta: Delta) -> str:
    unit = "%" if delta.unit == "%" else " pts"
    change = "" if delta.change is None else f" ({delta.change:+.1f}{unit}, tolerance {delta.limit:g}{unit})"
    return (f"{delta.subject} in {delta.phase}: {METRIC_NAMES.get(delta.metric, delta.metric)} "
            f"{_value(delta, delta.baseline)} -> {_value(delta, delta.run)}{change}"
            + (f"; {delta.note}" if delta.note else ""))
