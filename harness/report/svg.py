"""Inline SVG line charts with shaded, labelled windows and vertical markers, for a self-contained page.

Hand-written rather than matplotlib: a chart is a few polylines, the output needs no fonts, images or
namespaces fetched from anywhere, and a dozen charts render in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

PALETTE = {"throughput": "#2a7f62", "errors": "#c0392b", "p50": "#2e6fbb", "p95": "#e08a1e", "p99": "#b03060"}
BAND_COLOURS = ("#f4c542", "#9b59b6", "#e67e22", "#16a085", "#c0392b")
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 14, 30, 30  # margins in px: y labels, -, title and band labels, x labels


@dataclass(frozen=True, eq=False)
class Line:
    """A series to draw; NaN values leave a gap."""

    label: str
    xs: np.ndarray
    ys: np.ndarray
    colour: str


@dataclass(frozen=True)
class Band:
    """A shaded window, e.g. a fault in effect, from start to end (x units)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Mark:
    """A vertical dashed line, e.g. a phase boundary."""

    x: float
    label: str


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten) covering lo..hi."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) + 0.0 for i in range(int((hi - first) / step + 1e-9) + 1)]


def chart(title: str, lines: Sequence[Line], *, x_range: tuple[float, float], bands: Sequence[Band] = (),
          marks: Sequence[Mark] = (), y_unit: str = "", y_min_top: float = 1.0, width: int = 900,
          height: int = 190) -> str:
    """One chart as an <svg> element (no xmlns needed inline in HTML5)."""
    x0, x1 = x_range
    x1 = x1 if x1 > x0 else x0 + 1
    finite = [float(np.nanmax(line.ys)) for line in lines if np.isfinite(line.ys).any()]
    top = _nice_top(max(finite + [y_min_top]))
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return _TOP + plot_h - min(y, top) / top * plot_h

    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
             f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#ccc"/>']
    for i, band in enumerate(bands):
        left, right = sx(max(band.start, x0)), sx(min(band.end, x1))
        if right <= left:
            continue
        colour = BAND_COLOURS[i % len(BAND_COLOURS)]
        parts.append(f'<rect class="fault" x="{left:.1f}" y="{_TOP}" width="{right - left:.1f}" height="{plot_h}" '
                     f'fill="{colour}" fill-opacity="0.22"><title>{escape(band.label)}</title></rect>')
        parts.append(f'<text x="{left + 2:.1f}" y="{_TOP + 11 + 11 * (i % 3)}" font-size="10" '
                     f'fill="#555">{escape(band.label)}</text>')
    for y in ticks(0, top, 4):
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#eee"/>'
                     f'<text x="{_LEFT - 4}" y="{sy(y) + 3:.1f}" font-size="10" text-anchor="end">{_fmt(y)}</text>')
    for x in ticks(x0, x1, 10):
        parts.append(f'<text x="{sx(x):.1f}" y="{_TOP + plot_h + 13}" font-size="10" '
                     f'text-anchor="middle">{_fmt(x)}</text>')
    parts.append(f'<text x="{_LEFT + plot_w}" y="{height - 3}" font-size="10" text-anchor="end">seconds</text>')
    for mark in marks:
        if x0 <= mark.x <= x1:
            parts.append(f'<line class="phase" x1="{sx(mark.x):.1f}" x2="{sx(mark.x):.1f}" y1="{_TOP}" '
                         f'y2="{_TOP + plot_h}" stroke="#333" stroke-dasharray="4 3"/>'
                         f'<text x="{sx(mark.x) + 3:.1f}" y="{_TOP + plot_h - 4}" font-size="10" '
                         f'fill="#333">{escape(mark.label)}</text>')
    for line in lines:
        for segment in _segments(line.xs, line.ys):
            points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in segment)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{line.colour}" stroke-width="1.5"/>')
    legend = " ".join(f'<tspan fill="{line.colour}">\u25a0 {escape(line.label)}</tspan>' for line in lines)
    parts.append(f'<text x="{_LEFT}" y="14" font-size="12" font-weight="bold">{escape(title)}'
                 f'{" (" + escape(y_unit) + ")" if y_unit else ""}</text>'
                 f'<text x="{_LEFT + plot_w}" y="14" font-size="11" text-anchor="end">{legend}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_top(value: float) -> float:
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= value)


def _segments(xs: np.ndarray, ys: np.ndarray) -> list[list[tuple[float, float]]]:
    """Runs of finite points; a single point becomes a tiny segment so it stays visible."""
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in zip(xs.tolist(), ys.tolist()):
        if math.isfinite(y):
            current.append((x, y))
        elif current:
            segments.append(current)
            current = []
    if current:
        segments.append(current)
    return [s if len(s) > 1 else s + [(s[0][0] + 0.3, s[0][1])] for s in segments]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
