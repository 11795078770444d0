"""Where a site's GPU-time goes: busy, or idle and why.

An :class:`Occupancy` is an observer for ``Simulation(observe=...)``. Between two steps the
state does not change, so each interval adds ``GPUs x seconds`` to one category per GPU;
over a window ``[start, end]`` the categories sum to ``site GPUs x (end - start)``:

busy
  ``gang``     held by a rack-bound job (one whose pieces, its segments or the whole job
               under ``required`` locality, must each sit inside one rack);
  ``other``    held by any other job;
idle, by what the GPU's rack can still take
  ``spare``        beside a rack-bound job, in a rack that hosts one: only work that fits
                   in what is left of the rack can use it (on NVL72 with 64-GPU segments,
                   the two trays beside each segment);
  ``blocked``      in a rack that hosts no rack-bound job yet cannot take a ``segment``
                   either, because other work holds too many of its nodes;
  ``open_waiting`` in a rack that could take a segment while rack-bound jobs wait: none
                   of them fits the open racks there are (a packing loss);
  ``open``         in a rack that could take a segment, with no rack-bound job waiting;
  ``unavailable``  on a node that is down or draining.

Invariant: the categories of every interval sum to the site's GPUs (a check, not a hope:
:meth:`Occupancy.observe` asserts it). ``segment`` is the piece size the analysis asks
about (64 on the reference site); the observer only reads the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpulease.inventory.topology import Cluster
from gpulease.scheduler.placement import rack_piece
from gpulease.scheduler.state import SchedulerState

CATEGORIES: tuple[str, ...] = (
    "gang",
    "other",
    "spare",
    "blocked",
    "open_waiting",
    "open",
    "unavailable",
)


@dataclass(slots=True)
class Occupancy:
    cluster: Cluster
    segment: int
    start: float = 0.0
    end: float = math.inf
    gpu_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    _last: tuple[float, dict[str, int]] | None = None

    def observe(self, now: float, state: SchedulerState) -> None:
        """The state after the step at ``now``; it holds until the next call."""
        self._close(now)
        self._last = (now, self.snapshot(state))

    __call__ = observe

    def finish(self, now: float) -> None:
        """Close the last interval at ``now`` (the end of the run)."""
        self._close(now)
        self._last = None

    def shares(self) -> dict[str, float]:
        total = sum(self.gpu_seconds.values())
        return {k: (v / total if total else 0.0) for k, v in self.gpu_seconds.items()}

    def snapshot(self, state: SchedulerState) -> dict[str, int]:
        cluster = self.cluster
        nodes = cluster.nodes
        counts = dict.fromkeys(CATEGORIES, 0)
        hosts = [False] * len(cluster.racks)
        for record in state.running.values():
            bound = rack_piece(record.spec) is not None
            counts["gang" if bound else "other"] += record.spec.gpus
            if bound:
                for node, _ in record.placement:
                    hosts[nodes[node].rack] = True
        waiting = any(rack_piece(r.spec) is not None for r in state.queued.values())
        node_free, schedulable = state.node_free, state.schedulable
        for rack in cluster.racks:
            idle = whole = 0
            for n in rack.nodes:
                free = node_free[n]
                if not schedulable[n]:
                    counts["unavailable"] += free
                    continue
                idle += free
                if free == nodes[n].gpus:
                    whole += free
            if hosts[rack.index]:
                counts["spare"] += idle
            elif whole >= self.segment:
                counts["open_waiting" if waiting else "open"] += idle
            else:
                counts["blocked"] += idle
        assert sum(counts.values()) == cluster.total_gpus, counts
        return counts

    def _close(self, now: float) -> None:
        if self._last is None:
            return
        since, counts = self._last
        span = min(now, self.end) - max(since, self.start)
        if span <= 0:
            return
        for category, gpus in counts.items():
            self.gpu_seconds[category] += gpus * span
