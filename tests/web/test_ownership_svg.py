"""The ownership graph drawn as SVG: valid XML whatever the names, the layered layout, the marks
and percentages, the cap on boxes. Pure: no database, no browser."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.web.ownership_svg import (
    EdgeKind,
    GraphEdge,
    GraphNode,
    NodeMark,
    OwnershipGraph,
    distances,
    layout,
    render,
    stake_label,
)
from gpulease.web.svg_text import shorten, visible

SVG = "{http://www.w3.org/2000/svg}"


def _graph() -> OwnershipGraph:
    """tenant <- 60 % holdco <- 100 % listed parent; a director; a cycle; an unlinked party."""
    return OwnershipGraph(
        "t",
        (
            GraphNode("t", "Acme AI Ltd", marks=frozenset({NodeMark.SUBJECT, NodeMark.BLOCKED})),
            GraphNode("h", "Acme Holdings", marks=frozenset({NodeMark.BLOCKED})),
            GraphNode("p", "Huawei Technologies", marks=frozenset({NodeMark.LISTED}), note="SDN"),
            GraphNode("d", "Jane Roe", kind="person"),
            GraphNode("x", "Beside Co", marks=frozenset({NodeMark.NOT_LINKED})),
        ),
        (
            GraphEdge("h", "t", EdgeKind.STAKE, "60 %"),
            GraphEdge("p", "h", EdgeKind.STAKE, "100 %"),
            GraphEdge("d", "t", EdgeKind.ROLE, "director"),
            GraphEdge("t", "h", EdgeKind.STAKE, "5 %"),  # a cross-shareholding
            GraphEdge("h", "t", EdgeKind.STAKE, "10 %", current=False),
        ),
    )


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def test_layers_put_owners_above_what_they_own_and_unlinked_parties_on_top() -> None:
    graph = _graph()
    assert distances(graph) == {"t": 0, "h": 1, "d": 1, "p": 2}
    placed = layout(graph).placed
    assert placed["t"].y > placed["h"].y > placed["p"].y
    assert placed["d"].y == placed["h"].y
    assert placed["x"].y < placed["p"].y  # not linked: a row of its own, on top
    assert placed["x"].layer == 3


def test_the_drawing_is_valid_xml_with_names_percentages_and_marks_in_words() -> None:
    svg = render(_graph(), title="Ownership of Acme AI Ltd", id_prefix="case-1")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    texts = _texts(svg)
    for expected in ("Acme AI Ltd", "Huawei Technologies", "60 %", "100 %", "director", "5 %"):
        assert expected in texts
    assert "10 % (not held)" in texts
    kinds = [t for t in texts if "LISTED" in t or "BLOCKED" in t or "not linked" in t]
    assert any("LISTED" in t for t in kinds)
    assert any("not linked" in t for t in kinds)
    # tooltips say the edge in words; the listed party's note is in its box's title
    titles = ["".join(e.itertext()) for e in root.iter(f"{SVG}title")]
    assert "Acme Holdings owns 60 % of Acme AI Ltd" in titles
    assert any(t == "Huawei Technologies (organization): SDN" for t in titles)
    classes = {e.get("class") for e in root.iter(f"{SVG}g")}
    assert "og-node og-listed" in classes
    assert "og-edge og-role" in classes
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert ids == {"case-1-title", "case-1-desc", "case-1-arrow"}
    assert "style=" not in svg
    assert "<script" not in svg


HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "Tom & Jerry's <Holdings>",
    "\x00\x01bad\x0bchars\ufffe",
    "]]><!--",
    "A" * 500,
    "\u202eevil RTL",
]


def test_hostile_names_are_escaped_never_markup() -> None:
    nodes = tuple(GraphNode(f"n{i}", name) for i, name in enumerate(HOSTILE))
    edges = tuple(
        GraphEdge(f"n{i}", "n0", EdgeKind.ROLE, HOSTILE[i]) for i in range(1, len(HOSTILE))
    )
    svg = render(OwnershipGraph("n0", nodes, edges), title=HOSTILE[0], id_prefix='x"><script>')
    root = ET.fromstring(svg)  # well-formed
    assert not [e for e in root.iter() if e.tag.endswith("script") or e.tag.endswith("img")]
    assert "<script" not in svg
    assert "onerror=alert" not in svg.replace("onerror=alert(1)&gt;", "")
    assert all(not k.startswith("on") for e in root.iter() for k in e.attrib)
    titles = ["".join(e.itertext()) for e in root.iter(f"{SVG}title")]
    assert titles[0] == HOSTILE[0]  # the text survives, as text
    assert any("Tom & Jerry's <Holdings>" in t for t in titles)
    assert root.get("aria-labelledby") == "xscript-title xscript-desc"
    # labels are cut to a box; the whole name stays in the tooltip
    assert shorten("A" * 500, 26) in _texts(svg)
    assert any("A" * 500 in t for t in titles)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=8),
    links=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=12),
)
def test_any_names_and_edges_give_well_formed_svg(
    names: list[str], links: list[tuple[int, int]]
) -> None:
    nodes = tuple(GraphNode(f"p{i}", n) for i, n in enumerate(names))
    edges = tuple(
        GraphEdge(f"p{a}", f"p{b}", EdgeKind.STAKE, f"{a + b} %")
        for a, b in links
        if a != b and a < len(names) and b < len(names)
    )
    svg = render(OwnershipGraph("p0", nodes, edges), title=names[0])
    root = ET.fromstring(svg)
    boxes = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("og-node")]
    assert len(boxes) == len(names)


def test_a_large_case_draws_the_subject_and_flagged_parties_first_and_names_the_rest() -> None:
    owners = [GraphNode(f"o{i:03}", f"Owner {i:03}") for i in range(150)]
    flagged = GraphNode("z", "Zeta Listed", marks=frozenset({NodeMark.LISTED}))
    graph = OwnershipGraph(
        "t",
        (GraphNode("t", "Tenant"), *owners, flagged),
        (
            *tuple(GraphEdge(o.id, "t", EdgeKind.STAKE, "0.5 %") for o in owners),
            GraphEdge("z", "o149", EdgeKind.STAKE, "100 %"),
        ),
    )
    drawn = layout(graph, max_nodes=40)
    assert len(drawn.placed) == 40
    assert len(drawn.omitted) == 112
    assert "t" in drawn.placed
    assert "z" in drawn.placed
    assert "o149" in drawn.placed  # the flagged party's way to the tenant is drawn with it
    rows = {p.y for p in drawn.placed.values()}
    assert len(rows) >= 6  # a layer of 38 owners wraps onto rows of at most 8
    svg = render(graph, title="big", max_nodes=40)
    assert "112 parties not drawn" in "".join(ET.fromstring(svg).find(f"{SVG}desc").itertext())  # type: ignore[union-attr]


def test_stake_labels_are_the_declared_percentage() -> None:
    assert stake_label(Decimal("60")) == "60 %"
    assert stake_label(Decimal("60.00")) == "60 %"
    assert stake_label(Decimal("33.3300")) == "33.33 %"
    assert stake_label(Decimal("1E+2")) == "100 %"
    assert stake_label("0.5") == "0.5 %"


def test_invisible_characters_are_shown_not_obeyed() -> None:
    """A right-to-left override or a zero-width space in a name would show the officer a name
    other than the one screened: each is written out."""
    spoof = "Acme \u202eaweiuh\u202c Ltd\u200b"
    svg = render(OwnershipGraph("a", (GraphNode("a", spoof),)), title=spoof)
    root = ET.fromstring(svg)
    shown = "".join(root.itertext())
    assert "\u202e" not in shown
    assert "\u200b" not in shown
    assert "Acme \u27e8U+202E\u27e9aweiuh\u27e8U+202C\u27e9 Ltd\u27e8U+200B\u27e9" in shown
    assert visible("plain ASCII & <b>") == "plain ASCII & <b>"
    assert visible("Zürich 北京") == "Zürich 北京"  # letters of any script stay as they are
    assert visible("a\x85b") == "a\u27e8U+0085\u27e9b"
