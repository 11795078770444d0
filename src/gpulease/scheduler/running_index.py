"""Running jobs in preemption order, kept across steps: a memo of the state, for speed.

Design. The engine needs, at every step, (a) running jobs worst-ranked first, to pick
preemption victims, and (b) the earliest moment a running job's rank changes, to wake up.
Both are pure functions of the state and ``now``; recomputing them is O(running jobs) per
step, which dominates a 2,304-GPU simulation. This index keeps them incrementally:
* a sorted list of ``(coarse key, submit, seq, job)``; the coarse key is
  ``(-priority, *policy.preempt_key)``, constant until the policy says it changes;
* a heap of ``(moment of next key change, seq, job, run start)``;
* the same jobs by tenant (``by_tenant``: ``(coarse, submit, seq, job id, GPUs)``, sorted
  the same way): the engine's tiers walk a leased tenant's jobs in rank order from them,
  and merge them into the preemption order when leases exist (``tiers``).
:meth:`sync` brings it up to date from the state's change journal
(``SchedulerState.changed_since``): work only for the jobs that started, stopped or changed
rank since the last step (a different state object is indexed from scratch). Invariant
after ``sync``: the sorted list holds exactly ``state.running``, each with its key at
``now``; ``versions[tenant]`` changes whenever the tenant's list does, and ``epoch``
whenever the index is rebuilt.
"""

from __future__ import annotations

import heapq
import math
import weakref
from collections.abc import Iterator

from sortedcontainers import SortedList

from gpulease.scheduler.ordering import OrderingPolicy
from gpulease.scheduler.state import JobRecord, SchedulerState

Entry = tuple[tuple[float, ...], float, int, str]  # (coarse, submit, seq, job id)


class RunningIndex:
    def __init__(self, policy: OrderingPolicy) -> None:
        self._policy = policy
        self._sorted: SortedList = SortedList()
        self._entries: dict[str, tuple[Entry, float | None]] = {}  # job -> (entry, run start)
        # tenant -> its running jobs' (coarse, submit, seq, job id, GPUs), sorted
        self.by_tenant: dict[str, SortedList] = {}
        self._owner: dict[str, tuple[str, int]] = {}  # job -> (tenant, GPUs)
        self._changes: list[tuple[float, int, str, float | None]] = []
        self._state: weakref.ref[SchedulerState] | None = None
        self._count = 0
        self.epoch = 0  # changes when the index is rebuilt from scratch
        self.versions: dict[str, int] = {}  # tenant -> number of its list's last change
        self._version = 0

    def coarse(self, record: JobRecord, now: float) -> tuple[float, ...]:
        return (float(-record.spec.priority), *self._policy.preempt_key(record, now))

    def sync(self, state: SchedulerState, now: float) -> None:
        running = state.running
        tracked = self._state() if self._state is not None else None
        if tracked is not state:
            self._sorted.clear()
            self._entries.clear()
            self.by_tenant.clear()
            self._owner.clear()
            self._changes.clear()
            self.versions.clear()
            self.epoch += 1
            for started in running.values():
                self._add(started, now)
            self._state = weakref.ref(state)
        else:
            entries = self._entries
            for job_id in state.changed_since(self._count):
                held = entries.get(job_id)
                record = running.get(job_id)
                if held is not None and (record is None or record.run_start != held[1]):
                    self._remove(job_id)
                    held = None
                if record is not None and held is None:
                    self._add(record, now)
        self._count = state.change_count
        changes = self._changes
        while changes and changes[0][0] <= now:
            _, _, job_id, run_start = heapq.heappop(changes)
            record = running.get(job_id)
            if record is None or record.run_start != run_start:
                continue
            self._remove(job_id)
            self._add(record, now)

    def next_change(self, state: SchedulerState) -> float:
        changes, running = self._changes, state.running
        while changes:
            moment, _, job_id, run_start = changes[0]
            record = running.get(job_id)
            if record is not None and record.run_start == run_start:
                return moment
            heapq.heappop(changes)
        return math.inf

    def worst_first(self) -> Iterator[tuple[tuple[float, ...], str]]:
        """(coarse key, job id) of running jobs, worst-ranked first."""
        for coarse, _, _, job_id in reversed(self._sorted):
            yield coarse, job_id

    def entry(self, job_id: str) -> Entry:
        return self._entries[job_id][0]

    def _add(self, record: JobRecord, now: float) -> None:
        spec = record.spec
        entry: Entry = (self.coarse(record, now), spec.submit_time, record.seq, record.id)
        self._sorted.add(entry)
        self._entries[record.id] = (entry, record.run_start)
        mine = self.by_tenant.get(spec.tenant)
        if mine is None:
            mine = self.by_tenant[spec.tenant] = SortedList()
        mine.add((*entry, spec.gpus))
        self._version += 1
        self.versions[spec.tenant] = self._version
        self._owner[record.id] = (spec.tenant, spec.gpus)
        moment = self._policy.next_key_change(record, now)
        if moment is not None and moment > now:
            heapq.heappush(self._changes, (moment, record.seq, record.id, record.run_start))

    def _remove(self, job_id: str) -> None:
        entry, _ = self._entries.pop(job_id)
        self._sorted.remove(entry)
        tenant, gpus = self._owner.pop(job_id)
        mine = self.by_tenant[tenant]
        mine.remove((*entry, gpus))
        self._version += 1
        self.versions[tenant] = self._version
        if not mine:
            del self.by_tenant[tenant]
