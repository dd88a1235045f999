"""Performance parts of a run's reports: the load generator's CPU beside throughput, and capacity at SLO.

Both read the journal's `harness.generator` (harness/run/generator.py) and `harness.capacity`
(harness/run/capacity.py); a run without them shows nothing here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import numpy as np

from harness.report.svg import PALETTE, Line, chart

CURVE_COLOURS = ("#2e6fbb", "#c0392b", "#2a7f62", "#e08a1e")


def _num(value: Any, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def generator_html(journal: Mapping[str, Any]) -> str:
    """The load generator's CPU per judged window, beside the requests/s it sent."""
    generator = (journal.get("harness") or {}).get("generator")
    if not generator:
        return ""
    rows = []
    for name, w in generator["windows"].items():
        state = '<span class="fail">saturated</span>' if w["saturated"] else "ok"
        rows.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{_num(w.get('throughput_rps'))}</td>"
                    f"<td class=\"num\">{_num(w['busiest_percent'])}</td><td>{escape(str(w['busiest_role'] or '-'))}</td>"
                    f"<td class=\"num\">{_num(w['machine_percent'])}</td><td class=\"num\">{w['locust_warnings']}</td>"
                    f"<td>{state}</td></tr>")
    advice = f"<p><b>{escape(generator['advice'])}</b></p>" if generator.get("advice") else ""
    return ('<section id="generator"><h2>Load generator</h2><p class="muted">CPU of the busiest Locust process '
            f"(% of one core; above {generator['threshold_percent']:g}% the verdict is inconclusive) and of the "
            "whole machine, beside the requests/s Locust sent in each judged window.</p>" + advice
            + "<table><tr><th>window</th><th>req/s sent</th><th>Locust CPU %</th><th>process</th>"
              "<th>machine CPU %</th><th>Locust CPU warnings</th><th>generator</th></tr>"
            + "".join(rows) + "</table></section>")


def capacity_html(journal: Mapping[str, Any], others: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> str:
    """Capacity at SLO: the verdict line, the latency-throughput curve (with `others`: (label,
    capacity section) of other runs, e.g. the pod-kill variant) and the table of steps."""
    capacity = (journal.get("harness") or {}).get("capacity")
    if not capacity:
        return ""
    title = (journal.get("experiment") or {}).get("title", "this run")
    curves = [(title, capacity)] + [(label, c) for label, c in others if c]
    parts = ['<section id="capacity"><h2>Capacity at SLO</h2>', f"<p><b>{escape(headline(capacity))}</b></p>"]
    parts.append(_curve(curves))
    rows = []
    for step in capacity["steps"]:
        broken = "; ".join(f"{b['slo']} {_num(b['value'], '.4g')} (objective {b['comparator']} {b['objective']:g})"
                           for b in step["broken"])
        verdict = '<span class="pass">held</span>' if step["held"] else '<span class="fail">broke</span>'
        rows.append(f"<tr><td class=\"num\">{_num(step['target_rps'], 'g')}</td><td class=\"num\">{step['users']}</td>"
                    f"<td class=\"num\">{_num(step['throughput_rps'])}</td><td class=\"num\">{_num(step['p50_ms'])}</td>"
                    f"<td class=\"num\">{_num(step['p95_ms'])}</td><td class=\"num\">{_num(step['p99_ms'])}</td>"
                    f"<td class=\"num\">{_num(None if step['error_ratio'] is None else step['error_ratio'] * 100, '.3f')}</td>"
                    f"<td class=\"num\">{_num(step.get('generator_percent'))}</td><td>{verdict}</td>"
                    f"<td>{escape(broken or step.get('why', ''))}</td></tr>")
    per_service = ", ".join(f"{escape(s)} {_num(v, 'g')} req/s" if v is not None else f"{escape(s)}: below the first step"
                            for s, v in (capacity.get("per_service") or {}).items())
    if per_service:
        parts.append(f"<p>Per service: {per_service}</p>")
    parts.append("<table><tr><th>target req/s</th><th>users</th><th>req/s</th><th>p50 ms</th><th>p95 ms</th>"
                 "<th>p99 ms</th><th>errors %</th><th>Locust CPU %</th><th>SLOs</th><th>why</th></tr>"
                 + "".join(rows) + "</table></section>")
    return "".join(parts)


def headline(capacity: Mapping[str, Any]) -> str:
    """ "capacity at SLO: N req/s" and where it broke."""
    value = capacity.get("capacity_rps")
    text = (f"capacity at SLO: {value:g} req/s" if value is not None
            else "capacity at SLO: none (the SLOs broke at the first step)")
    broke = capacity.get("broke_at")
    if broke:
        text += f"; broke at {broke['target_rps']:g} req/s: {broke['why']}"
    elif capacity.get("steps"):
        text += " (held up to the ceiling)"
    blips = capacity.get("blips") or []
    if blips:
        text += (f"; not counted as the break, as the next step held: {', '.join(format(b['target_rps'], 'g') for b in blips)}"
                 " req/s")
    return text


def _curve(curves: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    lines = []
    top = 1.0
    for index, (label, capacity) in enumerate(curves):
        steps = [s for s in capacity["steps"] if s["throughput_rps"] is not None]
        if not steps:
            continue
        xs = np.array([s["throughput_rps"] for s in steps], dtype=float)
        ys = np.array([np.nan if s["p99_ms"] is None else s["p99_ms"] for s in steps], dtype=float)
        lines.append(Line(f"p99 {label}", xs, ys, CURVE_COLOURS[index % len(CURVE_COLOURS)]))
        if index == 0:
            p50 = np.array([np.nan if s["p50_ms"] is None else s["p50_ms"] for s in steps], dtype=float)
            lines.append(Line("p50", xs, p50, PALETTE["p50"]))
        top = max(top, float(xs.max()))
    if not lines:
        return ""
    return ('<p class="muted">Latency against the throughput reached at each step (x: requests/s): the knee is '
            "where latency turns up while throughput stops growing.</p>"
            + chart("latency vs throughput", lines, x_range=(0.0, top * 1.05), y_unit="ms", y_min_top=10.0))


def summary_lines(journal: Mapping[str, Any]) -> list[str]:
    """Markdown lines for summary.md: capacity at SLO and the generator's CPU."""
    harness = journal.get("harness") or {}
    lines: list[str] = []
    capacity = harness.get("capacity")
    if capacity:
        lines += [f"**{headline(capacity)}**", ""]
    generator = harness.get("generator")
    if generator and generator.get("windows"):
        cells = [f"{name} {_num(w.get('throughput_rps'))} req/s at {_num(w['busiest_percent'])}% CPU"
                 for name, w in generator["windows"].items()]
        lines += ["Load generator: " + "; ".join(cells)
                  + (f" — **{generator['advice']}**" if generator.get("advice") else ""), ""]
    return lines
