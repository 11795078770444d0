"""The reservation plan: whole nodes for each lease, never one node in two overlapping
leases, stable from one pass to the next, and honest about what whole nodes cannot cover.
Literal cases first, then properties over random sites and lease books."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.leasing.reservation_plan import Cover, Coverage, PlanLease, PlanNode, plan

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def lease(lease_id: str, gpus: int, start: float = 0, end: float = 10) -> PlanLease:
    return PlanLease(lease_id, gpus, at(start), at(end))


def nodes(count: int, gpus: int = 4, down: tuple[int, ...] = ()) -> list[PlanNode]:
    return [PlanNode(f"n{i:02d}", gpus, i not in down) for i in range(count)]


def by_lease(covers: list[Cover]) -> dict[str, tuple[str, ...]]:
    return {c.lease_id: c.nodes for c in covers}


# ------------------------------------------------------------------ literal cases
def test_whole_nodes_rounded_down_and_said_so() -> None:
    a, b, c = plan(nodes(8), [lease("a", 8), lease("b", 6, 1), lease("c", 2, 2)])
    assert (a.nodes, a.gpus, a.coverage) == (("n00", "n01"), 8, Coverage.FULL)
    assert (b.nodes, b.gpus, b.coverage) == (("n02",), 4, Coverage.ROUNDED_DOWN)
    assert (
        b.describe() == "4 of 6 GPUs on 1 whole nodes: the other 2 fit no whole node (rounded down)"
    )
    assert (c.nodes, c.coverage) == ((), Coverage.ROUNDED_DOWN)  # smaller than a node: none


def test_overlapping_leases_never_share_and_disjoint_windows_may() -> None:
    covers = plan(nodes(3), [lease("a", 8, 0, 5), lease("b", 8, 4, 9), lease("c", 8, 5, 9)])
    got = by_lease(covers)
    assert got["a"] == ("n00", "n01")
    assert got["b"] == ("n02",)  # overlaps a: only the third node is left
    assert (covers[1].coverage, covers[1].missing) == (Coverage.SHORT, 4)
    assert "4 short" in covers[1].describe()
    assert got["c"] == ("n00", "n01")  # starts when a ends (half-open): a's nodes again


def test_a_lease_keeps_its_nodes_and_loses_only_a_down_one() -> None:
    previous = {"a": ["n05", "n06"], "b": ["n01"]}
    got = by_lease(plan(nodes(8), [lease("a", 8), lease("b", 4, 1)], previous))
    assert got == {"a": ("n05", "n06"), "b": ("n01",)}
    got = by_lease(plan(nodes(8, down=(6,)), [lease("a", 8), lease("b", 4, 1)], previous))
    assert got == {"a": ("n00", "n05"), "b": ("n01",)}  # n06 replaced by the first free node


def test_a_lease_that_shrinks_keeps_the_first_of_its_nodes_and_one_that_grows_adds() -> None:
    previous = {"a": ["n03", "n04", "n05"]}
    assert by_lease(plan(nodes(8), [lease("a", 8)], previous)) == {"a": ("n03", "n04")}
    assert by_lease(plan(nodes(8), [lease("a", 16)], previous)) == {
        "a": ("n00", "n03", "n04", "n05")
    }


def test_a_down_node_is_never_chosen_and_a_short_lease_says_so() -> None:
    (a,) = plan(nodes(2, down=(0,)), [lease("a", 8)])
    assert (a.nodes, a.coverage, a.missing) == (("n01",), Coverage.SHORT, 4)


def test_mixed_node_sizes() -> None:
    site = [PlanNode("a", 8), PlanNode("b", 4)]
    (x,) = plan(site, [lease("x", 10)])
    assert (x.nodes, x.gpus, x.coverage) == (("a",), 8, Coverage.ROUNDED_DOWN)  # b: 12 > 10
    (y,) = plan(site, [lease("y", 12)])
    assert (y.nodes, y.coverage) == (("a", "b"), Coverage.FULL)


# ------------------------------------------------------------------ properties
@st.composite
def books(draw: st.DrawFn) -> tuple[list[PlanNode], list[PlanLease], dict[str, list[str]]]:
    size = draw(st.sampled_from([4, 8]))
    mixed = draw(st.booleans())
    count = draw(st.integers(0, 12))
    site = [
        PlanNode(
            f"n{i:02d}",
            draw(st.sampled_from([4, 8])) if mixed else size,
            draw(st.booleans()) or draw(st.booleans()),  # mostly up
        )
        for i in range(count)
    ]
    book = []
    for i in range(draw(st.integers(0, 8))):
        start = draw(st.integers(0, 20))
        book.append(
            PlanLease(
                f"l{i}", draw(st.integers(1, 40)), at(start), at(start + draw(st.integers(1, 12)))
            )
        )
    names = [n.name for n in site] + ["gone"]
    previous = {
        lease.lease_id: draw(st.lists(st.sampled_from(names), max_size=4))
        for lease in book
        if draw(st.booleans())
    }
    return site, book, previous


def _overlap(a: PlanLease, b: PlanLease) -> bool:
    return a.start < b.end and b.start < a.end


@settings(max_examples=300, deadline=None)
@given(books())
def test_no_node_in_two_overlapping_leases_only_usable_nodes_never_too_many(
    book: tuple[list[PlanNode], list[PlanLease], dict[str, list[str]]],
) -> None:
    site, leases, previous = book
    covers = plan(site, leases, previous)
    gpus = {n.name: n.gpus for n in site}
    usable = {n.name for n in site if n.usable}
    of = {lease.lease_id: lease for lease in leases}
    assert [c.lease_id for c in covers] == [
        x.lease_id for x in sorted(leases, key=lambda x: (x.start, x.lease_id))
    ]
    for c in covers:
        assert set(c.nodes) <= usable
        assert c.gpus == sum(gpus[n] for n in c.nodes) <= of[c.lease_id].gpus
        assert (c.coverage is Coverage.FULL) == (c.gpus == c.wanted)
    for i, a in enumerate(covers):
        for b in covers[i + 1 :]:
            if _overlap(of[a.lease_id], of[b.lease_id]):
                assert not set(a.nodes) & set(b.nodes), (a, b)


@settings(max_examples=300, deadline=None)
@given(books())
def test_planning_again_from_its_own_output_changes_nothing(
    book: tuple[list[PlanNode], list[PlanLease], dict[str, list[str]]],
) -> None:
    site, leases, previous = book
    first = plan(site, leases, previous)
    again = plan(site, leases, {c.lease_id: list(c.nodes) for c in first})
    assert again == first


@settings(max_examples=300, deadline=None)
@given(books())
def test_coverage_is_honest(
    book: tuple[list[PlanNode], list[PlanLease], dict[str, list[str]]],
) -> None:
    """Not short: no node of the site fits in what is missing. Short: one fits but is down
    or held by an overlapping lease. Every node usable and no lease overlapping another:
    each lease gets every whole node it can (uniform nodes: floor(G / n))."""
    site, leases, previous = book
    covers = plan(site, leases, previous)
    of = {lease.lease_id: lease for lease in leases}
    holders = {c.lease_id: set(c.nodes) for c in covers}
    for c in covers:
        fitting = [n for n in site if 0 < n.gpus <= c.missing and n.name not in c.nodes]
        if c.coverage is Coverage.SHORT:
            assert fitting
            for n in fitting:
                assert not n.usable or any(
                    n.name in holders[o] and _overlap(of[o], of[c.lease_id])
                    for o in holders
                    if o != c.lease_id
                )
        elif c.coverage is Coverage.ROUNDED_DOWN:
            assert not fitting
    sizes = {n.gpus for n in site}
    alone = all(not _overlap(a, b) for i, a in enumerate(leases) for b in leases[i + 1 :]) and all(
        n.usable for n in site
    )
    if alone and len(sizes) == 1 and site:
        (size,) = sizes
        for c in covers:
            assert len(c.nodes) == min(c.wanted // size, len(site))


def test_a_lease_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        plan(nodes(2), [lease("a", 4), lease("a", 4)])
