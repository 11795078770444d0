"""A step's scratch capacity: free GPUs, GPUs being released, the EASY reservation's view.

Design. :class:`Pools` holds ``free`` GPUs, ``soon`` (held by jobs in a grace period), their
sum (built on first use, then kept up to date by every change), and the EASY reservation's
``held`` view. Every change goes through a method so the views never disagree: a GPU is
promised at most once per step. The engine builds one per step from the state's free map
and the kept map of GPUs in a grace period (``releases.GraceReleases``): their per-node and
per-release-time entries are copied on first touch, so a step pays for the nodes its plans
touch, and the kept memo is never written.

A guaranteed claim may plan on the GPUs released by a given time (``released_by``). Those
maps (``soon`` without the later releases, and that plus ``free``) are built once per
release time a step asks about (:class:`_Early`) and then kept up to date from a journal
of the changes made since (every take and give of ``free`` and ``soon``, with the release
time of the ``soon`` GPUs concerned), so a later question about the same time pays for the
changes since the last one, not for every GPU released later.

Invariants: ``soon`` holds, per node, the sum over release times of ``_nodes(at)``; after
``released_by(at)`` syncs a view, its ``early`` map equals ``soon`` minus the GPUs released
after ``at`` and its ``merged`` map equals ``free`` plus ``early`` (node, rack and total
counts; ``tests/scheduler/test_pools.py``).
"""

from __future__ import annotations

import math
import operator

from gpulease.scheduler.backfill import Reservation
from gpulease.scheduler.placement import FreeMap, Placement
from gpulease.scheduler.releases import GraceReleases
from gpulease.scheduler.state import SchedulerState


class Pools:
    """A step's scratch capacity: ``free`` GPUs, ``soon`` (held by jobs in a grace period),
    their sum (built on first use, then kept up to date by every change), and the EASY
    reservation's ``held`` view. Every change goes through a method so the views never
    disagree (a GPU is promised at most once per step)."""

    def __init__(self, state: SchedulerState, grace: GraceReleases | None = None) -> None:
        self.free = state.free_map()
        cluster = state.cluster
        self.reservation: Reservation | None = None
        self._merged: FreeMap | None = None
        # ``soon`` GPUs by node (every node that held some this step) and release time,
        # not yet earmarked; and their totals by release time. ``_parts`` and ``_nodes_at``
        # hold this step's copies; ``_base_parts`` / ``_base_nodes_at`` the kept entries
        # not copied yet (read through ``_part`` / ``_nodes``, never written).
        self._parts: dict[int, dict[float, int]] = {}
        self._nodes_at: dict[float, dict[int, int]] = {}
        # ``released_by`` maps by release time, and the changes they have not seen yet:
        # (release time of the ``soon`` GPUs, or None for free ones; GPUs; +1 given, -1 taken)
        self._views: dict[float, _Early] = {}
        self._journal: list[tuple[float | None, Placement, int]] = []
        if grace is None or grace.soon is None:
            self.soon = FreeMap.of(cluster, [0] * len(cluster.nodes), [0] * len(cluster.racks), 0)
            self._base_parts: dict[int, dict[float, int]] = {}
            self._base_nodes_at: dict[float, dict[int, int]] = {}
            self._count_at: dict[float, int] = {}
        else:
            kept = grace.soon
            self.soon = FreeMap.of(cluster, list(kept.node_free), list(kept.rack_free), kept.total)
            self._base_parts = grace.parts
            self._base_nodes_at = grace.nodes_at
            self._count_at = dict(grace.count_at)
        # No ``soon`` GPU is released after this (an upper bound: kept as GPUs are added).
        self.latest_release = max(self._count_at, default=-math.inf)

    def _part(self, node: int) -> dict[float, int] | None:
        """This step's ``soon`` GPUs of ``node`` by release time (copied on first touch)."""
        part = self._parts.get(node)
        if part is None:
            base = self._base_parts.get(node)
            if base is None:
                return None
            part = self._parts[node] = dict(base)
        return part

    def _nodes(self, at: float) -> dict[int, int]:
        """This step's ``soon`` GPUs released at ``at``, by node (copied on first touch)."""
        nodes = self._nodes_at.get(at)
        if nodes is None:
            nodes = self._nodes_at[at] = dict(self._base_nodes_at.get(at, ()))
        return nodes

    def merged(self) -> FreeMap:
        if self._merged is None:
            free, soon = self.free, self.soon
            if len(self._parts) + len(self._base_parts) > 64:  # add the lists whole (C speed)
                merged = FreeMap.of(
                    free.cluster,
                    list(map(operator.add, free.node_free, soon.node_free)),
                    list(map(operator.add, free.rack_free, soon.rack_free)),
                    free.total + soon.total,
                )
            else:
                merged = free.copy()
                nodes = self._parts.keys() | self._base_parts.keys()
                merged.give((node, soon.node_free[node]) for node in sorted(nodes))
            self._merged = merged
        return self._merged

    def release(self, gpus: list[tuple[int, int]]) -> None:
        """GPUs free now (a timeout, an immediate requeue)."""
        self.free.give(gpus)
        if self._merged is not None:
            self._merged.give(gpus)
        if self._views:
            self._journal.append((None, tuple(gpus), 1))
        if self.reservation is not None:
            self.reservation.held.give(gpus)

    def release_later(self, gpus: list[tuple[int, int]], at: float) -> None:
        """GPUs a job in its grace period releases at ``at``."""
        parts, counts = self._parts, self._count_at
        nodes_at = self._nodes(at)
        if at > self.latest_release:
            self.latest_release = at
        for node, count in gpus:
            by_time = self._part(node)
            if by_time is None:
                by_time = parts[node] = {}
            by_time[at] = by_time.get(at, 0) + count
            counts[at] = counts.get(at, 0) + count
            nodes_at[node] = nodes_at.get(node, 0) + count
        self.soon.give(gpus)
        if self._merged is not None:
            self._merged.give(gpus)
        if self._views:
            self._journal.append((at, tuple(gpus), 1))

    def release_times(self, need: int) -> list[float]:
        """Times at which GPUs held by jobs in a grace period come free, earliest first,
        from the first by which they and the free GPUs add up to ``need``."""
        have = self.free.total
        times: list[float] = []
        for at in sorted(t for t, count in self._count_at.items() if count > 0):
            have += self._count_at[at]
            if times or have >= need:
                times.append(at)
        return times

    def _soon_taken(self, node: int, count: int, by: float) -> list[tuple[float, int]]:
        """The ``soon`` GPUs of ``node`` an earmark of ``count`` takes, earliest release
        first, only those released by ``by``: ``[(time, GPUs), ...]``."""
        taken: list[tuple[float, int]] = []
        parts = self._part(node)
        if not parts or count <= 0:
            return taken
        if len(parts) == 1:  # the usual case: one release time on the node
            for at, held in parts.items():
                if at <= by and held:
                    taken.append((at, min(count, held)))
            return taken
        for at in sorted(parts):
            if count <= 0 or at > by:
                break
            got = min(count, parts[at])
            if got:
                taken.append((at, got))
                count -= got
        return taken

    def ready_at(self, placement: Placement) -> float:
        """When the ``soon`` GPUs an earmark of ``placement`` takes are all released (-inf:
        none): the latest release among them."""
        return max(
            (at for node, count in placement for at, _ in self._soon_taken(node, count, math.inf)),
            default=-math.inf,
        )

    def released_by(self, at: float) -> tuple[FreeMap, FreeMap]:
        """The ``soon`` GPUs released by ``at``, and those plus the free ones: read-only
        maps, valid until the next change of the pools. ``soon`` and ``merged()``
        themselves when nothing is released later; else this time's kept view, built on
        the first question about ``at`` and brought up to date from the journal."""
        counts = self._count_at
        late_times = [t for t, count in counts.items() if count > 0 and t > at]
        if not late_times:
            return self.soon, self.merged()
        view = self._views.get(at)
        if view is None:
            late: dict[int, int] = {}
            for t in late_times:
                for node, count in self._nodes(t).items():
                    if count > 0:
                        late[node] = late.get(node, 0) + count
            held = tuple(late.items())
            early, merged = self.soon.copy(), self.merged().copy()
            early.take(held)
            merged.take(held)
            view = self._views[at] = _Early(at, early, merged, len(self._journal))
        else:
            view.catch_up(self._journal)
        return view.early, view.merged

    def claim(self, placement: Placement) -> None:
        """Free GPUs handed to a job starting now."""
        self.free.take(placement)
        if self._merged is not None:
            self._merged.take(placement)
        if self._views:
            self._journal.append((None, placement, -1))
        self._hold(placement)

    def earmark(self, placement: Placement, by: float = math.inf) -> Placement:
        """Hold a waiting job's planned GPUs: on each node, GPUs being released by ``by``
        (earliest first), then free ones (which it returns), then later releases (a plan
        made on :meth:`released_by` ``(by)`` needs none of those)."""
        free = self.free
        journal = self._journal if self._views else None
        from_free: list[tuple[int, int]] = []
        from_soon: list[tuple[int, int]] = []
        copies, kept, count_at, nodes_at = (
            self._parts,
            self._base_parts,
            self._count_at,
            self._nodes_at,
        )
        for node, count in placement:
            parts = copies.get(node)  # ``_part``, inline
            if parts is None:
                base = kept.get(node)
                if base is not None:
                    parts = copies[node] = dict(base)
            if parts is not None and len(parts) == 1:  # one release time: inline
                ((at, held),) = parts.items()
                got = (count if count < held else held) if at <= by else 0
                if got:
                    parts[at] = held - got
                    count_at[at] -= got
                    nodes = nodes_at.get(at)
                    if nodes is None:
                        nodes = self._nodes(at)
                    nodes[node] -= got
                    from_soon.append((node, got))
                    if journal is not None:
                        journal.append((at, ((node, got),), -1))
                rest = count - got
            else:
                rest = count - self._take_soon(node, count, by)
            if not rest:
                continue
            now_free = min(rest, free.node_free[node])
            if now_free:
                free.take(((node, now_free),))
                from_free.append((node, now_free))
                if journal is not None:
                    journal.append((None, ((node, now_free),), -1))
            if rest > now_free:
                self._take_soon(node, rest - now_free, math.inf)
        if from_soon:
            self.soon.take(tuple(from_soon))
        if self._merged is not None:
            self._merged.take(placement)
        promised = tuple(from_free)
        if promised and self.reservation is not None:
            self._hold(promised)
        return promised

    def _take_soon(self, node: int, count: int, by: float) -> int:
        """Earmark up to ``count`` of ``node``'s GPUs being released by ``by``, earliest
        first; returns how many."""
        taken = 0
        for at, got in self._soon_taken(node, count, by):
            self._parts[node][at] -= got  # copied by ``_soon_taken``
            self._count_at[at] -= got
            self._nodes(at)[node] -= got
            taken += got
            if self._views:
                self._journal.append((at, ((node, got),), -1))
        if taken:
            self.soon.take(((node, taken),))
        return taken

    def _hold(self, placement: Placement) -> None:
        if self.reservation is None:
            return
        held = self.reservation.held
        for node, count in placement:
            take = min(count, held.node_free[node])
            if take:
                held.take(((node, take),))


class _Early:
    """``Pools.released_by(at)``'s maps, kept for the step: ``early`` (the GPUs being
    released by ``at``) and ``merged`` (those plus the free ones), with how much of the
    pools' journal they have seen."""

    __slots__ = ("at", "early", "merged", "seen")

    def __init__(self, at: float, early: FreeMap, merged: FreeMap, seen: int) -> None:
        self.at = at
        self.early = early
        self.merged = merged
        self.seen = seen

    def catch_up(self, journal: list[tuple[float | None, Placement, int]]) -> None:
        """Apply the changes made since the last call, in order: free GPUs change
        ``merged``; GPUs released by ``at`` change both maps; later ones neither."""
        if self.seen == len(journal):
            return
        early, merged, at = self.early, self.merged, self.at
        for when, gpus, sign in journal[self.seen :]:
            if when is not None:
                if when > at:
                    continue
                if sign > 0:
                    early.give(gpus)
                else:
                    early.take(gpus)
            if sign > 0:
                merged.give(gpus)
            else:
                merged.take(gpus)
        self.seen = len(journal)
