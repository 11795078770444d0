"""Queued jobs in groups whose order survives across steps: a memo of the state, for speed.

Design. Ranking the whole queue every step costs O(queue log queue) and dominates a long
simulation. For a policy with the :class:`~gpulease.scheduler.ordering.SplitKey` capability
the key of a queued job is ``(-priority, *queued_key, *tenant_key(tenant), *inner_key,
submit, seq)``, where only ``tenant_key`` moves between steps (decayed usage). So jobs are
kept in *groups* of equal ``(-priority, queued_key, inner_key, tenant, request shape)``,
each sorted by ``(submit, seq)``; a step orders the groups by their current prefix
``(-priority, *queued_key, *tenant_key, *inner_key)`` and merges them lazily
(:meth:`Scheduler.step` pops a heap of group heads), paying only for the jobs it visits. The
request shape (GPUs, GPUs per node, segment, topology mode) is part of the group so that the
engine can set aside, in one move, every remaining job of a shape that cannot start.

Invariant after :meth:`QueueIndex.sync`: the groups hold exactly ``state.queued``, each job
under the key its policy gives it now; ``versions[tenant]`` changes whenever a job of that
tenant joins or leaves the groups, and ``epoch`` whenever the index is rebuilt (an answer
about a tenant kept with both is current while neither changed). Sync reads the state's
change journal (``SchedulerState.changed_since``), so it costs O(jobs changed since the last
step); a different state object is indexed from scratch.
"""

from __future__ import annotations

import bisect
import weakref

from gpulease.domain.models import JobSpec, TopologyMode
from gpulease.scheduler.ordering import OrderingPolicy, SplitKey
from gpulease.scheduler.state import JobRecord, SchedulerState

Shape = tuple[int, int | None, int | None, TopologyMode]
GroupKey = tuple[tuple[float, ...], str, Shape]
Entry = tuple[float, int, str]  # (submit, seq, job id)


def shape_of(spec: JobSpec) -> Shape:
    return (spec.gpus, spec.gpus_per_node, spec.topology.segment, spec.topology.mode)


class QueueGroup:
    """Queued jobs of one (-priority, queued key, inner key, tenant, shape), by (submit, seq).

    ``static`` is ``outer + inner``: the rank inside the tenant, where the tenant key is one
    value. ``coarse`` is ``(-priority, *preempt_key)``, the same for every job of the group
    (the preempt key is a prefix of the queued key)."""

    __slots__ = ("coarse", "entries", "inner", "memo", "outer", "shape", "static", "tenant")

    def __init__(
        self,
        outer: tuple[float, ...],
        inner: tuple[float, ...],
        coarse: tuple[float, ...],
        tenant: str,
        shape: Shape,
    ) -> None:
        self.outer = outer  # (-priority, *queued_key): before the tenant key
        self.inner = inner  # inner_key: after it
        self.static = outer + inner
        self.coarse = coarse
        self.tenant = tenant
        self.shape = shape
        self.memo: object = None  # the engine's derived constant for this group
        # A plain sorted list: arrivals append at the end, starts leave near the front;
        # indexing it in the merge costs far less than a SortedList's.
        self.entries: list[Entry] = []


class QueueIndex:
    def __init__(self, policy: OrderingPolicy) -> None:
        assert isinstance(policy, SplitKey)
        self._policy = policy
        self._split: SplitKey = policy
        self.groups: dict[GroupKey, QueueGroup] = {}
        self._where: dict[str, tuple[GroupKey, Entry]] = {}
        self._state: weakref.ref[SchedulerState] | None = None
        self._count = 0
        self.epoch = 0  # changes when the index is rebuilt from scratch
        self.versions: dict[str, int] = {}  # tenant -> number of its last change
        self._changes = 0

    def sync(self, state: SchedulerState, now: float) -> None:
        tracked = self._state() if self._state is not None else None
        queued = state.queued
        if tracked is not state:
            self.groups.clear()
            self._where.clear()
            self.versions.clear()
            self.epoch += 1
            for waiting in queued.values():
                self._add(waiting, now)
            self._state = weakref.ref(state)
        else:
            where = self._where
            for job_id in state.changed_since(self._count):
                if job_id in where:
                    self._remove(job_id)
                record = queued.get(job_id)
                if record is not None:
                    self._add(record, now)
        self._count = state.change_count

    def __len__(self) -> int:
        return len(self._where)

    def _add(self, record: JobRecord, now: float) -> None:
        spec = record.spec
        outer = (float(-spec.priority), *self._split.queued_key(record, now))
        inner = self._split.inner_key(record, now)
        key: GroupKey = (outer + inner, spec.tenant, shape_of(spec))
        group = self.groups.get(key)
        if group is None:
            coarse = (float(-spec.priority), *self._policy.preempt_key(record, now))
            group = self.groups[key] = QueueGroup(outer, inner, coarse, spec.tenant, key[2])
        entry: Entry = (spec.submit_time, record.seq, spec.id)
        self._changes += 1
        self.versions[spec.tenant] = self._changes
        entries = group.entries
        if not entries or entries[-1] < entry:
            entries.append(entry)
        else:
            bisect.insort(entries, entry)
        self._where[spec.id] = (key, entry)

    def _remove(self, job_id: str) -> None:
        key, entry = self._where.pop(job_id)
        group = self.groups[key]
        self._changes += 1
        self.versions[group.tenant] = self._changes
        entries = group.entries
        del entries[bisect.bisect_left(entries, entry)]
        if not entries:
            del self.groups[key]
