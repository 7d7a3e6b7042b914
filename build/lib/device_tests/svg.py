"""Tiny inline-SVG charts, so the HTML report is one self-contained file with no plotting dependency.

Two shapes are enough for the lab: horizontal bars (measured vs published) and a line over time (history).
Values spanning more than ~30x (a laptop CPU against an S24 GPU) switch the bars to a log axis, otherwise the
small bar disappears.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

COLORS = {"measured": "#1f6feb", "published": "#57606a", "other device": "#b6bcc4", "history": "#1f6feb"}


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def bar_chart(title: str, bars: Sequence[tuple[str, float, str]], unit: str, width: int = 560) -> str:
    """bars: (label, value, kind) with kind in COLORS. Returns an <svg> element."""
    bars = [b for b in bars if b[1] is not None and b[1] > 0]
    row, label_w, top = 22, 230, 26
    height = top + row * max(len(bars), 1) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}" class="chart">',
        f'<text x="4" y="16" font-size="13" font-weight="600">{html.escape(title)}</text>',
    ]
    if not bars:
        parts.append(f'<text x="4" y="{top + 14}" font-size="12">nothing measured</text></svg>')
        return "".join(parts)
    values = [b[1] for b in bars]
    log = max(values) / min(values) > 30
    plot_w = width - label_w - 90
    low = math.log10(min(values)) - 0.3 if log else 0.0
    high = math.log10(max(values)) if log else max(values)

    def length(v: float) -> float:
        if log:
            return max(2.0, plot_w * (math.log10(v) - low) / (high - low or 1))
        return max(2.0, plot_w * v / (high or 1))

    if log:
        parts.append(f'<text x="{width - 4}" y="16" font-size="11" text-anchor="end" fill="#57606a">log scale</text>')
    for i, (label, value, kind) in enumerate(bars):
        y = top + i * row
        w = length(value)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="11" text-anchor="end">{html.escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" fill="{COLORS.get(kind, "#888")}">'
            f"<title>{html.escape(label)}: {_fmt(value)} {html.escape(unit)}</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="11">{_fmt(value)} {html.escape(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(title: str, points: Sequence[tuple[str, float]], unit: str, width: int = 560, height: int = 150) -> str:
    """points: (x label, value) in time order."""
    points = [p for p in points if p[1] is not None]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}" class="chart">',
        f'<text x="4" y="16" font-size="13" font-weight="600">{html.escape(title)}</text>',
    ]
    if not points:
        parts.append('<text x="4" y="40" font-size="12">no history yet</text></svg>')
        return "".join(parts)
    left, right, top, bottom = 60, 12, 28, 24
    values = [p[1] for p in points]
    low, high = min(values) * 0.9, max(values) * 1.1
    span = (high - low) or 1.0
    step = (width - left - right) / max(len(points) - 1, 1)
    xy = [(left + i * step, top + (height - top - bottom) * (1 - (v - low) / span)) for i, (_, v) in enumerate(points)]
    parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#d0d7de"/>'
    )
    parts.append(f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{_fmt(high)}</text>')
    parts.append(f'<text x="{left - 4}" y="{height - bottom}" font-size="10" text-anchor="end">{_fmt(low)}</text>')
    if len(xy) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLORS["history"]}" stroke-width="2"/>')
    for (x, y), (label, value) in zip(xy, points, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLORS["history"]}">'
            f"<title>{html.escape(label)}: {_fmt(value)} {html.escape(unit)}</title></circle>"
        )
    parts.append(f'<text x="{left}" y="{height - 6}" font-size="10">{html.escape(points[0][0])}</text>')
    last = html.escape(points[-1][0])
    parts.append(f'<text x="{width - right}" y="{height - 6}" font-size="10" text-anchor="end">{last}</text>')
    parts.append("</svg>")
    return "".join(parts)
