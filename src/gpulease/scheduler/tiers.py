"""Tiers and preemption candidates from the kept indexes: work proportional to the jobs
that matter, not to the queue.

Design. With leases, the full walk (:func:`apply_tiers`) ranks every queued and running
job, sorts them all and first-fits each leased tenant's jobs into its guarantee. The same
answer comes from the indexes the engine keeps across steps (``QueueIndex`` groups and the
``RunningIndex`` lists by tenant and gang size), for a policy whose rank inside a tenant is
what the indexes sort by (``coarse_ordered``: a tenant's running jobs by ``(-priority,
*preempt_key, submit, seq)``, its queued ones by their group's ``static`` key ``(-priority,
*queued_key, *inner_key)`` then ``(submit, seq)``, the two never a proper prefix of one
another):

* :func:`guaranteed` merges, per leased tenant, the tenant's queue groups and running lists
  in that order and first-fits them into the guarantee, dropping a queue group as soon as
  its gang size exceeds the room left and stopping when the room is 0: O(guaranteed jobs +
  groups) per tenant, whatever the queue's length. A run of running jobs ranked before the
  next queued one is found by bisection and first-fit at once (``_fit_run``: the longest
  prefix whose GPUs add up to at most the room all fit, since prefix sums only grow; after
  it only jobs no larger than the room left can fit). A tenant without a lease has every
  job BORROWED and costs nothing. With a :class:`TierMemo` a tenant's first-fit is kept
  across steps and recomputed only when its queued or running jobs, its guarantee or its
  leaving jobs changed (the indexes' per-tenant ``versions``).
* :func:`tiered_candidates` yields running jobs in the full walk's preemption order
  (worst first by ``(tier, coarse, tenant key, submit, seq)``): borrowed ones by a lazy merge
  of the running lists, then the guaranteed ones.
* :class:`CandidateList` shares one such stream across a step's ``choose_victims`` calls and
  skips jobs already chosen as victims once (path compression), not at every call.

Invariant: for ``coarse_ordered`` policies, the guaranteed jobs and the candidate order are
exactly those of the full walk (checked by the differential property test).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sortedcontainers import SortedList

from gpulease.scheduler.preemption import Ranked
from gpulease.scheduler.queue_index import QueueGroup, QueueIndex
from gpulease.scheduler.quota import Tier, classify
from gpulease.scheduler.running_index import RunningIndex
from gpulease.scheduler.state import SchedulerState

_GUARANTEED = float(Tier.GUARANTEED)
_BORROWED = float(Tier.BORROWED)


class CandidateList:
    """Running jobs that could be preempted, worst first, pulled lazily from ``source``
    and shared by every ``choose_victims`` call of a step. A job in ``excluded`` (chosen
    as a victim, or leaving anyway) is skipped once: ``_next`` links jump over it after."""

    __slots__ = ("_excluded", "_items", "_next", "_source")

    def __init__(self, source: Iterator[Ranked], excluded: set[str]) -> None:
        self._source = source
        self._excluded = excluded
        self._items: list[Ranked] = []
        self._next: list[int] = []  # i -> an index <= the first live one at or after i

    def _live(self, i: int) -> int:
        """The first index >= ``i`` whose job is not excluded, or -1 when none is left."""
        items, links, excluded = self._items, self._next, self._excluded
        path: list[int] = []
        while True:
            if i >= len(items):
                pulled = next(self._source, None)
                if pulled is None:
                    i = -1
                    break
                items.append(pulled)
                links.append(len(links))
            link = links[i]
            if link != i:
                path.append(i)
                i = link
                continue
            if items[i].record.id in excluded:  # excluded only grows during a step
                links[i] = i + 1
                path.append(i)
                i += 1
                continue
            break
        if i >= 0:
            for p in path:
                links[p] = i
        return i

    def first(self) -> Ranked | None:
        i = self._live(0)
        return None if i < 0 else self._items[i]

    def __iter__(self) -> Iterator[Ranked]:
        i = self._live(0)
        while i >= 0:
            yield self._items[i]
            i = self._live(i + 1)


def index_candidates(index: RunningIndex, state: SchedulerState) -> Iterator[Ranked]:
    """Without leases: every running job is BORROWED, in the running index's order."""
    running = state.running
    for coarse, job_id in index.worst_first():
        full = (_BORROWED, *coarse)
        yield Ranked(full, full, Tier.BORROWED, running[job_id])


@dataclass(slots=True)
class Tiers:
    queued: list[Ranked]  # guaranteed queued jobs, best-ranked first (their visit order)
    running: set[str]  # guaranteed running jobs


# A tenant's first-fit: its guaranteed queued jobs as (job id, -priority, coarse key with the
# tier, submit, seq), in the tenant's rank order, and its guaranteed running jobs.
_Picks = tuple[list[tuple[str, float, tuple[float, ...], float, int]], list[str]]
# What a tenant's first-fit reads: both indexes' epochs and the tenant's versions in them,
# its guarantee, and which of its running jobs are leaving (not candidates for the tier).
_FitKey = tuple[int, int, int, int, int, frozenset[str]]


class TierMemo:
    """Each leased tenant's first-fit into its guarantee, kept across steps: recomputed
    only for a tenant whose queued or running jobs changed (the indexes' ``versions``),
    whose guarantee changed, or whose set of leaving running jobs changed. The ranks of
    its guaranteed queued jobs are rebuilt every step (a new claim counts from now)."""

    __slots__ = ("_kept", "_ranked")

    def __init__(self) -> None:
        self._kept: dict[str, tuple[_FitKey, _Picks]] = {}
        # guaranteed queued job -> its last rank (rebuilt when its claim or record changed)
        self._ranked: dict[str, Ranked] = {}


def guaranteed(
    queue: QueueIndex,
    index: RunningIndex,
    state: SchedulerState,
    guarantees: dict[str, int],
    excluded: set[str],
    now: float,
    memo: TierMemo | None = None,
) -> Tiers:
    """Each leased tenant's jobs in rank order, first-fit into its guarantee (``classify``);
    with ``memo``, a tenant whose inputs did not change keeps its last first-fit."""
    kept = memo._kept if memo is not None else {}
    last_ranked = memo._ranked if memo is not None else {}
    ranked_now: dict[str, Ranked] = {}
    running = state.running
    leaving: dict[str, set[str]] = {}
    for job_id in excluded:
        tenant = running[job_id].spec.tenant
        if tenant in guarantees:
            leaving.setdefault(tenant, set()).add(job_id)
    groups: dict[str, list[QueueGroup]] | None = None
    queued = state.queued
    tiers = Tiers([], set())
    taken = tiers.running
    fresh: dict[str, tuple[_FitKey, _Picks]] = {}
    for tenant, room in guarantees.items():
        if room <= 0:
            continue
        key: _FitKey = (
            queue.epoch,
            queue.versions.get(tenant, 0),
            index.epoch,
            index.versions.get(tenant, 0),
            room,
            frozenset(leaving.get(tenant, ())),
        )
        held = kept.get(tenant)
        if held is not None and held[0] == key:
            picks = held[1]
        else:
            if groups is None:
                groups = {}
                for group in queue.groups.values():
                    if group.tenant in guarantees:
                        groups.setdefault(group.tenant, []).append(group)
            picks = _first_fit(groups.get(tenant, ()), index, tenant, room, excluded)
        fresh[tenant] = (key, picks)
        ranks = tiers.queued
        for job_id, prio, coarse, submit, seq in picks[0]:
            record = queued[job_id]
            since = record.guaranteed_since
            ranked = last_ranked.get(job_id)
            # A claim already made ranks as it did (its moment is kept); a new one from now.
            if (
                ranked is None
                or since is None
                or ranked.record is not record
                or ranked.key[2] != since
                or ranked.coarse != coarse
            ):
                claim = now if since is None else since
                rank = (_GUARANTEED, prio, claim, submit, float(seq))
                ranked = Ranked(rank, coarse, Tier.GUARANTEED, record)
            ranks.append(ranked)
            ranked_now[job_id] = ranked
        taken.update(picks[1])
    if memo is not None:
        memo._kept = fresh
        memo._ranked = ranked_now
    tiers.queued.sort(key=_rank_key)
    return tiers


def _first_fit(
    groups: Iterable[QueueGroup],
    index: RunningIndex,
    tenant: str,
    room: int,
    excluded: set[str],
) -> _Picks:
    """One tenant's queue groups and running list merged in rank order, first-fit into
    ``room`` GPUs: O(guaranteed jobs + groups), whatever the queue's length."""
    picked: list[tuple[str, float, tuple[float, ...], float, int]] = []
    taken: list[str] = []
    # queue groups: heap of (key of the next job, n, GPUs, group, its position)
    heap: list[tuple[tuple[object, ...], int, int, QueueGroup, int]] = []
    for group in groups:
        submit, seq, _ = group.entries[0]
        heap.append(((group.static, submit, seq), len(heap), group.shape[0], group, 0))
    heapq.heapify(heap)
    # running jobs: one sorted list, (coarse, submit, seq, job id, GPUs)
    running = list(index.by_tenant.get(tenant, ()))  # a plain list: cheap to index
    at, end = 0, len(running)
    while room > 0 and (heap or at < end):
        if at < end and (not heap or running[at] < heap[0][0]):
            # the run of running jobs ranked before the next queued one
            stop = bisect.bisect_left(running, heap[0][0], at) if heap else end
            if stop - at > _LONG_RUN:
                room = _fit_run(running[at:stop], room, excluded, taken)
            else:
                for head in running[at:stop]:
                    gpus = head[4]
                    if gpus <= room and head[3] not in excluded:
                        taken.append(head[3])
                        room -= gpus
                        if not room:
                            break
            at = stop
            continue
        _, n, gpus, group, pos = heap[0]
        if gpus > room:
            heapq.heappop(heap)  # the room only shrinks: none of these fits any more
            continue
        entries = group.entries
        submit, seq, job_id = entries[pos]
        picked.append((job_id, group.static[0], (_GUARANTEED, *group.coarse), submit, seq))
        room -= gpus
        pos += 1
        if pos < len(entries):
            submit, seq, _ = entries[pos]
            heapq.heapreplace(heap, ((group.static, submit, seq), n, gpus, group, pos))
        else:
            heapq.heappop(heap)
    return picked, taken


_rank_key = operator.attrgetter("key")
_JOB, _GPUS = operator.itemgetter(3), operator.itemgetter(4)  # of a ``by_tenant`` entry
_LONG_RUN = 16  # a run of running jobs longer than this is first-fit by ``_fit_run``


def _fit_run(
    run: Iterable[tuple[tuple[float, ...], float, int, str, int]],
    room: int,
    excluded: set[str],
    taken: list[str],
) -> int:
    """First-fit a run of running jobs into ``room``: each job not ``excluded`` that fits
    what is left is taken (appended to ``taken``); returns the room left. The longest
    prefix whose GPUs add up to at most ``room`` all fit (prefix sums only grow), so it is
    found by bisection; after it, only jobs no larger than the room left can still fit."""
    live = [entry for entry in run if entry[3] not in excluded] if excluded else list(run)
    sums = list(itertools.accumulate(map(_GPUS, live)))
    fit = bisect.bisect_right(sums, room)
    if fit:
        taken.extend(map(_JOB, live[:fit]))
        room -= sums[fit - 1]
    if room > 0 and fit < len(live):
        for entry in [e for e in live[fit:] if e[4] <= room]:
            gpus = entry[4]
            if gpus <= room:
                taken.append(entry[3])
                room -= gpus
                if not room:
                    break
    return room


def _keyed(
    entries: SortedList, key: tuple[float, ...]
) -> Iterator[tuple[tuple[float, ...], tuple[float, ...], float, int, str]]:
    for coarse, submit, seq, job_id, _ in reversed(entries):
        yield coarse, key, submit, seq, job_id


def tiered_candidates(
    index: RunningIndex,
    state: SchedulerState,
    guaranteed_running: set[str],
    tenant_key: Callable[[str], tuple[float, ...]],
) -> Iterator[Ranked]:
    """Running jobs worst first as the full walk sorts them once tiered: BORROWED ones by
    (coarse, the tenant's key, submit, seq) descending, then the GUARANTEED ones by
    (coarse, submit, seq) descending."""
    running = state.running
    streams = [_keyed(entries, tenant_key(tenant)) for tenant, entries in index.by_tenant.items()]
    for coarse, _, _, _, job_id in heapq.merge(*streams, reverse=True):
        if job_id in guaranteed_running:
            continue
        full = (_BORROWED, *coarse)
        yield Ranked(full, full, Tier.BORROWED, running[job_id])
    for coarse, _, _, job_id in sorted(
        (index.entry(job_id) for job_id in guaranteed_running), reverse=True
    ):
        full = (_GUARANTEED, *coarse)
        yield Ranked(full, full, Tier.GUARANTEED, running[job_id])


def apply_tiers(
    queued: list[Ranked],
    running: list[Ranked],
    guarantees: dict[str, int],
    now: float,
) -> tuple[list[Ranked], list[Ranked]]:
    """The full walk's tiers: every job ranked, first-fit per tenant (``classify``)."""
    everyone = sorted(queued + running, key=lambda x: x.key)
    tiers = classify(
        everyone,
        guarantees,
        tenant_of=lambda x: x.record.spec.tenant,
        gpus_of=lambda x: x.record.spec.gpus,
    )
    tier_of = {x.record.id: tier for x, tier in zip(everyone, tiers, strict=True)}

    def retier(x: Ranked) -> Ranked:
        tier = tier_of[x.record.id]
        coarse = (float(tier), *x.coarse[1:])
        if tier is Tier.GUARANTEED:
            # Every guaranteed job is owed its GPUs, so the order among them only decides
            # who gets GPUs first: the oldest claim first (within a priority class), by the
            # moment the job began to wait within its guarantee (``guaranteed_since``; a
            # claim made in this step counts from now). Re-ranking by the policy each step
            # would let a later claim take the GPUs an earlier one waits for (its victims'
            # or a release it counted on) and cost it a second grace period.
            record = x.record
            since = record.guaranteed_since
            claim = now if since is None else since
            key = (float(tier), x.key[1], claim, record.spec.submit_time, float(record.seq))
            return Ranked(key, coarse, tier, record)
        return Ranked((float(tier), *x.key[1:]), coarse, tier, x.record)

    return [retier(x) for x in queued], [retier(x) for x in running]
