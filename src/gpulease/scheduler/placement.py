"""Topology-aware gang placement on a map of free GPUs.

Design. A placement is a tuple of ``(node, gpus)`` pairs; the state turns it into concrete
GPU indices when the start is applied. The placer works on a :class:`FreeMap` (free GPUs per
schedulable node plus per-rack totals) that the engine copies once per step and updates as
it decides, so one step never hands a GPU to two jobs.

Rules, in order:
* all-or-nothing: either every GPU of the gang is placed or nothing is;
* a job (or each ``segment`` of it) that fits in one rack goes in one rack, chosen best-fit
  (the rack with the least capacity that still fits, which keeps large blocks whole);
* a job larger than a rack spans the fewest racks: the largest racks first, then the
  smallest rack that covers the remainder;
* inside a rack, the fewest nodes, again best-fit; with ``gpus_per_node`` each node used
  gives exactly that many GPUs;
* ``required`` locality (or a segment) never spans racks; ``preferred`` / ``none`` fall back
  to spanning when no single rack fits;
* with ``keep_blocks=B`` (an operator's choice, off by default), a ``preferred`` / ``none``
  job that would take a rack's last free block of B GPUs in whole nodes (the 64-GPU, 16-tray
  block rack-scale gangs use on NVL72) goes instead over racks that hold no such block,
  when they have room: it spans more racks, and the block stays whole for a gang.
A failure comes with a :class:`WaitReason` that says, in words, what is missing.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gpulease.domain.models import JobSpec, TopologyMode
from gpulease.inventory.topology import Cluster

Placement = tuple[tuple[int, int], ...]  # ((node index, GPU count), ...) sorted by node


class WaitCode(StrEnum):
    NO_CAPACITY = "no_capacity"  # not enough free GPUs at all
    NO_DOMAIN_BLOCK = "no_domain_block"  # enough GPUs, but not inside one rack / segment racks
    NO_NODES = "no_nodes"  # not enough nodes with gpus_per_node free
    NEVER_FITS = "never_fits"  # larger than the cluster's schedulable hardware
    PRIORITY = "priority"  # higher-ranked jobs go first
    RESERVATION = "reservation"  # would delay the backfill reservation of the queue head
    PREEMPTING = "preempting"  # waiting for preempted jobs to release GPUs
    BLOCKED = "blocked"  # strict FIFO: the head of the queue blocks it


@dataclass(frozen=True, slots=True)
class WaitReason:
    code: WaitCode
    message: str


class FreeMap:
    """Free GPUs per node (0 for nodes that are not schedulable) and per rack.

    A best-fit index by free capacity (``_by_cap[c]``: a bit per rack holding exactly
    ``c`` free GPUs, and ``_caps``: a bit per capacity some rack has) is built on the first
    :func:`smallest_rack` query and then kept up to date by :meth:`take` / :meth:`give`, so
    a best-fit rack costs a few big-integer operations, not a scan of every rack; a job no
    rack holds spreads over racks read from the same index (:meth:`spread_racks`). Each
    node's rack and each rack's bit come from lists kept per site (``_layout``)."""

    __slots__ = (
        "_bits",
        "_by_cap",
        "_caps",
        "_rack_of",
        "cluster",
        "node_free",
        "rack_free",
        "total",
    )

    def __init__(self, cluster: Cluster, node_free: list[int]) -> None:
        self.cluster = cluster
        self.node_free = node_free
        self.rack_free = [sum(node_free[n] for n in rack.nodes) for rack in cluster.racks]
        self.total = sum(self.rack_free)
        self._by_cap: list[int] | None = None
        self._caps = 0  # bit c set when some rack has exactly c free (with ``_by_cap``)
        self._rack_of, self._bits = _layout(cluster)

    @classmethod
    def of(
        cls, cluster: Cluster, node_free: list[int], rack_free: list[int], total: int
    ) -> FreeMap:
        """A map from parts already summed (the caller owns the lists it passes)."""
        made = cls.__new__(cls)
        made.cluster = cluster
        made.node_free = node_free
        made.rack_free = rack_free
        made.total = total
        made._by_cap = None
        made._caps = 0
        made._rack_of, made._bits = _layout(cluster)
        return made

    def copy(self) -> FreeMap:
        made = FreeMap.of(self.cluster, list(self.node_free), list(self.rack_free), self.total)
        if self._by_cap is not None:
            made._by_cap = list(self._by_cap)
            made._caps = self._caps
        return made

    def take(self, placement: Placement) -> None:
        rack_of = self._rack_of
        rack_free, by_cap = self.rack_free, self._by_cap
        for node, count in placement:
            self.node_free[node] -= count
            rack = rack_of[node]
            before = rack_free[rack]
            rack_free[rack] = before - count
            self.total -= count
            if by_cap is not None and count:
                bit = self._bits[rack]
                left = by_cap[before] ^ bit
                by_cap[before] = left
                if not left:
                    self._caps ^= 1 << before
                by_cap[before - count] |= bit
                self._caps |= 1 << (before - count)

    def give(self, placement: Iterable[tuple[int, int]]) -> None:
        rack_of = self._rack_of
        rack_free, by_cap = self.rack_free, self._by_cap
        for node, count in placement:
            self.node_free[node] += count
            rack = rack_of[node]
            before = rack_free[rack]
            rack_free[rack] = before + count
            self.total += count
            if by_cap is not None and count:
                bit = self._bits[rack]
                left = by_cap[before] ^ bit
                by_cap[before] = left
                if not left:
                    self._caps ^= 1 << before
                if before + count >= len(by_cap):
                    by_cap.extend([0] * (before + count + 1 - len(by_cap)))
                by_cap[before + count] |= bit
                self._caps |= 1 << (before + count)

    def smallest_rack(self, need: int) -> int:
        """The rack with the least free GPUs that still has ``need``, lowest index first
        among equals, or -1: ``_smallest_fitting`` over every rack, from the index."""
        by_cap = self._by_cap
        if by_cap is None:
            by_cap = [0] * (max(self.rack_free, default=0) + 1)
            bits = self._bits
            caps = 0
            for rack, cap in enumerate(self.rack_free):
                by_cap[cap] |= bits[rack]
                caps |= 1 << cap
            self._by_cap = by_cap
            self._caps = caps
        need = max(need, 0)
        fitting = self._caps >> need  # the capacities of at least ``need`` some rack has
        if not fitting:
            return -1
        mask = by_cap[need + (fitting & -fitting).bit_length() - 1]
        return (mask & -mask).bit_length() - 1

    def spread_racks(self, need: int) -> list[tuple[int, int]]:
        """``_choose_bins`` over the racks when none holds ``need`` and all together do
        (the caller checked both; :meth:`smallest_rack` built the index): the largest
        racks first (lowest index among equals), then the smallest rack not taken that
        covers the rest. Read from the index: O(racks taken x capacities), not a sort of
        every rack."""
        by_cap = self._by_cap
        assert by_cap is not None, "smallest_rack builds the index"
        taken: list[tuple[int, int]] = []
        taken_bits = 0
        remaining = need
        top = len(by_cap) - 1
        while True:
            spare = ~taken_bits
            for cap in range(remaining, top + 1):
                mask = by_cap[cap] & spare
                if mask:
                    taken.append(((mask & -mask).bit_length() - 1, remaining))
                    return taken
            while not by_cap[top] & spare:
                top -= 1
            low = by_cap[top] & spare
            low &= -low
            taken.append((low.bit_length() - 1, top))
            taken_bits |= low
            remaining -= top


_last_layout: tuple[Cluster, tuple[list[int], list[int]]] | None = None


def _layout(cluster: Cluster) -> tuple[list[int], list[int]]:
    """Each node's rack, and each rack's bit in ``FreeMap._by_cap`` (read-only lists,
    kept for the last site asked about: a step builds several maps of one site)."""
    global _last_layout
    last = _last_layout
    if last is not None and last[0] is cluster:
        return last[1]
    layout = ([n.rack for n in cluster.nodes], [1 << r for r in range(len(cluster.racks))])
    _last_layout = (cluster, layout)
    return layout


def _choose_bins(caps: Sequence[tuple[int, int]], need: int) -> list[tuple[int, int]] | None:
    """Cover ``need`` units from bins ``(index, capacity)`` with the fewest bins, best fit.

    One bin if any fits (the smallest that does); else the largest bins and, last, the
    smallest bin that covers the remainder. Returns ``(index, units taken)`` or None.
    """
    best: tuple[int, int] | None = None
    total = 0
    for index, cap in caps:
        total += cap
        if cap >= need and (best is None or cap < best[1]):
            best = (index, cap)
    if best is not None:
        return [(best[0], need)]
    if total < need:
        return None
    return _spread(sorted(caps, key=lambda ic: (-ic[1], ic[0])), need)


def _spread(ordered: Sequence[tuple[int, int]], need: int) -> list[tuple[int, int]]:
    """``_choose_bins`` when no single bin holds ``need`` and the bins together do:
    ``ordered`` by (-capacity, index), the largest bins first, then the smallest that
    covers the remainder."""
    negated = [-cap for _, cap in ordered]  # ascending
    taken: list[tuple[int, int]] = []
    remaining = need
    pos = 0
    while True:
        # Can one of the bins not yet taken cover the remainder? Take the smallest such (the
        # first of the smallest capacity that covers it, in ``ordered``'s order).
        last = bisect.bisect_right(negated, -remaining, pos) - 1
        if last >= pos:
            first = bisect.bisect_left(negated, negated[last], pos)
            taken.append((ordered[first][0], remaining))
            return taken
        index, cap = ordered[pos]
        taken.append((index, cap))
        remaining -= cap
        pos += 1


_capacity = operator.itemgetter(1)


def _smallest_fitting(indices: Sequence[int], caps: Sequence[int], need: int) -> int:
    """The first of ``indices`` with the least capacity that still covers ``need``, or -1:
    ``_choose_bins``' one-bin answer without building the list of bins (the common case)."""
    best, best_cap = -1, 0
    for index in indices:
        cap = caps[index]
        if cap >= need and (best < 0 or cap < best_cap):
            best, best_cap = index, cap
    return best


def _nodes_in_rack(
    free: FreeMap, rack: int, gpus: int, gpus_per_node: int | None
) -> list[tuple[int, int]]:
    node_free = free.node_free
    members = free.cluster.racks[rack].nodes
    if gpus_per_node is None:
        # ``_choose_bins`` over the rack's nodes with free GPUs, in one pass: the best-fit
        # node, else the nodes by free GPUs (a stable sort of nodes in index order keeps
        # the lowest index first among equals). The caller checked the rack holds ``gpus``.
        # (Fewer instructions than comprehensions or a first pass for one node.)
        best, best_cap = -1, 0
        bins: list[tuple[int, int]] = []
        for n in members:
            cap = node_free[n]
            if cap > 0:
                if cap >= gpus and (best < 0 or cap < best_cap):
                    best, best_cap = n, cap
                bins.append((n, cap))
        if best >= 0:
            return [(best, gpus)]
        bins.sort(key=_capacity, reverse=True)
        return _spread(bins, gpus)
    fitting = sorted((node_free[n], n) for n in members if node_free[n] >= gpus_per_node)
    count = gpus // gpus_per_node
    return [(n, gpus_per_node) for _, n in fitting[:count]]


def rack_capacity(free: FreeMap, gpus_per_node: int | None) -> list[int]:
    """Free GPUs per rack a job could use: with ``gpus_per_node`` set, each node with that
    many free gives exactly that many, others none (the list is ``free``'s own otherwise)."""
    if gpus_per_node is None:
        return free.rack_free
    node_free = free.node_free
    return [
        gpus_per_node * sum(1 for n in rack.nodes if node_free[n] >= gpus_per_node)
        for rack in free.cluster.racks
    ]


def rack_piece(job: JobSpec) -> int | None:
    """GPUs of each piece of ``job`` that must sit inside one rack (its ``segment``, or the
    whole job under ``required`` locality), or None when nothing must."""
    topology = job.topology
    if topology.segment is not None:
        return topology.segment
    if topology.mode is TopologyMode.REQUIRED:
        return job.gpus
    return None


def _whole_node_gpus(free: FreeMap, rack: int) -> int:
    """GPUs of the rack's nodes that are entirely free."""
    nodes, node_free = free.cluster.nodes, free.node_free
    return sum(
        node_free[n] for n in free.cluster.racks[rack].nodes if node_free[n] == nodes[n].gpus
    )


def _around_blocks(
    free: FreeMap, caps: Sequence[int], gpus: int, gpus_per_node: int | None, block: int
) -> list[tuple[int, int]] | None:
    """Racks (fewest, best fit) holding no free ``block`` that can take ``gpus`` between
    them, when the one-rack best fit would break that rack's last block; else None."""
    one = _best_rack(free, caps, gpus)
    if one < 0:
        return None  # no single rack fits: the job spans racks anyway
    whole = _whole_node_gpus(free, one)
    if whole < block:
        return None  # no block there to break
    nodes = free.cluster.nodes
    taken = sum(
        nodes[node].gpus
        for node, _ in _nodes_in_rack(free, one, gpus, gpus_per_node)
        if free.node_free[node] == nodes[node].gpus
    )  # the whole nodes the job would break into there (a partly used one costs no block)
    if whole - taken >= block:
        return None  # a block stays whole
    spare = [(r, c) for r, c in enumerate(caps) if c > 0 and _whole_node_gpus(free, r) < block]
    if sum(c for _, c in spare) < gpus:
        return None
    return _choose_bins(spare, gpus)


def place(
    job: JobSpec,
    free: FreeMap,
    *,
    domain: str = "rack",
    empty_site: bool = False,
    keep_blocks: int = 0,
) -> Placement | WaitReason:
    """Place ``job`` on ``free`` (not modified) or say why it cannot be placed now.

    ``empty_site``: ``free`` is the whole installed site (``never_fits``), so the reasons
    speak of what the site has rather than of what is free now. ``keep_blocks``: see the
    module docstring (never changes *whether* a job can be placed, only where).
    """
    gpus = job.gpus
    if free.total < gpus:
        if empty_site:
            message = f"needs {gpus} GPUs; {free.total} are installed"
            return WaitReason(WaitCode.NO_CAPACITY, message)
        return WaitReason(WaitCode.NO_CAPACITY, short_message(gpus))
    gpn = job.gpus_per_node
    topology = job.topology
    if (
        gpn is None
        and topology.segment is None
        and topology.mode is not TopologyMode.REQUIRED
        and not keep_blocks
    ):  # the common request: the best-fit rack from the index when one holds the job
        one = free.smallest_rack(gpus)
        if one >= 0:
            nodes = _nodes_in_rack(free, one, gpus, None)
            nodes.sort()
            return tuple(nodes)
    caps = rack_capacity(free, gpn)
    if gpn is not None and sum(caps) < gpus:
        if empty_site:
            message = (
                f"needs {gpus // gpn} nodes with {gpn} GPUs each; the site has only "
                f"{sum(caps) // gpn} such nodes"
            )
        else:
            message = f"needs {gpus // gpn} nodes with {gpn} free GPUs each; not enough are free"
        return WaitReason(WaitCode.NO_NODES, message)
    segment = rack_piece(job)
    if segment is not None:
        chosen: list[tuple[int, int]] | None
        if segment == gpus and caps is free.rack_free:
            one = free.smallest_rack(gpus)  # one segment: the best-fit rack, from the index
            chosen = None if one < 0 else [(one, 1)]
        else:
            # Ties in whole segments go to the rack with the least capacity left (best fit).
            per_rack = sorted(
                ((r, cap // segment) for r, cap in enumerate(caps) if cap >= segment),
                key=lambda rc: caps[rc[0]],
            )
            chosen = _choose_bins(per_rack, gpus // segment)
        if chosen is None:
            return WaitReason(
                WaitCode.NO_DOMAIN_BLOCK, _block_message(gpus, segment, caps, domain, empty_site)
            )
        rack_gpus = [(r, units * segment) for r, units in chosen]
    elif keep_blocks and (around := _around_blocks(free, caps, gpus, gpn, keep_blocks)):
        rack_gpus = around
    elif (one := _best_rack(free, caps, gpus)) >= 0:
        rack_gpus = [(one, gpus)]
    elif caps is free.rack_free:
        rack_gpus = free.spread_racks(gpus)  # ``_choose_bins`` from the index
    else:
        chosen_gpus = _choose_bins([(r, c) for r, c in enumerate(caps) if c > 0], gpus)
        assert chosen_gpus is not None, "total capacity was checked above"
        rack_gpus = chosen_gpus
    result: list[tuple[int, int]] = []
    for rack, count in rack_gpus:
        result.extend(_nodes_in_rack(free, rack, count, gpn))
    result.sort()
    return tuple(result)


def short_message(gpus: int) -> str:
    """Why a job of ``gpus`` GPUs waits when fewer are free: no count that moves with every
    start, so the text of a waiting job's reason changes only when its meaning does."""
    return f"needs {gpus} GPUs; not enough free GPUs on schedulable nodes"


def _block_message(
    gpus: int, segment: int, caps: Sequence[int], domain: str, empty_site: bool
) -> str:
    if not empty_site:  # no free-GPU counts: they move with every start
        if segment == gpus:
            return f"needs {gpus} GPUs in one {domain}; no {domain} has that many free"
        return (
            f"needs {gpus // segment} segments of {segment} GPUs, each in one {domain}; "
            f"free {domain}s do not hold that many"
        )
    largest = max(caps, default=0)
    if segment == gpus:
        return f"needs {gpus} GPUs in one {domain}; the largest holds {largest} GPUs"
    fit = sum(c // segment for c in caps if c >= segment)
    return (
        f"needs {gpus // segment} segments of {segment} GPUs, each in one {domain}; "
        f"{domain}s hold only {fit} (the largest holds {largest})"
    )


def _best_rack(free: FreeMap, caps: Sequence[int], need: int) -> int:
    """``_smallest_fitting`` over every rack: from the map's index when ``caps`` is its own
    rack list, else by a scan."""
    if caps is free.rack_free:
        return free.smallest_rack(need)
    return _smallest_fitting(range(len(caps)), caps, need)


def never_fits(job: JobSpec, cluster: Cluster, *, domain: str = "rack") -> WaitReason | None:
    """Why ``job`` could not run even on an empty cluster, or None if it could."""
    empty = FreeMap(cluster, [n.gpus for n in cluster.nodes])
    outcome = place(job, empty, domain=domain, empty_site=True)
    if isinstance(outcome, WaitReason):
        return WaitReason(WaitCode.NEVER_FITS, f"never fits this site: {outcome.message}")
    return None


def racks_spanned(cluster: Cluster, placement: Placement) -> int:
    if len(placement) == 1:
        return 1
    rack_of = _layout(cluster)[0]
    return len({rack_of[node] for node, _ in placement})


def min_racks_needed(job: JobSpec, cluster: Cluster) -> int:
    """Fewest racks the job could span on an empty cluster (for placement-quality metrics)."""
    empty = FreeMap(cluster, [n.gpus for n in cluster.nodes])
    outcome = place(job, empty)
    if isinstance(outcome, WaitReason):
        return 0
    return racks_spanned(cluster, outcome)
