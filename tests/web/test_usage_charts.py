"""The SVG bar and line charts: valid XML, exact figures in tooltips, nice axes, hostile labels
as text, bad values refused. Pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from gpulease.web.usage_charts import Bar, Series, bar_chart, figure, line_chart, nice_max

SVG = "{http://www.w3.org/2000/svg}"


def _titles(svg: str) -> list[str]:
    return ["".join(e.itertext()) for e in ET.fromstring(svg).iter(f"{SVG}title")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 1), (0.3, 0.5), (1, 1), (7, 10), (10.5, 20), (240, 250), (2501, 5000), (1e6, 1e6)],
)
def test_nice_max(value: float, expected: float) -> None:
    assert nice_max(value) == pytest.approx(expected)


def test_bars_scale_to_the_largest_and_say_each_figure() -> None:
    svg = bar_chart(
        [Bar("INF Tech", Decimal("1728.5")), Bar("Bank", 864), Bar("Uni", 0)],
        title="GPU-hours by tenant",
        unit="GPU-h",
        id_prefix="usage",
    )
    root = ET.fromstring(svg)
    rects = list(root.iter(f"{SVG}rect"))
    heights = [float(r.get("height", "0")) for r in rects]
    assert heights[0] == pytest.approx(2 * heights[1], rel=1e-3)
    assert heights[2] == 0
    assert [r.get("data-value") for r in rects] == ["1728.5", "864", "0"]
    titles = _titles(svg)
    assert "INF Tech: 1,728.5 GPU-h" in titles
    assert "Bank: 864 GPU-h" in titles
    desc = root.find(f"{SVG}desc")
    assert desc is not None
    assert desc.text == "3 bars, total 2,592.5 GPU-h"
    ticks = ["".join(t.itertext()) for t in root.iter(f"{SVG}text") if t.get("class") == "uc-tick"]
    assert ticks == ["0", "400", "800", "1,200", "1,600", "2,000"]


def test_lines_one_per_series_with_point_tooltips_and_a_legend() -> None:
    labels = [f"2026-03-{d:02}" for d in range(1, 31)]
    svg = line_chart(
        labels,
        [Series("INF Tech", tuple(float(d) for d in range(30))), Series("Bank", (5.0,) * 30)],
        title="GPU-hours per day",
        unit="GPU-h",
    )
    root = ET.fromstring(svg)
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 2
    assert len(lines[0].get("points", "").split()) == 30
    assert lines[0].get("stroke") != lines[1].get("stroke")
    assert lines[1].get("stroke-dasharray")  # told apart without colour too
    assert "INF Tech, 2026-03-30: 29 GPU-h" in _titles(svg)
    xlabels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "uc-xlabel"]
    assert 1 < len(xlabels) <= 12
    legend = ["".join(g.itertext()) for g in root.iter(f"{SVG}g") if g.get("class") == "uc-legend"]
    assert legend == ["INF Tech", "Bank"]


def test_hostile_labels_stay_text() -> None:
    evil = '<script>alert("x")</script>&\x07'
    for svg in (
        bar_chart([Bar(evil, 1, note=evil)], title=evil, unit=evil),
        line_chart([evil], [Series(evil, (1.0,))], title=evil, unit="h"),
    ):
        root = ET.fromstring(svg)
        assert not [e for e in root.iter() if e.tag.endswith("script")]
        assert "<script" not in svg
        assert "\x07" not in svg
        assert any('<script>alert("x")</script>&' in t for t in _titles(svg))


def test_empty_charts_say_so() -> None:
    for svg in (bar_chart([], title="t", unit="h"), line_chart([], [], title="t", unit="h")):
        texts = ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")]
        assert "no data in this period" in texts


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1, Decimal("-0.5")])
def test_values_that_are_not_usage_are_refused(bad: float | Decimal) -> None:
    with pytest.raises(ValueError, match="finite value of 0 or more"):
        bar_chart([Bar("x", bad)], title="t", unit="h")
    with pytest.raises(ValueError, match="finite value of 0 or more"):
        line_chart(["a"], [Series("s", (bad,))], title="t", unit="h")


def test_bounds_and_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="at most 100 bars"):
        bar_chart([Bar(str(i), 1) for i in range(101)], title="t", unit="h")
    with pytest.raises(ValueError, match="2 values for 3 labels"):
        line_chart(["a", "b", "c"], [Series("s", (1.0, 2.0))], title="t", unit="h")
    assert figure(1234.56) == "1,234.6"
    assert figure(12.34) == "12.3"
    assert figure(3.0) == "3"
    assert figure(12345.6) == "12,346"
