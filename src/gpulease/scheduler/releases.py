"""GPUs being released by preempted jobs in their grace period, kept across steps.

Design. Every step plans waiting jobs on the GPUs that jobs in their grace period will
release (``Pools.soon``). Building that map from every such job at every step cost
O(GPUs in grace) per step: after a burst of preemptions, thousands of jobs for the whole
grace period. :class:`GraceReleases` keeps it as a memo of the state: the jobs in their
grace period with their release time, run and usable GPUs, and the sums the step's
``Pools`` starts from (per node, per rack, per release time). :meth:`GraceReleases.sync`
brings it up to the set the step found (``leaving``), adding and removing only the jobs
that entered or left their grace period since the last step; ``Pools`` then copies the
small parts and copies a node's or a release time's entries on first write (the memo is
never written by a step).

Invariant after ``sync``: the memo equals what adding ``usable(placement)`` of every job in
``leaving`` at its ``preempt_at`` to empty maps gives (the sums do not depend on the order
of the additions). A different state object, a node that changed schedulability or another
site rebuilds it from scratch.
"""

from __future__ import annotations

import weakref

from gpulease.inventory.topology import Cluster
from gpulease.scheduler.placement import FreeMap
from gpulease.scheduler.preemption import usable
from gpulease.scheduler.state import SchedulerState

Gains = list[tuple[int, int]]  # (node, GPUs) a job gives back on UP nodes


class GraceReleases:
    """The GPUs of jobs in their grace period, by node and release time (see module)."""

    __slots__ = (
        "_jobs",
        "_schedulable",
        "_state",
        "count_at",
        "nodes_at",
        "parts",
        "soon",
    )

    def __init__(self) -> None:
        self._state: weakref.ref[SchedulerState] | None = None
        self._schedulable: list[bool] = []
        # job -> (release time, run start, GPUs it gives back)
        self._jobs: dict[str, tuple[float, float | None, Gains]] = {}
        self.soon: FreeMap | None = None  # GPUs being released, per node and rack
        self.parts: dict[int, dict[float, int]] = {}  # node -> release time -> GPUs
        self.count_at: dict[float, int] = {}  # release time -> GPUs
        self.nodes_at: dict[float, dict[int, int]] = {}  # release time -> node -> GPUs

    def kept(self, state: SchedulerState) -> dict[str, tuple[float, float | None, Gains]]:
        """The jobs of the memo (empty when it belongs to another state or site layout):
        the step compares each job in its grace period with it before :meth:`sync`."""
        tracked = self._state() if self._state is not None else None
        if tracked is not state or self._schedulable != state.schedulable:
            self._reset(state)
        return self._jobs

    def sync(self, state: SchedulerState, leaving: dict[str, float], fresh: list[str]) -> FreeMap:
        """Make the memo hold exactly the jobs of ``leaving`` (job -> release time), of
        which ``fresh`` are those :meth:`kept` did not hold as they are now; returns the
        map of GPUs being released (read-only for the caller)."""
        jobs = self._jobs
        if len(jobs) + len(fresh) != len(leaving):  # some left, or came back changed
            renewed = set(fresh)
            for job_id in [j for j in jobs if j not in leaving or j in renewed]:
                self._remove(job_id)
        running, schedulable = state.running, state.schedulable
        for job_id in fresh:
            record = running[job_id]
            gains = usable(record.placement, schedulable)
            self._add(job_id, leaving[job_id], record.run_start, gains)
        assert self.soon is not None
        return self.soon

    def _reset(self, state: SchedulerState) -> None:
        cluster: Cluster = state.cluster
        self._state = weakref.ref(state)
        self._schedulable = list(state.schedulable)
        self._jobs = {}
        self.soon = FreeMap.of(cluster, [0] * len(cluster.nodes), [0] * len(cluster.racks), 0)
        self.parts = {}
        self.count_at = {}
        self.nodes_at = {}

    def _add(self, job_id: str, at: float, run_start: float | None, gains: Gains) -> None:
        self._jobs[job_id] = (at, run_start, gains)
        parts, counts = self.parts, self.count_at
        # a job with no GPU on an UP node releases nothing the planner sees: no entry at
        # all (an empty one would differ from a memo that never saw the job)
        nodes_at = self.nodes_at.setdefault(at, {}) if gains else {}
        for node, count in gains:
            by_time = parts.setdefault(node, {})
            by_time[at] = by_time.get(at, 0) + count
            counts[at] = counts.get(at, 0) + count
            nodes_at[node] = nodes_at.get(node, 0) + count
        assert self.soon is not None
        self.soon.give(gains)

    def _remove(self, job_id: str) -> None:
        at, _, gains = self._jobs.pop(job_id)
        parts, counts = self.parts, self.count_at
        nodes_at = self.nodes_at.get(at, {})  # none when no GPU was on an UP node
        for node, count in gains:
            by_time = parts[node]
            left = by_time[at] - count
            if left:
                by_time[at] = left
            else:
                del by_time[at]
                if not by_time:
                    del parts[node]
            left = nodes_at[node] - count
            if left:
                nodes_at[node] = left
            else:
                del nodes_at[node]
            counts[at] -= count
        if not counts.get(at):
            counts.pop(at, None)
            self.nodes_at.pop(at, None)
        assert self.soon is not None
        self.soon.take(tuple(gains))
