"""The dashboard's charts: pure functions from numbers to SVG (no browser, no database)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from gpulease.web import svg

T0 = datetime(2026, 3, 1, tzinfo=UTC)
NS = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # well-formed XML, or this raises


def _rects(root: ET.Element, css: str) -> list[ET.Element]:
    return [r for r in root.iter(NS + "rect") if css in (r.get("class") or "").split()]


def test_gantt_places_bars_on_the_time_axis() -> None:
    rows = [
        svg.Row("A · 8 GPUs", (svg.Bar(T0, T0 + timedelta(days=10), "active", "bar active"),)),
        svg.Row("B · 64 GPUs", (svg.Bar(T0 + timedelta(days=10), T0 + timedelta(days=20), "x"),)),
    ]
    markup = svg.gantt(
        rows, start=T0, end=T0 + timedelta(days=20), width=1030, label_width=200, title="t"
    )
    root = _parse(markup)
    first, second = _rects(root, "bar")
    # the plot is 800 wide from x=200: 10 of 20 days is 400
    assert (float(first.get("x") or 0), float(first.get("width") or 0)) == (200.0, 400.0)
    assert (float(second.get("x") or 0), float(second.get("width") or 0)) == (600.0, 400.0)
    assert float(second.get("y") or 0) > float(first.get("y") or 0)
    assert root.get("role") == "img"
    assert root.find(NS + "title") is not None


def test_gantt_clips_bars_to_the_window_and_skips_those_outside() -> None:
    rows = [
        svg.Row("long", (svg.Bar(T0 - timedelta(days=30), T0 + timedelta(days=300), "l"),)),
        svg.Row("past", (svg.Bar(T0 - timedelta(days=30), T0 - timedelta(days=1), "p"),)),
    ]
    root = _parse(
        svg.gantt(rows, start=T0, end=T0 + timedelta(days=10), width=1030, label_width=200)
    )
    (bar,) = _rects(root, "bar")
    assert float(bar.get("x") or 0) == 200.0
    assert float(bar.get("width") or 0) == 800.0


def test_gantt_draws_the_headroom_as_a_step_area_and_now() -> None:
    steps = [(T0, 2304), (T0 + timedelta(days=5), 1000)]
    markup = svg.gantt(
        [],
        start=T0,
        end=T0 + timedelta(days=10),
        now=T0 + timedelta(days=2),
        headroom=steps,
        capacity=2304,
        width=1010,
    )
    root = _parse(markup)
    (area,) = list(root.iter(NS + "polygon"))
    points = [tuple(map(float, p.split(","))) for p in (area.get("points") or "").split()]
    xs = [x for x, _ in points]
    assert xs == sorted(xs)
    ys = {y for _, y in points}
    assert len(ys) == 3  # the floor, full capacity, and 1,000 free
    assert "1,000 of 2,304 GPUs free" in markup
    assert len([line for line in root.iter(NS + "line") if line.get("class") == "now"]) == 1
    assert "nothing in this window" in markup


def test_text_is_escaped_and_no_style_attribute_is_written() -> None:
    evil = '<script>alert("x")</script> & "quotes" and a long tail'
    markup = svg.gantt(
        [svg.Row(evil, (svg.Bar(T0, T0 + timedelta(days=1), evil, tip=evil),))],
        start=T0,
        end=T0 + timedelta(days=3),
        title=evil,
    )
    markup += svg.bars([(evil, 3.0)], title=evil)
    assert "<script>" not in markup
    assert "…" in markup  # the long label was cut (its tooltip keeps it whole)
    assert "style=" not in markup
    _parse(svg.bars([(evil, 3.0)], title=evil))


def test_the_same_input_gives_the_same_markup() -> None:
    rows = [svg.Row("a", (svg.Bar(T0, T0 + timedelta(hours=7), "a"),))]
    kwargs = {"start": T0, "end": T0 + timedelta(days=3), "now": T0 + timedelta(hours=1)}
    assert svg.gantt(rows, **kwargs) == svg.gantt(rows, **kwargs)  # type: ignore[arg-type]


def test_bars_scale_to_the_largest_value() -> None:
    root = _parse(
        svg.bars([("a", 10.0), ("b", 5.0), ("c", -1.0)], title="usage", width=700, label_width=220)
    )
    widths = [float(r.get("width") or 0) for r in _rects(root, "bar")]
    assert widths == [390.0, 195.0, 0.0]
    assert "no data" in svg.bars([], title="empty")


@pytest.mark.parametrize(
    ("days", "step"),
    [(1, timedelta(hours=6)), (7, timedelta(days=1)), (42, timedelta(days=7)), (366, None)],
)
def test_time_ticks_are_few_and_aligned(days: int, step: timedelta | None) -> None:
    start = T0 + timedelta(hours=5)
    ticks = svg.time_ticks(start, start + timedelta(days=days))
    assert 1 <= len(ticks) <= svg.MAX_TICKS
    assert all(start <= t <= start + timedelta(days=days) for t in ticks)
    if step is not None:
        assert {b - a for a, b in itertools.pairwise(ticks)} == {step}


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="must end after"):
        svg.gantt([], start=T0, end=T0)
