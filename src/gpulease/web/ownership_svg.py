"""An ownership and control graph drawn as SVG on the server: parties, stakes, roles.

Vocabulary. A :class:`GraphNode` is a party of a KYC case (the tenant organisation is the
*subject*), with its :class:`NodeMark` s: ``listed`` (a block-level hit on a screening list:
the party itself is listed), ``possible`` (a possible match an officer must look at),
``blocked`` (named by a block: the subject blocked under a rule, or an owner through which it
is), ``not_linked`` (declared but reached from the subject by no stake or role). A
:class:`GraphEdge` is a stake (``owner`` holds a percentage of ``owned``; the arrow points
from owner to owned, labelled with the percentage) or a role (``holder`` is a director... of
``org``; dashed, labelled with the role); ``current=False`` marks a stake not held on the
screening day (drawn faint, its label says so).

Layout (:func:`layout`, a simple layered one, no JavaScript library). The subject sits in the
bottom row; every other party sits in the row of its distance from the subject walking up the
edges (owners of the subject one row up, their owners another...; shortest distance, so
cross-shareholdings and cycles terminate); parties no edge links to the subject share a top
row of their own. A row holds at most :data:`PER_ROW` boxes (a longer layer wraps onto
further rows). Within a layer, parties are ordered by the mean position of the parties they
own or serve in the rows below (the barycentre heuristic: fewer crossings), then by name and
id, so the same graph always gives the same drawing. At most :data:`MAX_NODES` parties are
drawn: the subject, then the marked ones, then the nearest; the rest are named in
``Layout.omitted`` (the page lists every party and edge in a table anyway).

Invariants. The output is well-formed XML whatever the names hold: every name, role and
label goes through :mod:`gpulease.web.svg_text` (escaped, characters XML forbids replaced);
the element ids are the caller's ``id_prefix`` (restricted to ``[a-z0-9-]``) plus numbers,
never a party's id or name. Marks are shown by words and border style as well as colour.
Styles are classes (``og-*``, themed by the page's stylesheet) over presentation attributes
that read well on their own; no inline ``style``, no script (the page's CSP forbids both).
Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from gpulease.web.svg_text import num, shorten, text

MAX_NODES = 60  # boxes drawn; the rest are listed in ``Layout.omitted``
PER_ROW = 8  # boxes in one row before a layer wraps
BOX_W, BOX_H = 188.0, 50.0
GAP_X, ROW_H = 36.0, 112.0
MARGIN = 24.0
LABEL_CHARS = 26


class NodeMark(StrEnum):
    SUBJECT = "subject"
    LISTED = "listed"
    POSSIBLE = "possible"
    BLOCKED = "blocked"
    NOT_LINKED = "not_linked"

    @property
    def words(self) -> str:
        return _MARK_WORDS[self]


_MARK_WORDS = {
    NodeMark.SUBJECT: "tenant",
    NodeMark.LISTED: "LISTED",
    NodeMark.POSSIBLE: "possible match",
    NodeMark.BLOCKED: "BLOCKED",
    NodeMark.NOT_LINKED: "not linked",
}
# the class of a box: its most serious mark
_SEVERITY = (NodeMark.LISTED, NodeMark.BLOCKED, NodeMark.POSSIBLE, NodeMark.SUBJECT)
_FILL = {NodeMark.LISTED: "#fde2e1", NodeMark.BLOCKED: "#fde2e1", NodeMark.POSSIBLE: "#fff4ce"}
_STROKE = {NodeMark.LISTED: "#b3261e", NodeMark.BLOCKED: "#b3261e", NodeMark.POSSIBLE: "#8a6100"}


class EdgeKind(StrEnum):
    STAKE = "stake"
    ROLE = "role"


@dataclass(frozen=True, slots=True)
class GraphNode:
    id: str
    name: str
    kind: str = "organization"  # a PartyKind value
    marks: frozenset[NodeMark] = frozenset()
    note: str = ""  # said in the box's tooltip (e.g. which list entry)


@dataclass(frozen=True, slots=True)
class GraphEdge:
    source: str  # the owner, or the role's holder
    target: str  # the owned, or the organisation the role is in
    kind: EdgeKind
    label: str  # "60 %", "director"
    current: bool = True  # held on the screening day


@dataclass(frozen=True, slots=True)
class OwnershipGraph:
    subject: str
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...] = ()


@dataclass(frozen=True, slots=True)
class Placed:
    node: GraphNode
    x: float  # the box's centre
    y: float
    layer: int  # distance from the subject (the top layer: parties not linked)


@dataclass(frozen=True, slots=True)
class Layout:
    placed: Mapping[str, Placed]
    width: float
    height: float
    omitted: tuple[GraphNode, ...] = field(default=())


def distances(graph: OwnershipGraph) -> dict[str, int]:
    """Each party's distance from the subject walking from owned to owner (and from an
    organisation to its role holders); parties not reached are absent."""
    return {party: depth for party, (depth, _via) in _walk(graph).items()}


def _walk(graph: OwnershipGraph) -> dict[str, tuple[int, str | None]]:
    """Breadth first from the subject up the edges: each reached party's distance and the
    party one step nearer the subject it was reached from."""
    up: dict[str, list[str]] = {}
    for edge in graph.edges:
        up.setdefault(edge.target, []).append(edge.source)
    found: dict[str, tuple[int, str | None]] = {graph.subject: (0, None)}
    frontier = [graph.subject]
    while frontier:
        following: list[str] = []
        for party in frontier:
            for above in sorted(up.get(party, ())):
                if above not in found:
                    found[above] = (found[party][0] + 1, party)
                    following.append(above)
        frontier = following
    return found


def layout(graph: OwnershipGraph, *, max_nodes: int = MAX_NODES) -> Layout:
    """Where each drawn party goes (see the module docstring)."""
    nodes = _unique(graph.nodes)
    walk = _walk(graph)
    depth = {party: d for party, (d, _via) in walk.items()}
    unlinked_layer = max((d for p, d in depth.items() if p in nodes), default=0) + 1

    def layer_of(party: str) -> int:
        return depth.get(party, unlinked_layer)

    def priority(node: GraphNode) -> tuple[int, int, int, str, str]:
        flagged = bool(node.marks & {NodeMark.LISTED, NodeMark.BLOCKED, NodeMark.POSSIBLE})
        return (node.id != graph.subject, not flagged, layer_of(node.id), node.name, node.id)

    # a flagged party comes with the parties between it and the subject, so it is never
    # drawn floating apart from the chain that makes it matter
    order: dict[str, None] = {}
    for node in sorted(nodes.values(), key=priority):
        path = [node.id]
        while (via := walk.get(path[-1], (0, None))[1]) is not None:
            path.append(via)
        for party in reversed(path):
            if party in nodes:
                order.setdefault(party)
    drawn = set(list(order)[: max(1, max_nodes)])
    omitted = tuple(nodes[p] for p in order if p not in drawn)

    below: dict[str, list[str]] = {}  # a party -> the parties it owns or serves
    for edge in graph.edges:
        if edge.source in drawn and edge.target in drawn:
            below.setdefault(edge.source, []).append(edge.target)
    layers: dict[int, list[str]] = {}
    for party in drawn:
        layers.setdefault(layer_of(party), []).append(party)

    slot_x: dict[str, float] = {}  # a party's position in its row, 0..1
    rows: list[list[str]] = []  # bottom row first
    for number in sorted(layers):

        def barycentre(party: str) -> float:
            seen = [slot_x[t] for t in below.get(party, ()) if t in slot_x]
            return sum(seen) / len(seen) if seen else 0.5

        members = sorted(layers[number], key=lambda p: (barycentre(p), nodes[p].name, p))
        for start in range(0, len(members), PER_ROW):
            row = members[start : start + PER_ROW]
            rows.append(row)
            for i, party in enumerate(row):
                slot_x[party] = (i + 0.5) / len(row)

    widest = max((len(r) for r in rows), default=1)
    width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X
    height = 2 * MARGIN + (len(rows) - 1) * ROW_H + BOX_H
    placed: dict[str, Placed] = {}
    for r, row in enumerate(rows):
        y = MARGIN + (len(rows) - 1 - r) * ROW_H + BOX_H / 2
        span = len(row) * BOX_W + (len(row) - 1) * GAP_X
        left = (width - span) / 2 + BOX_W / 2
        for i, party in enumerate(row):
            placed[party] = Placed(nodes[party], left + i * (BOX_W + GAP_X), y, layer_of(party))
    return Layout(placed, width, height, omitted)


def render(
    graph: OwnershipGraph,
    *,
    title: str,
    id_prefix: str = "og",
    max_nodes: int = MAX_NODES,
) -> str:
    """The graph as one ``<svg>`` element (see the module docstring for the guarantees)."""
    prefix = re.sub(r"[^a-z0-9-]", "", id_prefix.lower()) or "og"
    drawn = layout(graph, max_nodes=max_nodes)
    arrow = f"{prefix}-arrow"
    stakes = sum(1 for e in graph.edges if e.kind is EdgeKind.STAKE)
    roles = len(graph.edges) - stakes
    summary = f"{len(graph.nodes)} parties, {stakes} stakes, {roles} roles" + (
        f"; {len(drawn.omitted)} parties not drawn" if drawn.omitted else ""
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="og" role="img" '
        f'viewBox="0 0 {num(drawn.width)} {num(drawn.height)}" '
        f'width="{num(drawn.width)}" height="{num(drawn.height)}" '
        f'aria-labelledby="{prefix}-title {prefix}-desc">',
        f'<title id="{prefix}-title">{text(title)}</title>',
        f'<desc id="{prefix}-desc">{text(summary)}</desc>',
        "<defs>",
        f'<marker id="{arrow}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" class="og-arrowhead" fill="#555"/></marker>',
        "</defs>",
    ]
    names = {n.id: n.name for n in graph.nodes}
    shown = [e for e in graph.edges if e.source in drawn.placed and e.target in drawn.placed]
    ports = _ports(shown, drawn.placed)
    pair_count: dict[frozenset[str], int] = {}
    for i, edge in enumerate(shown):
        key = frozenset((edge.source, edge.target))
        repeat = pair_count.get(key, 0)
        pair_count[key] = repeat + 1
        out.append(_edge(edge, drawn.placed, names, arrow, repeat, ports[i]))
    out += [_node(p) for p in sorted(drawn.placed.values(), key=lambda p: (p.y, p.x))]
    out.append("</svg>")
    return "\n".join(out)


def _unique(nodes: Iterable[GraphNode]) -> dict[str, GraphNode]:
    found: dict[str, GraphNode] = {}
    for node in nodes:
        found.setdefault(node.id, node)
    return found


def _node(placed: Placed) -> str:
    node = placed.node
    mark = next((m for m in _SEVERITY if m in node.marks), None)
    classes = "og-node" + (f" og-{mark.value}" if mark else "")
    if NodeMark.NOT_LINKED in node.marks:
        classes += " og-not_linked"
    words = [node.kind] + [m.words for m in NodeMark if m in node.marks]
    tooltip = (
        node.name
        + (f" ({node.kind})" if node.kind else "")
        + (f": {node.note}" if node.note else "")
    )
    x, y = placed.x - BOX_W / 2, placed.y - BOX_H / 2
    fill = _FILL.get(mark, "#ffffff") if mark else "#ffffff"
    stroke = _STROKE.get(mark, "#333333") if mark else "#333333"
    width = 3 if mark in (NodeMark.LISTED, NodeMark.BLOCKED) else 1.5
    dash = ' stroke-dasharray="5 3"' if NodeMark.NOT_LINKED in node.marks else ""
    return (
        f'<g class="{classes}"><title>{text(tooltip)}</title>'
        f'<rect x="{num(x)}" y="{num(y)}" width="{num(BOX_W)}" height="{num(BOX_H)}" rx="6" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/>'
        f'<text x="{num(placed.x)}" y="{num(placed.y - 5)}" text-anchor="middle" '
        f'class="og-name" font-size="13" font-weight="600" fill="#111">'
        f"{text(shorten(node.name, LABEL_CHARS))}</text>"
        f'<text x="{num(placed.x)}" y="{num(placed.y + 13)}" text-anchor="middle" '
        f'class="og-kind" font-size="11" fill="#333">'
        f"{text(shorten(' · '.join(words), LABEL_CHARS + 8))}</text></g>"
    )


def _ports(edges: list[GraphEdge], placed: Mapping[str, Placed]) -> list[tuple[float, float]]:
    """Where each edge leaves its source and enters its target, as x offsets from the boxes'
    centres: the edges at one side of a box are spread along it, ordered by where their other
    end lies, so arrows into one box do not meet in one point."""
    sides: dict[tuple[str, bool], list[tuple[float, int, int]]] = {}
    for i, edge in enumerate(edges):
        a, b = placed[edge.source], placed[edge.target]
        down = b.y > a.y + 1
        if abs(b.y - a.y) > 1:  # rows apart: ports on the facing sides
            sides.setdefault((edge.source, down), []).append((b.x, i, 0))
            sides.setdefault((edge.target, not down), []).append((a.x, i, 1))
    offsets = [[0.0, 0.0] for _ in edges]
    for members in sides.values():
        members.sort()
        step = min(28.0, (BOX_W - 24) / max(len(members), 1))
        for k, (_x, i, end) in enumerate(members):
            offsets[i][end] = (k - (len(members) - 1) / 2) * step
    return [(o[0], o[1]) for o in offsets]


_BENDS = (0.0, 70.0, -70.0, 140.0, -140.0)


def _edge(
    edge: GraphEdge,
    placed: Mapping[str, Placed],
    names: Mapping[str, str],
    arrow: str,
    repeat: int,
    port: tuple[float, float],
) -> str:
    a, b = placed[edge.source], placed[edge.target]
    bend = _BENDS[repeat % len(_BENDS)]
    if b.y > a.y + 1:  # downwards, the usual case: bottom of the owner to top of the owned
        x1, y1, x2, y2 = a.x + port[0], a.y + BOX_H / 2, b.x + port[1], b.y - BOX_H / 2
        mx, my = (x1 + x2) / 2 + bend, (y1 + y2) / 2
    elif b.y < a.y - 1:  # upwards (a cycle): top of the source to bottom of the target
        x1, y1, x2, y2 = a.x + port[0], a.y - BOX_H / 2, b.x + port[1], b.y + BOX_H / 2
        mx, my = (x1 + x2) / 2 + bend, (y1 + y2) / 2
    else:  # the same row: top to top, arched over the boxes between them
        x1, y1 = a.x + (12 if b.x > a.x else -12), a.y - BOX_H / 2
        x2, y2 = b.x - (12 if b.x > a.x else -12), b.y - BOX_H / 2
        lift = min(100.0, 48.0 + 0.08 * abs(x2 - x1) + 16.0 * repeat)
        mx, my = (x1 + x2) / 2, y1 - lift
    path = f"M{num(x1)},{num(y1)} Q{num(mx)},{num(my)} {num(x2)},{num(y2)}"
    # the label on the curve's midpoint (a quadratic Bezier at t = 0.5); the edges between
    # one pair of parties have their labels one under the other
    lx = (x1 + 2 * mx + x2) / 4
    ly = (y1 + 2 * my + y2) / 4 + 4 + (15 * repeat if y1 != y2 else 0)
    label = edge.label if edge.current else f"{edge.label} (not held)"
    verb = "owns" if edge.kind is EdgeKind.STAKE else "is"
    said = (
        f"{names.get(edge.source, edge.source)} {verb} {edge.label} of "
        f"{names.get(edge.target, edge.target)}"
        + ("" if edge.current else " (not held on the screening day)")
    )
    classes = f"og-edge og-{edge.kind.value}" + ("" if edge.current else " og-past")
    dash = ' stroke-dasharray="6 4"' if edge.kind is EdgeKind.ROLE else ""
    opacity = "" if edge.current else ' opacity="0.5"'
    return (
        f'<g class="{classes}"{opacity}><title>{text(said)}</title>'
        f'<path d="{path}" fill="none" stroke="#555" stroke-width="1.5"{dash} '
        f'marker-end="url(#{arrow})"/>'
        f'<text x="{num(lx)}" y="{num(ly)}" text-anchor="middle" class="og-label" '
        f'font-size="12" fill="#111" stroke="#fff" stroke-width="4" paint-order="stroke">'
        f"{text(shorten(label, 24))}</text></g>"
    )


def stake_label(percent: Decimal | str | int) -> str:
    """A stake's label: ``60 %``, ``33.33 %`` (as declared, no exponent, no trailing zeros)."""
    shown = format(Decimal(str(percent)), "f")
    if "." in shown:
        shown = shown.rstrip("0").rstrip(".")
    return f"{shown} %"


def role_words(role: str) -> str:
    return role.replace("_", " ")


__all__ = [
    "EdgeKind",
    "GraphEdge",
    "GraphNode",
    "Layout",
    "NodeMark",
    "OwnershipGraph",
    "Placed",
    "distances",
    "layout",
    "render",
    "role_words",
    "stake_label",
]
