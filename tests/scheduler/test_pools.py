"""``Pools.released_by`` keeps one view per release time across a step's changes.

The views (``pools._Early``) are built on the first question about a release time and
then brought up to date from the pools' journal. Whatever sequence of releases now or
later, starts and earmarks comes between two questions, a view must equal what the
released GPUs by that time give when recomputed from the pools' own tables: ``soon``
without the GPUs released later, and that plus ``free``.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.scheduler.placement import FreeMap
from gpulease.scheduler.pools import Pools
from gpulease.scheduler.state import SchedulerState

TIMES = (10.0, 20.0, 30.0)
RACKS, NODES, GPUS = 3, 2, 4

Op = tuple[str, int, int, float]  # (kind, node, GPUs, time)


def expected(pools: Pools, at: float) -> tuple[list[int], list[int]]:
    """``soon`` GPUs released by ``at`` per node, from the per-time tables, and the same
    plus the free ones."""
    early = [0] * len(pools.free.node_free)
    for t in TIMES:
        if t <= at:
            for node, count in pools._nodes(t).items():
                early[node] += count
    return early, [f + e for f, e in zip(pools.free.node_free, early, strict=True)]


def same_sums(found: FreeMap) -> None:
    cluster = found.cluster
    assert found.rack_free == [sum(found.node_free[n] for n in r.nodes) for r in cluster.racks]
    assert found.total == sum(found.node_free)


ops = st.lists(
    st.tuples(
        st.sampled_from(["later", "later", "claim", "earmark", "release", "ask", "ask"]),
        st.integers(0, RACKS * NODES - 1),
        st.integers(1, GPUS),
        st.sampled_from(TIMES),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(busy=st.lists(st.integers(2, GPUS), min_size=RACKS * NODES, max_size=RACKS * NODES), ops=ops)
def test_released_by_views_follow_every_change(busy: list[int], ops: list[Op]) -> None:
    cluster = build_cluster(ClusterSpec(RACKS, NODES, GPUS))
    state = SchedulerState(cluster)
    pools = Pools(state)
    held = list(busy)  # GPUs of running jobs per node: what "later" may release
    pools.free.take(tuple((n, c) for n, c in enumerate(busy) if c))
    for kind, node, count, at in ops:
        if kind == "later" and held[node] >= count:
            held[node] -= count
            pools.release_later([(node, count)], at)
        elif kind == "release" and held[node] >= count:
            held[node] -= count
            pools.release([(node, count)])
        elif kind == "claim" and pools.free.node_free[node] >= count:
            pools.claim(((node, count),))
        elif kind == "earmark" and pools.merged().node_free[node] >= count:
            pools.earmark(((node, count),), at)
        elif kind == "ask":
            early, merged = pools.released_by(at)
            want_early, want_merged = expected(pools, at)
            assert early.node_free == want_early
            assert merged.node_free == want_merged
            same_sums(early)
            same_sums(merged)
            if early.total:  # the best-fit index read from the view agrees with a scan
                fresh = FreeMap(cluster, list(early.node_free))
                assert early.smallest_rack(1) == fresh.smallest_rack(1)
        # the invariant the views rest on: ``soon`` is the sum of the per-time tables
        every = [0] * len(cluster.nodes)
        for t in TIMES:
            for n, c in pools._nodes(t).items():
                every[n] += c
        assert pools.soon.node_free == every


def test_a_view_takes_later_changes_and_skips_later_releases() -> None:
    cluster = build_cluster(ClusterSpec(RACKS, NODES, GPUS))
    pools = Pools(SchedulerState(cluster))
    pools.free.take(tuple((n, GPUS) for n in range(RACKS * NODES)))  # a full site
    pools.release_later([(0, 2)], 10.0)
    pools.release_later([(1, 2)], 30.0)
    early, merged = pools.released_by(10.0)
    assert (early.node_free[:2], merged.node_free[:2]) == ([2, 0], [2, 0])
    pools.release_later([(2, 3)], 30.0)  # later than the view's time: not in it
    pools.release_later([(3, 1)], 10.0)  # by its time: in both of its maps
    pools.earmark(((0, 1),), 10.0)  # takes one released by 10
    pools.release([(4, 2)])  # free now: in its merged map only
    early, merged = pools.released_by(10.0)
    assert early.node_free == [1, 0, 0, 1, 0, 0]
    assert merged.node_free == [1, 0, 0, 1, 2, 0]
    assert (early.total, merged.total) == (2, 4)
    assert pools.released_by(10.0)[0].node_free == [1, 0, 0, 1, 0, 0]  # asked again: same
