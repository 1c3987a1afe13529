"""Inline SVG charts drawn on the server: stacked bars and lines. No JavaScript.

Every piece of text that goes into the SVG is escaped here; callers get a SafeString.
Hovering a bar or a point shows its value through SVG's own ``<title>`` tooltip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from .display import human_duration

WIDTH, HEIGHT = 640, 180
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 8, 10, 22


@dataclass(frozen=True)
class Series:
    name: str
    color: str  # a CSS colour; chosen by the code, never by data
    values: Sequence[float | None]


def nice_max(value: float) -> float:
    """A round upper bound for an axis: 1, 2, 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return human_duration(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _frame(top: float, unit: str, labels: Sequence[str], label_every: int, x_of, title: str,
           body: list[str]) -> SafeString:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [
        f'<svg class="edgejobs-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    steps = 4 if f"{top:e}"[0] == "2" else 5  # 0.5 or 1, 2 steps of a 1-2-5 axis
    for i in range(steps + 1):  # horizontal grid lines with their values
        value = top * i / steps
        y = PAD_TOP + plot_h - plot_h * i / steps
        parts.append(f'<line x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" '
                     f'y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{PAD_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" '
                     f'class="axis">{escape(_fmt(value, unit))}</text>')
    for i, label in enumerate(labels):
        if label and i % label_every == 0:
            parts.append(f'<text x="{x_of(i):.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
                         f'class="axis">{escape(label)}</text>')
    parts.extend(body)
    parts.append("</svg>")
    # Safe: every piece of text above went through escape().
    return mark_safe("".join(parts))


def stacked_bars(labels: Sequence[str], series: Sequence[Series], *, title: str,
                 unit: str = "", label_every: int = 1) -> SafeString:
    """One bar per label, the series stacked bottom up."""
    n = max(len(labels), 1)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    totals = [sum((s.values[i] or 0) for s in series) for i in range(len(labels))]
    top = nice_max(max(totals, default=0))
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1.0)

    def x_of(i: int) -> float:
        return PAD_LEFT + slot * i + slot / 2

    body: list[str] = []
    for i, label in enumerate(labels):
        base = 0.0
        for s in series:
            value = s.values[i] or 0
            if value <= 0:
                continue
            h = plot_h * value / top
            y = PAD_TOP + plot_h - plot_h * (base + value) / top
            body.append(
                f'<rect x="{x_of(i) - bar_w / 2:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{escape(s.color)}"><title>{escape(label)}: '
                f"{escape(_fmt(value, unit))} {escape(s.name)}</title></rect>"
            )
            base += value
    return _frame(top, unit, labels, label_every, x_of, title, body)


def lines(labels: Sequence[str], series: Sequence[Series], *, title: str, unit: str = "",
          label_every: int = 1) -> SafeString:
    """One line per series; a missing value (None) breaks the line."""
    n = max(len(labels), 1)
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    top = nice_max(max(values, default=0))
    slot = plot_w / n

    def x_of(i: int) -> float:
        return PAD_LEFT + slot * i + slot / 2

    def y_of(v: float) -> float:
        return PAD_TOP + plot_h - plot_h * v / top

    body: list[str] = []
    for s in series:
        run: list[str] = []
        for i, v in enumerate(s.values):
            if v is None:
                if len(run) > 1:
                    body.append(f'<polyline points="{" ".join(run)}" fill="none" '
                                f'stroke="{escape(s.color)}" stroke-width="2"/>')
                run = []
                continue
            run.append(f"{x_of(i):.1f},{y_of(v):.1f}")
            body.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="2.5" '
                        f'fill="{escape(s.color)}"><title>{escape(labels[i])}: '
                        f"{escape(s.name)} {escape(_fmt(v, unit))}</title></circle>")
        if len(run) > 1:
            body.append(f'<polyline points="{" ".join(run)}" fill="none" '
                        f'stroke="{escape(s.color)}" stroke-width="2"/>')
    return _frame(top, unit, labels, label_every, x_of, title, body)


def sparkline(values: Sequence[int], labels: Sequence[str], *, width: int = 120,
              height: int = 22, color: str = "#ba2121") -> SafeString:
    """A small bar chart of counts (a failure group over time), each bar titled with its
    label and count. An empty chart is a flat baseline."""
    n = max(len(values), 1)
    top = max(values, default=0) or 1
    step = width / n
    bars = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        h = 0.0 if value <= 0 else max(height * value / top, 1.5)
        bars.append(
            f'<rect x="{i * step:.1f}" y="{height - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{color}"><title>{escape(label)}: {value:,}</title></rect>')
    return mark_safe(
        f'<svg class="ej-spark" role="img" width="{width}" height="{height + 1}" '
        f'viewBox="0 0 {width} {height + 1}" aria-label="failures over time">'
        f'<line x1="0" y1="{height + 0.5}" x2="{width}" y2="{height + 0.5}" stroke="#ccc"/>'
        + "".join(bars) + "</svg>")
