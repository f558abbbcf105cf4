"""A small line-chart renderer: figures per round as standalone SVG, drawn on the server.

Pure Python (no Flask, no database): the dashboard embeds the returned markup inline, so the
charts read without JavaScript and pass a strict Content-Security-Policy (no ``style``
attributes: colours and fonts are SVG presentation attributes). Each chart carries a ``<title>``
and a ``<desc>`` listing every value, and each point a tooltip, for screen readers and hover.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape
from typing import Sequence

PALETTE = ("#2457d6", "#d2691e", "#1a7f37", "#8a3ffc", "#c0362c")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: object) -> str:
    """Text safe inside SVG: XML-escaped, without the characters XML 1.0 cannot hold."""
    return escape(_NOT_XML.sub("", str(value)))


@dataclass(frozen=True)
class Series:
    """One line of a chart.

    Attributes
    ----------
    label : str
        Legend text (shown when a chart has more than one series).
    points : sequence of (x, y)
        ``x`` a float (the round number), ``y`` a float or None (no value: a gap in the line).
        Non-finite ``y`` (NaN, inf) are treated as None.
    colour : str
        SVG colour of the line and its points; default: by position in the chart.
    """

    label: str
    points: Sequence[tuple[float, float | None]]
    colour: str | None = None


@dataclass(frozen=True)
class ChartLayout:
    """Pixel geometry of a chart (the SVG's viewBox is ``0 0 width height``)."""

    width: int = 520
    height: int = 260
    left: int = 64
    right: int = 18
    top: int = 40
    bottom: int = 48
    font: str = "system-ui, -apple-system, 'Segoe UI', sans-serif"

    @property
    def plot_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the plotting area in SVG pixels; y grows downwards."""
        return (self.left, self.top, self.width - self.right, self.height - self.bottom)


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Evenly spaced "round" tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering [lo, hi].

    Parameters
    ----------
    lo, hi : float
        The data range (finite; swapped when ``lo > hi``; widened when equal).
    max_ticks : int
        Aim for at most this many intervals (≥ 2); the result has at most ``max_ticks + 2`` ticks.

    Returns
    -------
    list of float
        Increasing ticks with ``ticks[0] <= lo`` and ``ticks[-1] >= hi``.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"tick range must be finite, got {lo!r}..{hi!r}")
    max_ticks = max(2, int(max_ticks))
    lo, hi = min(lo, hi), max(lo, hi)
    if hi - lo < 1e-200:  # one value (or a span too small to divide): a range around it
        pad = max(abs(lo) * 0.1, 1.0 if abs(lo) < 1e-200 else 0.0, 1e-200)
        lo, hi = lo - pad, hi + pad
    step = _nice_step((hi - lo) / max_ticks)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    while _clean(first * step) > lo:  # float noise in the division
        first -= 1
    while _clean(last * step) < hi:
        last += 1
    return [_clean(i * step) for i in range(first, last + 1)]


def _nice_step(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for multiple in (1.0, 2.0, 2.5, 5.0, 10.0):
        if multiple * magnitude >= raw * (1 - 1e-12):
            return multiple * magnitude
    return 10.0 * magnitude  # pragma: no cover - the loop always returns


def _clean(value: float) -> float:
    """Round off float noise (0.30000000000000004 → 0.3) while keeping tiny and huge values."""
    if value == 0:
        return 0.0
    digits = 12 - int(math.floor(math.log10(abs(value))))
    return round(value, digits) if digits > 0 else value


def format_value(value: float, step: float | None = None) -> str:
    """A number as a short label: as many decimals as the tick ``step`` needs, else 3 significant."""
    if step is not None and step > 0:
        decimals = max(0, -int(math.floor(math.log10(step) + 1e-9)))
        if _clean(step * 10**decimals) % 1:
            decimals += 1  # steps like 2.5
        return f"{value:,.{min(decimals, 10)}f}"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _finite_points(series: Series) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in series.points
            if y is not None and math.isfinite(float(y)) and math.isfinite(float(x))]


def _x_ticks(xs: list[float]) -> list[float]:
    lo, hi = min(xs), max(xs)
    if all(float(x).is_integer() for x in xs) and hi - lo <= 12:
        return [float(v) for v in range(int(lo), int(hi) + 1)]
    ticks = nice_ticks(lo, hi)
    if all(float(x).is_integer() for x in xs):
        ticks = sorted({float(round(t)) for t in ticks})
    return ticks


def line_chart_svg(
    series: Series | Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    chart_id: str,
    y_range: tuple[float, float] | None = None,
    include_zero: bool = True,
    empty_text: str = "no rounds yet",
    layout: ChartLayout = ChartLayout(),
) -> str:
    """Render one or more series as a standalone ``<svg>`` element.

    Parameters
    ----------
    series : Series or sequence of Series
        The lines; points with ``y=None`` leave a gap.
    title, x_label, y_label : str
        Chart title and axis labels (units belong in the label, e.g. ``"seconds per crop"``).
        Escaped: any text is safe.
    chart_id : str
        Prefix of the element ids (letters, digits, ``-``, ``_``); unique within a page.
    y_range : (float, float), optional
        Fixed y-axis range (e.g. ``(0, 1)`` for F1); default: the data's range, padded to ticks.
    include_zero : bool
        With no ``y_range``, stretch the axis to include 0 (counts, durations).
    empty_text : str
        Shown instead of a line when no point has a value.
    layout : ChartLayout
        Pixel geometry.

    Returns
    -------
    str
        SVG markup (``role="img"``, ``aria-labelledby`` → title and description), UTF-8 text.
    """
    if not _ID.match(chart_id or ""):
        raise ValueError(f"chart_id must start with a letter and hold only letters, digits, - or _; got {chart_id!r}")
    all_series = [series] if isinstance(series, Series) else list(series)
    W, H = layout.width, layout.height
    x0, y0, x1, y1 = layout.plot_box
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    finite = [_finite_points(s) for s in all_series]
    desc = _description(all_series, finite, empty_text)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ll-chart" id="{chart_id}" viewBox="0 0 {W} {H}" '
        f'width="{W}" height="{H}" role="img" aria-labelledby="{title_id} {desc_id}" '
        f'font-family="{_text(layout.font)}" font-size="12">',
        f'<title id="{title_id}">{_text(title)}</title>',
        f'<desc id="{desc_id}">{_text(desc)}</desc>',
        f'<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>',
        f'<text x="{x0}" y="22" font-size="14" font-weight="600" fill="#1d2330">{_text(title)}</text>',
    ]
    points_flat = [p for pts in finite for p in pts]
    if not points_flat:
        out += [
            f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="#f6f7f9" stroke="#dde1e8"/>',
            f'<text class="ll-chart-empty" x="{(x0 + x1) / 2:.1f}" y="{(y0 + y1) / 2 + 4:.1f}" '
            f'text-anchor="middle" fill="#5b6475">{_text(empty_text)}</text>',
            "</svg>",
        ]
        return "\n".join(out)

    # the x axis spans every round given, valued or not, so all charts of a page line up
    xs = [float(x) for s in all_series for x, _ in s.points if math.isfinite(float(x))]
    ys = [y for _, y in points_flat]
    if y_range is not None:
        y_lo, y_hi = float(min(y_range)), float(max(y_range))
        y_ticks = nice_ticks(y_lo, y_hi)
        y_ticks = [t for t in y_ticks if y_lo - 1e-9 <= t <= y_hi + 1e-9] or [y_lo, y_hi]
        y_lo, y_hi = min(y_lo, min(ys)), max(y_hi, max(ys))
    else:
        lo, hi = min(ys), max(ys)
        if include_zero:
            lo, hi = min(lo, 0.0), max(hi, 0.0)
        y_ticks = nice_ticks(lo, hi, 5)
        y_lo, y_hi = y_ticks[0], y_ticks[-1]
    if y_hi == y_lo:
        y_hi = y_lo + 1.0
    x_ticks = _x_ticks(xs)
    x_lo, x_hi = min(x_ticks[0], min(xs)), max(x_ticks[-1], max(xs))
    pad = 0.5 if x_hi == x_lo else (x_hi - x_lo) * 0.04

    def px(x: float) -> float:
        return x0 + (x - (x_lo - pad)) / ((x_hi + pad) - (x_lo - pad)) * (x1 - x0)

    def py(y: float) -> float:
        return y1 - (y - y_lo) / (y_hi - y_lo) * (y1 - y0)

    y_step = (y_ticks[1] - y_ticks[0]) if len(y_ticks) > 1 else None
    x_step = (x_ticks[1] - x_ticks[0]) if len(x_ticks) > 1 else 1.0
    out.append('<g class="ll-chart-grid" stroke="#e6e9ef" stroke-width="1">')
    for t in y_ticks:
        out.append(f'<line x1="{x0}" y1="{py(t):.1f}" x2="{x1}" y2="{py(t):.1f}"/>')
    out.append("</g>")
    out.append('<g class="ll-chart-yticks" fill="#5b6475" text-anchor="end">')
    for t in y_ticks:
        out.append(f'<text x="{x0 - 8}" y="{py(t) + 4:.1f}">{_text(format_value(t, y_step))}</text>')
    out.append("</g>")
    out.append('<g class="ll-chart-xticks" fill="#5b6475" text-anchor="middle">')
    for t in x_ticks:
        out.append(f'<line x1="{px(t):.1f}" y1="{y1}" x2="{px(t):.1f}" y2="{y1 + 5}" stroke="#8a93a3"/>')
        out.append(f'<text x="{px(t):.1f}" y="{y1 + 18}">{_text(format_value(t, x_step))}</text>')
    out.append("</g>")
    out.append(f'<line x1="{x0}" y1="{y1}" x2="{x1}" y2="{y1}" stroke="#8a93a3"/>')
    out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#8a93a3"/>')
    out.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{H - 10}" text-anchor="middle" fill="#1d2330">{_text(x_label)}</text>')
    out.append(
        f'<text x="14" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" fill="#1d2330" '
        f'transform="rotate(-90 14 {(y0 + y1) / 2:.1f})">{_text(y_label)}</text>'
    )
    for index, (s, pts) in enumerate(zip(all_series, finite)):
        colour = _text(s.colour or PALETTE[index % len(PALETTE)])
        out.append(f'<g class="ll-chart-series" data-series="{_text(s.label)}">')
        for run in _runs(s.points):
            if len(run) > 1:
                coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in run)
                out.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2" '
                           'stroke-linejoin="round"/>')
        for x, y in pts:
            label = f"{s.label + ', ' if len(all_series) > 1 else ''}{x_label} {format_value(x)}: {format_value(y)}"
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colour}" stroke="#ffffff" '
                       f'stroke-width="1.5"><title>{_text(label)}</title></circle>')
        out.append("</g>")
    if len(all_series) > 1:
        out.append(_legend(all_series, x1))
    out.append("</svg>")
    return "\n".join(out)


def _runs(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Consecutive valued points (a None or non-finite value ends a run)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None or not math.isfinite(float(y)) or not math.isfinite(float(x)):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((float(x), float(y)))
    return [r for r in runs if r]


def _legend(all_series: list[Series], right: float) -> str:
    parts = ['<g class="ll-chart-legend" fill="#1d2330">']
    x = right
    for index, s in reversed(list(enumerate(all_series))):
        colour = _text(s.colour or PALETTE[index % len(PALETTE)])
        width = 26 + 7 * len(s.label)
        x -= width
        parts.append(f'<rect x="{x:.1f}" y="12" width="12" height="12" rx="2" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16:.1f}" y="22">{_text(s.label)}</text>')
    parts.append("</g>")
    return "\n".join(parts)


def _description(all_series: list[Series], finite: list[list[tuple[float, float]]], empty_text: str) -> str:
    if not any(finite):
        return empty_text
    parts = []
    for s, pts in zip(all_series, finite):
        values = "; ".join(f"{format_value(x)}: {format_value(y)}" for x, y in pts) or "no values"
        parts.append(f"{s.label}: {values}" if len(all_series) > 1 else values)
    return ". ".join(parts)
