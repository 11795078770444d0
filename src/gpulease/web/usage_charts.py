"""Small SVG charts rendered on the server: bars (one value per label) and lines (series).

Design. :func:`bar_chart` draws one bar per :class:`Bar` (a tenant's GPU-hours, a day's
usage...), :func:`line_chart` one polyline per :class:`Series` over shared x labels (each
tenant's GPU-hours per day). Both scale the y axis to a "nice" maximum (1, 2, 2.5 or 5 times
a power of ten: :func:`nice_max`) with five gridlines, label at most :data:`MAX_X_LABELS`
x positions (every k-th one), and give every bar and point a ``<title>`` with its label, value
and unit, so a pointer or a screen reader gets the exact figure; the chart's ``<desc>`` sums
it up. At most :data:`MAX_BARS` bars and :data:`MAX_SERIES` series of :data:`MAX_POINTS`
points are drawn (callers bound their periods; the excess is refused, not silently dropped).

Invariants. Values must be finite and not negative (a ``ValueError`` otherwise: a chart of
usage never shows a negative hour). Output is well-formed XML whatever the labels hold
(tenant names are typed by tenants): every text goes through :mod:`gpulease.web.svg_text`.
Series are told apart by colour, dash pattern and the legend's words. Styles are classes
(``uc-*``) over readable presentation attributes; no inline ``style``, no script. Pure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from gpulease.web.svg_text import attr, num, shorten, text

MAX_BARS = 100
MAX_SERIES = 12
MAX_POINTS = 400
MAX_X_LABELS = 12
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#393b79",
    "#637939",
)
DASHES = ("", "6 3", "2 3", "8 3 2 3")
LEFT, RIGHT, TOP, BOTTOM = 64.0, 16.0, 16.0, 44.0


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float | Decimal
    note: str = ""  # added to the bar's tooltip


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: tuple[float | Decimal, ...]  # one per x label


def nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power * (1 + 1e-12):
            return step * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def figure(value: float) -> str:
    """A figure for people: thousands separated, one decimal under 10,000 unless whole."""
    if value >= 10_000 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _checked(values: Sequence[float | Decimal], what: str) -> list[float]:
    out: list[float] = []
    for v in values:
        f = float(v)
        if not math.isfinite(f) or f < 0:
            raise ValueError(f"{what}: {v!r} is not a finite value of 0 or more")
        out.append(f)
    return out


def _prefix(id_prefix: str) -> str:
    return re.sub(r"[^a-z0-9-]", "", id_prefix.lower()) or "uc"


def _frame(
    width: float, height: float, top: float, unit: str, title: str, desc: str, prefix: str
) -> list[str]:
    """The ``<svg>`` opening, title, description, y gridlines with their figures."""
    plot_h = height - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="uc" role="img" '
        f'viewBox="0 0 {num(width)} {num(height)}" width="{num(width)}" '
        f'height="{num(height)}" aria-labelledby="{prefix}-title {prefix}-desc">',
        f'<title id="{prefix}-title">{text(title)}</title>',
        f'<desc id="{prefix}-desc">{text(desc)}</desc>',
    ]
    for i in range(6):
        y = TOP + plot_h * (1 - i / 5)
        out.append(
            f'<line class="uc-grid" x1="{num(LEFT)}" x2="{num(width - RIGHT)}" y1="{num(y)}" '
            f'y2="{num(y)}" stroke="#ccc" stroke-width="1"/>'
            f'<text class="uc-tick" x="{num(LEFT - 6)}" y="{num(y + 4)}" text-anchor="end" '
            f'font-size="11" fill="#333">{text(figure(top * i / 5))}</text>'
        )
    out.append(
        f'<text class="uc-unit" x="{num(LEFT - 6)}" y="{num(TOP - 4)}" text-anchor="end" '
        f'font-size="11" fill="#333">{text(shorten(unit, 14))}</text>'
    )
    return out


def _x_labels(labels: Sequence[str], xs: Sequence[float], height: float) -> list[str]:
    step = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    return [
        f'<text class="uc-xlabel" x="{num(x)}" y="{num(height - BOTTOM + 16)}" '
        f'text-anchor="middle" font-size="11" fill="#333">{text(shorten(label, 12))}</text>'
        for i, (label, x) in enumerate(zip(labels, xs, strict=True))
        if i % step == 0
    ]


def bar_chart(
    bars: Sequence[Bar],
    *,
    title: str,
    unit: str,
    id_prefix: str = "uc",
    width: float = 640,
    height: float = 260,
) -> str:
    """One bar per item, in the given order (see the module docstring)."""
    if len(bars) > MAX_BARS:
        raise ValueError(f"at most {MAX_BARS} bars, got {len(bars)}")
    values = _checked([b.value for b in bars], "bar")
    prefix = _prefix(id_prefix)
    top = nice_max(max(values, default=0.0))
    total = sum(values)
    desc = f"{len(bars)} bars, total {figure(total)} {unit}" if bars else "no data in this period"
    out = _frame(width, height, top, unit, title, desc, prefix)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    slot = plot_w / max(len(bars), 1)
    bar_w = max(2.0, slot * 0.7)
    xs = [LEFT + slot * (i + 0.5) for i in range(len(bars))]
    for bar, value, x in zip(bars, values, xs, strict=True):
        h = plot_h * value / top
        y = TOP + plot_h - h
        tip = f"{bar.label}: {figure(value)} {unit}" + (f" ({bar.note})" if bar.note else "")
        out.append(
            f'<g class="uc-bar"><title>{text(tip)}</title>'
            f'<rect x="{num(x - bar_w / 2)}" y="{num(y)}" width="{num(bar_w)}" '
            f'height="{num(h)}" fill="{PALETTE[0]}" data-value="{attr(num(value))}"/></g>'
        )
    if not bars:
        out.append(
            f'<text class="uc-empty" x="{num(width / 2)}" y="{num(height / 2)}" '
            f'text-anchor="middle" font-size="13" fill="#333">no data in this period</text>'
        )
    out += _x_labels([b.label for b in bars], xs, height)
    out.append("</svg>")
    return "\n".join(out)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str,
    id_prefix: str = "uc",
    width: float = 640,
    height: float = 280,
) -> str:
    """One line per series over ``labels`` (each series has a value per label)."""
    if len(series) > MAX_SERIES:
        raise ValueError(f"at most {MAX_SERIES} series, got {len(series)}")
    if len(labels) > MAX_POINTS:
        raise ValueError(f"at most {MAX_POINTS} points, got {len(labels)}")
    checked: list[list[float]] = []
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r}: {len(s.values)} values for {len(labels)} labels")
        checked.append(_checked(s.values, f"series {s.name!r}"))
    prefix = _prefix(id_prefix)
    top = nice_max(max((max(v, default=0.0) for v in checked), default=0.0))
    desc = (
        f"{len(series)} series over {len(labels)} points: "
        + "; ".join(
            f"{s.name} total {figure(sum(v))} {unit}" for s, v in zip(series, checked, strict=True)
        )
        if series and labels
        else "no data in this period"
    )
    out = _frame(width, height, top, unit, title, desc, prefix)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    step = plot_w / max(len(labels) - 1, 1)
    xs = [LEFT + step * i if len(labels) > 1 else LEFT + plot_w / 2 for i in range(len(labels))]
    for k, (s, values) in enumerate(zip(series, checked, strict=True)):
        colour, dash = PALETTE[k % len(PALETTE)], DASHES[k % len(DASHES)]
        points = [(x, TOP + plot_h * (1 - v / top)) for x, v in zip(xs, values, strict=True)]
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="uc-series uc-s{k}"><title>{text(s.name)}</title>')
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashed} points="'
            + " ".join(f"{num(x)},{num(y)}" for x, y in points)
            + '"/>'
        )
        for label, value, (x, y) in zip(labels, values, points, strict=True):
            out.append(
                f'<circle cx="{num(x)}" cy="{num(y)}" r="3" fill="{colour}">'
                f"<title>{text(f'{s.name}, {label}: {figure(value)} {unit}')}</title></circle>"
            )
        out.append("</g>")
    if not series or not labels:
        out.append(
            f'<text class="uc-empty" x="{num(width / 2)}" y="{num(height / 2)}" '
            f'text-anchor="middle" font-size="13" fill="#333">no data in this period</text>'
        )
    out += _x_labels(labels, xs, height)
    out += _legend(series, width, height)
    out.append("</svg>")
    return "\n".join(out)


def _legend(series: Sequence[Series], width: float, height: float) -> list[str]:
    out: list[str] = []
    x = LEFT
    for k, s in enumerate(series):
        colour, dash = PALETTE[k % len(PALETTE)], DASHES[k % len(DASHES)]
        name = shorten(s.name, 22)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<g class="uc-legend"><line x1="{num(x)}" x2="{num(x + 18)}" '
            f'y1="{num(height - 10)}" y2="{num(height - 10)}" stroke="{colour}" '
            f'stroke-width="2"{dashed}/><text x="{num(x + 22)}" y="{num(height - 6)}" '
            f'font-size="11" fill="#333">{text(name)}</text></g>'
        )
        x += 30 + 7 * len(name)
        if x > width - 80:
            break
    return out
