"""Gang placement on literal free maps: best fit, spanning, nodes, segments, reasons."""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import JobSpec, TopologyMode, TopologyRequest
from gpulease.inventory.topology import Cluster, ClusterSpec, build_cluster, parse_cluster_spec
from gpulease.scheduler.engine import _domain_word
from gpulease.scheduler.placement import (
    FreeMap,
    Placement,
    WaitCode,
    WaitReason,
    _choose_bins,
    _smallest_fitting,
    min_racks_needed,
    never_fits,
    place,
    racks_spanned,
)
from gpulease.scheduler.state import SchedulerState

MakeJob = Callable[..., JobSpec]


def cluster_of(text: str) -> Cluster:
    return build_cluster(parse_cluster_spec(text))


def free_map(cluster: Cluster, per_rack: list[list[int]]) -> FreeMap:
    """Free GPUs given rack by rack, node by node."""
    flat = [count for rack in per_rack for count in rack]
    assert len(flat) == len(cluster.nodes)
    return FreeMap(cluster, flat)


def placed(outcome: Placement | WaitReason) -> Placement:
    assert not isinstance(outcome, WaitReason), outcome
    return outcome


def waited(outcome: Placement | WaitReason) -> WaitReason:
    assert isinstance(outcome, WaitReason), outcome
    return outcome


def rack_totals(cluster: Cluster, placement: Placement) -> dict[int, int]:
    totals: dict[int, int] = {}
    for node, count in placement:
        rack = cluster.nodes[node].rack
        totals[rack] = totals.get(rack, 0) + count
    return totals


GB200_3 = cluster_of("3x18x4")  # 3 NVL72 racks of 72 GPUs
NODE = [4] * 18


# ------------------------------------------------------------------ best fit, spanning


def test_free_map_totals() -> None:
    free = free_map(GB200_3, [NODE, [4] * 12 + [0] * 6, [4] * 11 + [0] * 7])
    assert free.rack_free == [72, 48, 44]
    assert free.total == 164
    clone = free.copy()
    clone.take(((0, 4), (18, 2)))
    assert (clone.rack_free, clone.total, clone.node_free[18]) == ([68, 46, 44], 158, 2)
    assert (free.rack_free, free.total) == ([72, 48, 44], 164)  # the copy is independent
    clone.give([(0, 4), (18, 2)])
    assert clone.node_free == free.node_free
    assert (clone.rack_free, clone.total) == ([72, 48, 44], 164)


def test_best_fit_rack_keeps_a_full_rack_whole(job: MakeJob) -> None:
    # rack 0 is empty (72 free), rack 1 has 48 free, rack 2 has 44: a 40-GPU job goes to
    # rack 2, the least capacity that still fits.
    free = free_map(GB200_3, [NODE, [4] * 12 + [0] * 6, [4] * 11 + [0] * 7])
    placement = placed(place(job("a", 40), free))
    assert placement == tuple((node, 4) for node in range(36, 46))
    assert rack_totals(GB200_3, placement) == {2: 40}
    assert free.rack_free == [72, 48, 44]  # place() does not modify the map


def test_best_fit_node_inside_a_rack(job: MakeJob) -> None:
    cluster = cluster_of("1x4x8")
    free = free_map(cluster, [[8, 3, 5, 4]])
    assert placed(place(job("a", 4), free)) == ((3, 4),)  # exact fit
    assert placed(place(job("b", 5), free)) == ((2, 5),)
    assert placed(place(job("c", 2), free)) == ((1, 2),)
    # No node fits 10: the largest node, then the smallest that covers the remainder.
    assert placed(place(job("d", 10), free)) == ((0, 8), (1, 2))
    assert placed(place(job("e", 16), free)) == ((0, 8), (1, 3), (2, 5))


@pytest.mark.parametrize("gpus", [1, 4, 37, 72])
def test_a_job_that_fits_one_rack_never_spans(job: MakeJob, gpus: int) -> None:
    # Only 40 free in rack 0 and 36 in rack 1 after a 72-GPU rack is half taken:
    # anything up to the largest single block stays in one rack.
    free = free_map(GB200_3, [[4] * 10 + [0] * 8, [4] * 9 + [0] * 9, NODE])
    placement = placed(place(job("a", gpus), free))
    assert racks_spanned(GB200_3, placement) == 1
    assert sum(count for _, count in placement) == gpus


def test_larger_than_a_rack_spans_the_fewest_racks(job: MakeJob) -> None:
    # Free 72 / 50 / 30: 100 GPUs take the full rack, then the smallest rack that covers
    # the remaining 28 (rack 2, 30 free), leaving rack 1 whole.
    free = free_map(GB200_3, [NODE, [4] * 12 + [2] + [0] * 5, [4] * 7 + [2] + [0] * 10])
    assert free.rack_free == [72, 50, 30]
    placement = placed(place(job("a", 100), free))
    assert rack_totals(GB200_3, placement) == {0: 72, 2: 28}
    assert racks_spanned(GB200_3, placement) == 2
    # 130 GPUs: 72 + 50 is not enough, so three racks, the last one partly.
    assert rack_totals(GB200_3, placed(place(job("b", 130), free))) == {0: 72, 1: 50, 2: 8}


def test_spanning_on_an_empty_site(job: MakeJob) -> None:
    cluster = cluster_of("5x18x4")
    empty = FreeMap(cluster, [4] * 90)
    for gpus, racks in [(72, 1), (73, 2), (144, 2), (145, 3), (360, 5)]:
        placement = placed(place(job(f"j{gpus}", gpus), empty))
        assert racks_spanned(cluster, placement) == racks
        assert min_racks_needed(job(f"j{gpus}", gpus), cluster) == racks


# ------------------------------------------------------------------------ gpus_per_node


def test_gpus_per_node_is_exact(job: MakeJob) -> None:
    cluster = cluster_of("1x4x8")
    free = free_map(cluster, [[8, 6, 3, 8]])
    # Nodes with >= 4 free, fullest-fit first: node 1 (6), then node 0 (8).
    assert placed(place(job("a", 8, gpus_per_node=4), free)) == ((0, 4), (1, 4))
    assert placed(place(job("b", 12, gpus_per_node=4), free)) == ((0, 4), (1, 4), (3, 4))
    # Fullest-fit: the nodes with the fewest free GPUs that still fit (3, 6, 8 free).
    assert placed(place(job("c", 3, gpus_per_node=1), free)) == ((0, 1), (1, 1), (2, 1))
    assert placed(place(job("d", 16, gpus_per_node=8), free)) == ((0, 8), (3, 8))


def test_gpus_per_node_counts_only_nodes_with_enough_free(job: MakeJob) -> None:
    cluster = cluster_of("1x4x8")
    free = free_map(cluster, [[8, 3, 3, 3]])
    reason = waited(place(job("a", 12, gpus_per_node=4), free))
    assert reason == WaitReason(
        WaitCode.NO_NODES, "needs 3 nodes with 4 free GPUs each; not enough are free"
    )


def test_gpus_per_node_across_racks(job: MakeJob) -> None:
    cluster = cluster_of("2x2x4")
    free = free_map(cluster, [[4, 2], [4, 3]])
    # Rack capacity counts whole nodes of 4: 4 in each rack; 8 GPUs must span.
    placement = placed(place(job("a", 8, gpus_per_node=4), free))
    assert placement == ((0, 4), (2, 4))
    reason = waited(place(job("b", 8, gpus_per_node=4, topology="required"), free))
    assert reason == WaitReason(
        WaitCode.NO_DOMAIN_BLOCK, "needs 8 GPUs in one rack; no rack has that many free"
    )


# ----------------------------------------------------------------------------- segments


def test_each_segment_sits_in_one_rack(job: MakeJob) -> None:
    cluster = cluster_of("3x2x4")
    free = free_map(cluster, [[4, 4], [4, 2], [2, 2]])
    assert free.rack_free == [8, 6, 4]
    # Three segments of 4: two fit rack 0, one fits rack 1 (6 free) or rack 2 (4 free);
    # the fewest racks, then the first smallest bin that covers the last segment.
    placement = placed(place(job("a", 12, segment=4), free))
    assert rack_totals(cluster, placement) == {0: 8, 1: 4}
    assert placement == ((0, 4), (1, 4), (2, 4))
    # A 12-GPU job without segments packs the same way but may split 6 + 4 + 2.
    assert rack_totals(cluster, placed(place(job("b", 12, topology="none"), free))) == {
        0: 8,
        2: 4,
    }


def test_segments_that_do_not_fit(job: MakeJob) -> None:
    cluster = cluster_of("3x2x4")
    free = free_map(cluster, [[4, 2], [3, 2], [2, 2]])
    assert free.rack_free == [6, 5, 4]
    reason = waited(place(job("a", 12, segment=6), free))
    assert reason == WaitReason(
        WaitCode.NO_DOMAIN_BLOCK,
        "needs 2 segments of 6 GPUs, each in one rack; free racks do not hold that many",
    )
    # Segments of 4 fit: one per rack (6, 5 and 4 free each hold one segment).
    assert rack_totals(cluster, placed(place(job("b", 12, segment=4), free))) == {
        0: 4,
        1: 4,
        2: 4,
    }


def test_segment_with_gpus_per_node(job: MakeJob) -> None:
    cluster = cluster_of("2x4x4")
    free = free_map(cluster, [[4, 4, 2, 4], [4, 4, 4, 4]])
    placement = placed(place(job("a", 16, gpus_per_node=4, segment=8), free))
    # Rack 0 holds 3 whole nodes (one segment of 8), rack 1 holds 4 (two segments): the
    # two segments go to rack 1 alone.
    assert placement == ((4, 4), (5, 4), (6, 4), (7, 4))
    assert placed(place(job("b", 24, gpus_per_node=4, segment=8), free)) == (
        (0, 4),
        (1, 4),
        (4, 4),
        (5, 4),
        (6, 4),
        (7, 4),
    )


# ------------------------------------------------------------------ required / preferred


GB200_2 = cluster_of("2x18x4")


def test_required_failure_says_what_is_missing(job: MakeJob) -> None:
    # 40 free in rack 0, 36 in rack 1: 76 free in all, no NVLink domain with 64.
    free = free_map(GB200_2, [[4] * 10 + [0] * 8, [4] * 9 + [0] * 9])
    state = SchedulerState(GB200_2)
    domain = _domain_word(state)
    assert domain == "NVLink domain"
    reason = waited(place(job("a", 64, topology="required"), free, domain=domain))
    assert reason == WaitReason(
        WaitCode.NO_DOMAIN_BLOCK,
        "needs 64 GPUs in one NVLink domain; no NVLink domain has that many free",
    )


def test_preferred_falls_back_to_spanning(job: MakeJob) -> None:
    free = free_map(GB200_2, [[4] * 10 + [0] * 8, [4] * 9 + [0] * 9])
    for mode in ("preferred", "none"):
        placement = placed(place(job("a", 64, topology=mode), free, domain="NVLink domain"))
        assert rack_totals(GB200_2, placement) == {0: 40, 1: 24}


@pytest.mark.parametrize("mode", ["required", "segment"])
def test_required_picks_the_best_fit_rack(job: MakeJob, mode: str) -> None:
    # Same free map as test_best_fit_rack_keeps_a_full_rack_whole: the full rack 0 must stay
    # whole; a required 40-GPU job belongs in rack 2 (44 free), like a preferred one.
    free = free_map(GB200_3, [NODE, [4] * 12 + [0] * 6, [4] * 11 + [0] * 7])
    spec = job("a", 40, topology="required") if mode == "required" else job("a", 40, segment=40)
    assert rack_totals(GB200_3, placed(place(spec, free))) == {2: 40}


def test_required_takes_one_rack_when_one_fits(job: MakeJob) -> None:
    free = free_map(GB200_2, [[4] * 17 + [0], NODE])
    placement = placed(place(job("a", 64, topology="required"), free))
    assert rack_totals(GB200_2, placement) == {0: 64}


def test_not_enough_gpus_at_all(job: MakeJob) -> None:
    free = free_map(GB200_2, [[4] * 10 + [0] * 8, [0] * 18])
    assert waited(place(job("a", 41), free)) == WaitReason(
        WaitCode.NO_CAPACITY, "needs 41 GPUs; not enough free GPUs on schedulable nodes"
    )


# ------------------------------------------------------------------------- keep blocks

# Rack 0 hosts a 64-GPU gang (2 trays spare), rack 1 is free, rack 2 has 2 trays free.
AROUND = [[0] * 16 + [4, 4], NODE, [0] * 16 + [4, 4]]


def test_keep_blocks_sends_work_over_racks_without_a_block(job: MakeJob) -> None:
    free = free_map(GB200_3, AROUND)
    # best fit alone takes the free rack's last 64-GPU block for a 16-GPU job
    assert rack_totals(GB200_3, placed(place(job("m", 16), free))) == {1: 16}
    kept = placed(place(job("m", 16), free, keep_blocks=64))
    assert rack_totals(GB200_3, kept) == {0: 8, 2: 8}  # the two racks' spare trays
    assert free.rack_free == [8, 72, 8]  # not modified


def test_keep_blocks_only_where_it_matters(job: MakeJob) -> None:
    free = free_map(GB200_3, AROUND)
    # 8 GPUs fit in a spare pair of trays: best fit already leaves the block whole
    assert rack_totals(GB200_3, placed(place(job("s", 8), free, keep_blocks=64))) == {0: 8}
    # no room elsewhere: the block is used rather than the job kept waiting
    assert rack_totals(GB200_3, placed(place(job("l", 24), free, keep_blocks=64))) == {1: 24}
    # required locality and segments are never moved
    required = job("r", 16, topology="required")
    assert rack_totals(GB200_3, placed(place(required, free, keep_blocks=64))) == {1: 16}
    # a rack with a block to spare after the job keeps its block: no need to move
    two_blocks = cluster_of("2x36x4")  # 144-GPU racks hold two 64-GPU blocks
    roomy = free_map(two_blocks, [[4] * 36, [0] * 34 + [4, 4]])
    assert rack_totals(two_blocks, placed(place(job("m", 16), roomy, keep_blocks=64))) == {0: 16}


def test_keep_blocks_leaves_a_job_that_fits_a_partly_used_node_where_it_is(
    job: MakeJob,
) -> None:
    pair = cluster_of("2x18x4")
    # rack 0: a 64-GPU block and a node with 2 GPUs free; rack 1: no block, 69 free
    free = free_map(pair, [[4] * 16 + [2, 0], [4] * 15 + [3, 3, 3]])
    assert placed(place(job("s", 2), free, keep_blocks=64)) == ((16, 2),)  # block intact


@settings(max_examples=60, deadline=None)
@given(
    per_node=st.lists(st.sampled_from([0, 1, 2, 4]), min_size=54, max_size=54),
    gpus=st.sampled_from([1, 2, 4, 8, 16, 32, 48]),
    mode=st.sampled_from(["preferred", "none"]),
)
def test_keep_blocks_changes_where_never_whether(
    job: MakeJob, per_node: list[int], gpus: int, mode: str
) -> None:
    free = FreeMap(GB200_3, per_node)
    spec = job("x", gpus, topology=mode)
    plain = place(spec, free)
    kept = place(spec, free, keep_blocks=64)
    assert isinstance(plain, WaitReason) == isinstance(kept, WaitReason)
    if not isinstance(kept, WaitReason):
        assert sum(count for _, count in kept) == gpus
        assert all(count <= free.node_free[node] for node, count in kept)


def test_domain_word_follows_the_hardware() -> None:
    assert _domain_word(SchedulerState(cluster_of("1x18x4"))) == "NVLink domain"
    assert _domain_word(SchedulerState(cluster_of("4x5x8"))) == "rack"
    assert _domain_word(SchedulerState(cluster_of("4x4x8"))) == "rack"


# --------------------------------------------------------------------------- never fits


def test_never_fits(job: MakeJob) -> None:
    assert never_fits(job("a", 144), GB200_2) is None
    assert never_fits(job("b", 145), GB200_2) == WaitReason(
        WaitCode.NEVER_FITS,
        "never fits this site: needs 145 GPUs; 144 are installed",
    )
    assert never_fits(job("c", 73, topology="required"), GB200_2, domain="NVLink domain") == (
        WaitReason(
            WaitCode.NEVER_FITS,
            "never fits this site: needs 73 GPUs in one NVLink domain; the largest holds 72 GPUs",
        )
    )
    assert never_fits(job("d", 16, gpus_per_node=8), GB200_2) == WaitReason(
        WaitCode.NEVER_FITS,
        "never fits this site: needs 2 nodes with 8 GPUs each; the site has only 0 such nodes",
    )
    assert min_racks_needed(job("b", 145), GB200_2) == 0


def test_submit_refuses_a_job_that_never_fits(job: MakeJob) -> None:
    state = SchedulerState(GB200_2)
    with pytest.raises(InvalidRequest) as caught:
        state.submit(job("big", 96, topology="required"), domain="NVLink domain")
    assert caught.value.message == (
        "job big: never fits this site: needs 96 GPUs in one NVLink domain; "
        "the largest holds 72 GPUs"
    )
    assert caught.value.details == {"field": "gpus"}
    assert state.jobs == {}


# ------------------------------------------------------------- properties of the placer


@st.composite
def free_maps(draw: st.DrawFn) -> FreeMap:
    racks = draw(st.integers(1, 4))
    nodes = draw(st.integers(1, 4))
    gpus = draw(st.integers(1, 8))
    cluster = build_cluster(ClusterSpec(racks, nodes, gpus))
    return FreeMap(
        cluster,
        draw(st.lists(st.integers(0, gpus), min_size=racks * nodes, max_size=racks * nodes)),
    )


def fewest_racks(capacities: list[int], need: int) -> int | None:
    for count in range(1, len(capacities) + 1):
        if any(sum(c) >= need for c in combinations(capacities, count)):
            return count
    return None


@settings(max_examples=200, deadline=None)
@given(free=free_maps(), data=st.data())
def test_placement_properties(free: FreeMap, data: st.DataObject) -> None:
    cluster = free.cluster
    node_gpus = cluster.nodes[0].gpus
    gpus = data.draw(st.integers(1, max(1, cluster.total_gpus)))
    divisors = [d for d in range(1, node_gpus + 1) if gpus % d == 0]
    gpn = data.draw(st.sampled_from([None, *divisors]))
    mode = data.draw(st.sampled_from(list(TopologyMode)))
    spec = JobSpec("x", "t", gpus, 0.0, gpus_per_node=gpn, topology=TopologyRequest(mode))
    before = (list(free.node_free), list(free.rack_free), free.total)
    outcome = place(spec, free)
    assert (free.node_free, free.rack_free, free.total) == before
    if gpn is None:
        caps = list(free.rack_free)
    else:
        caps = [gpn * sum(1 for n in r.nodes if free.node_free[n] >= gpn) for r in cluster.racks]
    if isinstance(outcome, WaitReason):
        if mode is TopologyMode.REQUIRED:
            assert max(caps) < gpus
        else:
            assert sum(caps) < gpus
        return
    # whole gang, within the free GPUs, whole nodes of gpus_per_node
    assert sum(c for _, c in outcome) == gpus
    assert all(1 <= c <= free.node_free[n] for n, c in outcome)
    assert len({n for n, _ in outcome}) == len(outcome)
    if gpn is not None:
        assert all(c == gpn for _, c in outcome)
    spanned = racks_spanned(cluster, outcome)
    if any(cap >= gpus for cap in caps):
        assert spanned == 1  # fits one rack -> never spans
        if mode is not TopologyMode.REQUIRED:  # see test_required_picks_the_best_fit_rack
            chosen = next(iter(rack_totals(cluster, outcome)))
            assert caps[chosen] == min(c for c in caps if c >= gpus)  # best fit
    else:
        assert mode is not TopologyMode.REQUIRED
        assert spanned == fewest_racks(caps, gpus)


@settings(max_examples=300, deadline=None)
@given(
    caps=st.lists(st.integers(0, 12), min_size=1, max_size=40),
    data=st.data(),
    moves=st.lists(st.tuples(st.integers(0, 39), st.integers(-4, 4)), max_size=30),
)
def test_spread_racks_from_the_index_is_choose_bins(
    caps: list[int], data: st.DataObject, moves: list[tuple[int, int]]
) -> None:
    """The index's spread over racks (no rack holds the job) picks exactly the racks and
    counts of ``_choose_bins`` over every rack, also once takes and gives moved the index."""
    cluster = build_cluster(ClusterSpec(len(caps), 1, 12))
    free = FreeMap(cluster, list(caps))
    free.smallest_rack(1)  # builds the index, kept up to date from here
    for node, delta in moves:
        if node < len(caps):
            if delta > 0 and free.node_free[node] + delta <= 12:
                free.give(((node, delta),))
            elif delta < 0 and free.node_free[node] + delta >= 0:
                free.take(((node, -delta),))
    largest = max(free.rack_free)
    if free.total <= largest:
        return  # one rack holds every job the site can take: nothing to spread
    need = data.draw(st.integers(largest + 1, free.total))
    assert free.smallest_rack(need) == -1
    expected = _choose_bins([(r, c) for r, c in enumerate(free.rack_free) if c > 0], need)
    assert free.spread_racks(need) == expected


@settings(max_examples=300, deadline=None)
@given(
    caps=st.lists(st.integers(0, 12), min_size=1, max_size=40),
    moves=st.lists(st.tuples(st.integers(0, 39), st.integers(-4, 4)), max_size=30),
    copy_at=st.integers(0, 30),
)
def test_smallest_rack_from_the_kept_index_is_the_scan(
    caps: list[int], moves: list[tuple[int, int]], copy_at: int
) -> None:
    """The best-fit rack read from the index (capacities held, racks per capacity) is
    ``_smallest_fitting`` over every rack for every need, also once takes and gives (and a
    copy of the map) moved the index."""
    cluster = build_cluster(ClusterSpec(len(caps), 1, 12))
    free = FreeMap(cluster, list(caps))
    free.smallest_rack(1)  # builds the index, kept up to date from here
    for i, (node, delta) in enumerate(moves):
        if i == copy_at:
            free = free.copy()
        if node < len(caps):
            if delta > 0 and free.node_free[node] + delta <= 12:
                free.give(((node, delta),))
            elif delta < 0 and free.node_free[node] + delta >= 0:
                free.take(((node, -delta),))
    racks = range(len(caps))
    for need in range(0, 14):
        assert free.smallest_rack(need) == _smallest_fitting(racks, free.rack_free, need)
