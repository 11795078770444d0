"""Charts as SVG, drawn on the server: pure functions from numbers to markup.

Design. Each function takes plain values (labels, datetimes, numbers) and returns one
``<svg>`` element as a string, the same output for the same input (no clock, no randomness,
coordinates rounded to 0.1). Every text is escaped here, so a tenant's name or a label can
never become markup. Colours are not in the markup: elements carry classes (``bar``,
``headroom``, ``grid`` ...) that ``static/app.css`` colours for the light and the dark theme,
and no ``style`` attribute is written (the Content-Security-Policy forbids inline styles).

Accessibility: each chart has ``role="img"``, an ``aria-label`` and a ``<title>``; each bar
its own ``<title>`` (a tooltip, read by screen readers). Pages put the same figures in a
table beside the chart.

* :func:`gantt`: rows of bars over a time window, a "now" line, and below them a step
  area (the lease calendar's headroom);
* :func:`bars`: horizontal bars of labelled values (usage per tenant, and the like);
* :func:`time_ticks`: where a time axis puts its ticks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

TICK_STEPS = (
    timedelta(hours=6),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=14),
    timedelta(days=30),
    timedelta(days=91),
)
MAX_TICKS = 12
LABEL_MAX = 38  # characters of a row's label; longer ones are cut
MAX_ROWS = 200  # a chart taller than this is unreadable: the caller pages or filters


def _n(value: float) -> str:
    """A coordinate: one decimal, no trailing zeros, no ``-0``."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _e(text: str) -> str:
    return escape(text, quote=True)


def _short(label: str, most: int = LABEL_MAX) -> str:
    """A label cut to ``most`` characters (an ellipsis says so; the tooltip has it whole)."""
    return label if len(label) <= most else label[: most - 1] + "…"


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a Gantt row: ``[start, end)``, its text, its class, its tooltip."""

    start: datetime
    end: datetime
    label: str
    css: str = "bar"
    tip: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    bars: tuple[Bar, ...]


def time_ticks(start: datetime, end: datetime) -> list[datetime]:
    """Tick instants inside ``[start, end]``: the smallest step of :data:`TICK_STEPS` that
    gives at most :data:`MAX_TICKS`, aligned to midnight UTC (hours for short windows)."""
    if end <= start:
        return []
    span = end - start
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), TICK_STEPS[-1])
    first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while first < start:
        first += step
    ticks: list[datetime] = []
    t = first
    while t <= end and len(ticks) < MAX_TICKS * 2:
        ticks.append(t)
        t += step
    return ticks


def _x_of(start: datetime, end: datetime, left: float, width: float) -> Callable[[datetime], float]:
    span = (end - start).total_seconds()

    def x(t: datetime) -> float:
        seconds = min(max((t - start).total_seconds(), 0.0), span)
        return left + width * seconds / span

    return x


def gantt(
    rows: Sequence[Row],
    *,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    headroom: Sequence[tuple[datetime, int]] = (),
    capacity: int = 0,
    title: str = "Calendar",
    width: int = 1100,
    label_width: int = 260,
    row_height: int = 22,
    headroom_height: int = 70,
) -> str:
    """Rows of bars over ``[start, end)``; a headroom step area (0 .. ``capacity``) below
    them when ``headroom`` is given. At most :data:`MAX_ROWS` rows are drawn."""
    if end <= start:
        raise ValueError("a chart's window must end after it starts")
    rows = list(rows)[:MAX_ROWS]
    top, axis_h = 6, 18
    plot_w = width - label_width - 30  # room for the last tick's date
    body_h = max(1, len(rows)) * row_height
    band = headroom_height + 24 if headroom and capacity > 0 else 0
    height = top + body_h + axis_h + band + 6
    x = _x_of(start, end, label_width, plot_w)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {_n(height)}" '
        f'width="{width}" height="{_n(height)}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    for tick in time_ticks(start, end):
        tx = _n(x(tick))
        out.append(f'<line class="grid" x1="{tx}" y1="{top}" x2="{tx}" y2="{_n(top + body_h)}"/>')
        out.append(
            f'<text x="{tx}" y="{_n(top + body_h + 13)}" text-anchor="middle">'
            f"{_e(tick.strftime('%d %b' if tick.hour == 0 else '%d %b %H:%M'))}</text>"
        )
    if not rows:
        out.append(
            f'<text class="label-muted" x="{label_width}" y="{_n(top + row_height * 0.7)}">'
            "nothing in this window</text>"
        )
    for i, row in enumerate(rows):
        y = top + i * row_height
        out.append(
            f'<text x="{label_width - 6}" y="{_n(y + row_height * 0.68)}" '
            f'text-anchor="end">{_e(_short(row.label))}</text>'
        )
        for bar in row.bars:
            if bar.end <= start or bar.start >= end:
                continue
            x0, x1 = x(bar.start), x(bar.end)
            w = max(x1 - x0, 2.0)
            out.append(
                f'<g><rect class="{_e(bar.css)}" x="{_n(x0)}" y="{_n(y + 3)}" width="{_n(w)}" '
                f'height="{_n(row_height - 6)}" rx="3"><title>{_e(bar.tip or bar.label)}</title>'
                "</rect>"
            )
            if w > 7 * len(bar.label):
                out.append(
                    f'<text class="on-bar" x="{_n(x0 + 4)}" y="{_n(y + row_height * 0.68)}">'
                    f"{_e(bar.label)}</text>"
                )
            out.append("</g>")
    out.append(
        f'<line class="axis" x1="{label_width}" y1="{_n(top + body_h)}" '
        f'x2="{_n(label_width + plot_w)}" y2="{_n(top + body_h)}"/>'
    )
    if band:
        out.append(
            _headroom(
                headroom,
                capacity,
                end,
                x,
                top + body_h + axis_h + 6,
                label_width,
                plot_w,
                headroom_height,
            )
        )
    if now is not None and start <= now <= end:
        nx = _n(x(now))
        out.append(
            f'<line class="now" x1="{nx}" y1="{top}" x2="{nx}" y2="{_n(height - 6)}">'
            f"<title>now: {_e(now.strftime('%Y-%m-%d %H:%M UTC'))}</title></line>"
        )
    out.append("</svg>")
    return "".join(out)


def _headroom(
    steps: Sequence[tuple[datetime, int]],
    capacity: int,
    end: datetime,
    x: Callable[[datetime], float],
    y0: float,
    left: float,
    plot_w: float,
    height: float,
) -> str:
    low = min(free for _, free in steps)
    bottom = y0 + height

    def y(free: int) -> float:
        return bottom - height * min(max(free, 0), capacity) / capacity

    points: list[str] = [f"{_n(x(steps[0][0]))},{_n(bottom)}"]
    for i, (t, free) in enumerate(steps):
        nxt = steps[i + 1][0] if i + 1 < len(steps) else end
        points += [f"{_n(x(t))},{_n(y(free))}", f"{_n(x(nxt))},{_n(y(free))}"]
    points.append(f"{_n(x(end))},{_n(bottom)}")
    label = f"headroom: {low:,} of {capacity:,} GPUs free at the least"
    return (
        f'<text x="{_n(left - 6)}" y="{_n(y0 + 12)}" text-anchor="end">headroom</text>'
        f'<text class="label-muted" x="{_n(left - 6)}" y="{_n(y0 + 26)}" text-anchor="end">'
        f"{capacity:,} GPUs</text>"
        f'<rect class="axis" x="{_n(left)}" y="{_n(y0)}" width="{_n(plot_w)}" '
        f'height="{_n(height)}" fill="none"/>'
        f'<polygon class="headroom" points="{" ".join(points)}"><title>{_e(label)}</title>'
        "</polygon>"
    )


def bars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 700,
    label_width: int = 220,
    bar_height: int = 20,
    css: str = "bar",
) -> str:
    """Horizontal bars, one per ``(label, value)``, scaled to the largest value; each bar's
    value written after it with ``unit``. Negative values are drawn as 0."""
    items = list(items)[:MAX_ROWS]
    peak = max((v for _, v in items), default=0.0)
    plot_w = width - label_width - 90
    height = max(1, len(items)) * (bar_height + 6) + 8
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
        f"<title>{_e(title)}</title>",
    ]
    if not items:
        out.append(f'<text class="label-muted" x="{label_width}" y="18">no data</text>')
    for i, (label, value) in enumerate(items):
        y = 4 + i * (bar_height + 6)
        w = plot_w * max(value, 0.0) / peak if peak > 0 else 0.0
        shown = f"{value:,.2f}".rstrip("0").rstrip(".") + (f" {unit}" if unit else "")
        out.append(
            f'<text x="{label_width - 6}" y="{_n(y + bar_height * 0.72)}" text-anchor="end">'
            f"{_e(_short(label))}</text>"
            f'<rect class="{_e(css)}" x="{label_width}" y="{y}" width="{_n(w)}" '
            f'height="{bar_height}" rx="2"><title>{_e(label)}: {_e(shown)}</title></rect>'
            f'<text x="{_n(label_width + w + 6)}" y="{_n(y + bar_height * 0.72)}">'
            f"{_e(shown)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
