"""report.html: one self-contained page (inline CSS and SVG, no scripts, nothing fetched) about one run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from harness.report import perf
from harness.report.analysis import Analysis
from harness.report.rundata import RunRecord
from harness.report.score import PHASE_WEIGHTS
from harness.report.series import Series
from harness.report.stats import QUANTILES
from harness.report.svg import PALETTE, Band, Line, Mark, chart
from harness.report.waterfall import waterfall_html
from harness.slo.model import PHASES

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1000px;
 padding:0 16px 40px;color:#222}
.verdict{padding:14px 18px;margin:16px 0;border-radius:6px;color:#fff;display:flex;gap:24px;
 align-items:baseline;flex-wrap:wrap}
.verdict .word{font-size:32px;font-weight:bold;letter-spacing:1px}
.PASS{background:#2a7f62}.FAIL,.ERROR{background:#b03030}.INCONCLUSIVE,.INTERRUPTED{background:#b7791f}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2a7f62;font-weight:bold}.fail,.no_data,.error{color:#b03030;font-weight:bold}
code{font-size:11px;word-break:break-all}.muted{color:#666;font-size:12px}
li{margin-bottom:8px}svg.chart{display:block;margin:4px 0}
"""


def render_html(analysis: Analysis) -> str:
    """The whole page as text."""
    run = analysis.run
    body = [
        _header(analysis),
        _facts(analysis),
        _fixes(analysis),
        _plots(run, analysis.series),
        _slo_tables(run),
        _faults(run),
        _kills(run),
        _load(analysis),
        perf.generator_html(run.journal),
        perf.capacity_html(run.journal),
        waterfall_html(run.run_dir),
        _score(analysis),
        _undo(run),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(run.verdict)}: {escape(run.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(part for part in body if part) + "\n</body></html>\n")


def utc(epoch: float | None) -> str:
    """An epoch time as ISO 8601 UTC with milliseconds, or "-"."""
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="milliseconds")


def _rel(run: RunRecord, epoch: float | None) -> str:
    return "-" if epoch is None else f"{epoch - run.origin:+.2f} s"


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "-" if value is None else format(value, fmt)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False) -> str:
    """A table (no header row when headers is empty); cells are escaped unless raw (the caller escaped them)."""
    head = f"<tr>{''.join(f'<th>{escape(h)}</th>' for h in headers)}</tr>" if headers else ""
    cells = ("".join(f"<td>{c if raw else escape(c)}</td>" for c in row) for row in rows)
    return f"<table>{head}" + "".join(f"<tr>{r}</tr>" for r in cells) + "</table>"


def _header(analysis: Analysis) -> str:
    run = analysis.run
    reason = f"<div>{escape(run.reason)}</div>" if run.reason else ""
    return (f'<header class="verdict {escape(run.verdict)}"><div class="word" id="verdict">{escape(run.verdict)}</div>'
            f"<div>exit {run.exit_code}</div>{reason}"
            f'<div id="score">resilience score {escape(str(analysis.score))}</div></header>'
            f"<h1>{escape(run.title)}</h1>")


def _facts(analysis: Analysis) -> str:
    run, journal = analysis.run, analysis.run.journal
    span = run.span
    rows = [("platform", run.platform), ("status", run.status), ("started", str(journal.get("start") or "-")),
            ("duration", f"{float(journal.get('duration') or 0):.1f} s"), ("run directory", str(run.run_dir)),
            ("requests sampled", str(analysis.samples)),
            ("time zero of plots and tables", utc(run.origin) + " (baseline start)")]
    if span:
        rows.append(("phases", ", ".join(f"{n} {_rel(run, s)} .. {_rel(run, e)}" for n, (s, e) in run.phases.items())))
    return _table((), rows)


def _fixes(analysis: Analysis) -> str:
    if not analysis.fixes and not analysis.fix_note:
        return ""
    items = []
    for fix in analysis.fixes:
        where = f' <span class="muted">({escape(fix.file)})</span>' if fix.file else ""
        during = "; ".join(fix.faults) or "no fault in effect"
        items.append(f"<li><b>{escape(fix.resource)}</b> <code>{escape(fix.field)}</code>{where}: {escape(fix.text)}"
                     f'<div class="muted">broke: {escape("; ".join(fix.slos))}. during: {escape(during)}</div></li>')
    note = f"<p>{escape(analysis.fix_note)}</p>" if analysis.fix_note else ""
    return f'<section id="fix"><h2>What to fix</h2>{note}<ol>{"".join(items)}</ol></section>'


def _plots(run: RunRecord, series: Sequence[Series]) -> str:
    if not series:
        return '<section id="plots"><h2>Over time</h2><p>No request samples in this run.</p></section>'
    x0 = min([float(series[0].t[0])] + [s - run.origin for s, _ in run.phases.values()])
    x1 = max([float(series[0].t[-1] + series[0].bucket_s)] + [e - run.origin for _, e in run.phases.values()])
    bands = [Band(f.start - run.origin, f.end - run.origin, f.label) for f in run.faults]
    marks = [Mark(s - run.origin, name) for name, (s, _) in run.phases.items()]
    marks += [Mark(run.phases[name][1] - run.origin, "end") for name in PHASES[-1:] if name in run.phases]
    parts = ['<section id="plots"><h2>Over time</h2>'
             f'<p class="muted">{series[0].bucket_s:g} s buckets by completion time; 0 is the baseline start; shaded: '
             "each fault while in effect (a kill until the pod was ready again); dashed: phase starts.</p>"]
    for s in series:
        parts.append(f"<h3>{escape(s.service)}</h3>" + _service_charts(s, (x0, x1), bands, marks))
    return "".join(parts) + "</section>"


def _service_charts(s: Series, x_range: tuple[float, float], bands: list[Band], marks: list[Mark]) -> str:
    """Throughput, error rate and latency quantiles of one service, on one time axis."""
    panels = [
        ("throughput", [Line("req/s", s.t, s.throughput, PALETTE["throughput"])], "requests/s", 1.0),
        ("error rate", [Line("errors", s.t, s.error_rate * 100, PALETTE["errors"])], "%", 1.0),
        ("latency", [Line(f"p{round(q * 100)}", s.t, s.latency[q], PALETTE[f"p{round(q * 100)}"])
                     for q in QUANTILES], "ms", 10.0),
    ]
    return "".join(chart(f"{s.service}: {title}", lines, x_range=x_range, bands=bands, marks=marks, y_unit=unit,
                         y_min_top=top) for title, lines, unit, top in panels)


def _slo_tables(run: RunRecord) -> str:
    if not run.slos:
        return '<section id="slos"><h2>SLOs</h2><p>No SLO results.</p></section>'
    parts = ['<section id="slos"><h2>SLOs per phase</h2>']
    for phase in [p for p in PHASES if any(r.phase == p for r in run.slos)]:
        rows = [r for r in run.slos if r.phase == phase]
        parts.append(f"<h3>{escape(phase)} <span class=\"muted\">({_rel(run, rows[0].window_start)} .. "
                     f"{_rel(run, rows[0].window_end)}, weight {PHASE_WEIGHTS.get(phase, 1):g})</span></h3>")
        parts.append(_table(("SLO", "source", "value", "objective", "verdict", "detail", "query"), (
            (escape(r.name), escape(r.source), _num(r.value), escape(f"{r.comparator} {r.objective:g}"),
             f'<span class="{escape(r.verdict)}">{escape(r.verdict)}</span>', escape(r.detail),
             f"<code>{escape(r.query)}</code>") for r in rows), raw=True))
    return "".join(parts) + "</section>"


def _faults(run: RunRecord) -> str:
    if not run.faults:
        return ""
    rows = [(f.kind, f.target, ", ".join(f"{k}={v}" for k, v in f.details.items() if v not in ({}, None, "")),
             _rel(run, f.requested_at), _rel(run, f.applied_at), _rel(run, f.reverted_at), _num(f.inject_latency_ms),
             _num(f.revert_latency_ms), _num(f.visible_after_ms), _rel(run, f.errors_until)) for f in run.faults]
    return ('<section id="faults"><h2>Faults</h2>'
            + _table(("kind", "target", "details", "requested", "applied", "reverted", "inject ms", "revert ms",
                      "visible after ms", "last error"), rows) + "</section>")


def _kills(run: RunRecord) -> str:
    if not run.kills:
        return ""
    rows = [(k.pod, _rel(run, k.killed_at), _rel(run, k.recovered_at),
             "not seen" if k.recovery_s is None else f"{k.recovery_s:.2f} s") for k in run.kills]
    return ('<section id="kills"><h2>Pods killed</h2>'
            + _table(("pod", "killed", "ready again", "recovery"), rows) + "</section>")


def _load(analysis: Analysis) -> str:
    if not analysis.stats:
        return ""
    rows = [(s.service, s.phase, str(s.requests), _num(None if s.availability is None else s.availability * 100, ".3f"),
             _num(s.throughput_rps, ".1f"), _num(s.p50_ms, ".1f"), _num(s.p95_ms, ".1f"), _num(s.p99_ms, ".1f"))
            for s in analysis.stats]
    return ('<section id="load"><h2>Requests per service and phase</h2>'
            + _table(("service", "phase", "requests", "availability %", "req/s", "p50 ms", "p95 ms", "p99 ms"), rows)
            + "</section>")


def _score(analysis: Analysis) -> str:
    score = analysis.score
    if score.value is None:
        return f'<section id="scoring"><h2>Resilience score</h2><p>No score: {escape(score.reason)}.</p></section>'
    rows = [(i.name, i.phase, i.verdict, f"{i.weight:g}", f"{i.credit:.3f}") for i in score.items]
    return ('<section id="scoring"><h2>Resilience score</h2><p class="muted">100 x sum(weight x credit) / sum(weight); '
            "weight: baseline 1, chaos 4, recovery 2, hypothesis 2; credit: pass 1, fail up to 0.5 by how near the "
            "value came to the objective, no data 0.</p>"
            + _table(("item", "phase", "verdict", "weight", "credit"), rows) + "</section>")


def _undo(run: RunRecord) -> str:
    undo = (run.journal.get("harness") or {}).get("undo") or []
    if not undo:
        return ""
    rows = [(str(u.get("description")), _rel(run, u.get("registered_at")), _rel(run, u.get("done_at")),
             str(u.get("error") or "")) for u in undo]
    return ('<section id="undo"><h2>Undo</h2>'
            + _table(("undo", "registered", "done", "error"), rows) + "</section>")
