"""``Scheduler.step(state, now) -> Decisions``: one pure scheduling pass.

Design. The engine reads a :class:`SchedulerState`, never writes it, never reads a clock;
the driver applies the returned :class:`Decisions` (``decisions.apply_decisions`` order:
timeouts, requeues, notices, starts). Same state, same ``now``, same decisions. What one
queued job's visit decides is ``visit.QueueWalk``; this module ranks, orders the visits and
keeps the memos (indexes) that make a step pay for what changed.

One pass:
1. running jobs past their walltime time out; preempted jobs whose grace ended requeue;
2. every job gets a rank key: (quota tier, -priority class, policy key, submit, sequence);
3. queued jobs are visited best-ranked first against a scratch free map: a job that fits
   starts; one that does not may take GPUs that preempted jobs are about to release, or
   preempt worse-ranked running jobs (``visit``, ``preemption``), or else waits with its reason; the
   queueing discipline (strict / EASY / greedy) decides whether later jobs may still start;
   a job waiting for released GPUs holds the free ones its plan needs (reported in
   ``Decisions.earmarks``), and a guaranteed claim plans on releases that come within the
   grace of its claim when it can (so a later claim's victims never delay it);
4. each start is given the capacity it runs on (``capacity.attribute``: own lease, another
   tenant's idle lease, unleased), which the drivers record with its run;
5. ``next_wakeup`` is the earliest moment a decision could change without a new event
   (a grace period ends, a walltime expires, a running job's rank changes, a lease starts).

Two walks, one visit. The *full walk* ranks every queued job (and, with leases, every
running one: ``tiers.apply_tiers``) and visits them all. The *indexed walk* (greedy queueing, a
``SplitKey`` policy; with leases also ``coarse_ordered``) takes the same decisions from
indexes kept across steps, paying for what changed and for the jobs whose visit can change
something: tiers from the kept indexes (``tiers.guaranteed``: guaranteed jobs visited
first), borrowed jobs by a lazy merge of the queue groups that sets a hopeless shape aside
whole, preemption candidates from a stream shared by the step (``tiers.CandidateList``).
Reasons of jobs not visited are recorded per run of a queue group and resolved on read
(``waiting.WaitingMap``); a job of a shape already hopeless in this walk waits for that
shape's reason, in both walks, and reason texts carry no free-GPU counts, so a stored
reason changes only when its meaning does. Invariant (differential property test): both
walks return equal ``Decisions``, reasons included.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from gpulease.scheduler.capacity import attribute
from gpulease.scheduler.decisions import (
    PREEMPTED,
    RECLAIMED,
    Decisions,
    Preempt,
    Start,
    apply_decisions,
)
from gpulease.scheduler.ordering import OrderContext, OrderingPolicy, Queueing, SplitKey
from gpulease.scheduler.placement import WaitReason
from gpulease.scheduler.pools import Pools
from gpulease.scheduler.preemption import Ranked, usable
from gpulease.scheduler.queue_index import QueueGroup, QueueIndex
from gpulease.scheduler.quota import Tier, guarantees_at, next_guarantee_change
from gpulease.scheduler.releases import GraceReleases
from gpulease.scheduler.running_index import RunningIndex
from gpulease.scheduler.state import JobRecord, SchedulerState
from gpulease.scheduler.tiers import (
    CandidateList,
    TierMemo,
    apply_tiers,
    guaranteed,
    tiered_candidates,
)
from gpulease.scheduler.visit import QueueWalk, Shape
from gpulease.scheduler.waiting import short_reason

# Kept importable from here (the drivers' and tests' long-standing names).
__all__ = [
    "PREEMPTED",
    "RECLAIMED",
    "Decisions",
    "Preempt",
    "Scheduler",
    "SchedulerConfig",
    "Start",
    "apply_decisions",
]


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    preemption_grace_s: float = 30.0
    explain: bool = True  # fill Decisions.waiting for every queued job
    # Walk the queue through the kept QueueIndex when that cannot change a decision (see
    # Scheduler._fast_queue); False always ranks the whole queue (for comparisons).
    queue_index: bool = True
    # Rack-local block (GPUs in whole nodes) that work without a rack requirement should not
    # break while racks without one have room (``placement.place``); 0 = off.
    keep_blocks: int = 0


class Scheduler:
    def __init__(self, policy: OrderingPolicy, config: SchedulerConfig | None = None) -> None:
        self.policy = policy
        self.config = config or SchedulerConfig()
        # Running jobs in preemption order, kept across steps (a memo of the state).
        self._index = RunningIndex(policy)
        # GPUs of jobs in their grace period, kept across steps (a memo of the state).
        self._grace = GraceReleases()
        # Each leased tenant's first-fit into its guarantee, kept while its inputs hold.
        self._tiers = TierMemo()
        # Queued jobs in groups of stable order, kept across steps (a memo of the state).
        self._split: SplitKey | None = policy if isinstance(policy, SplitKey) else None
        self._queue = QueueIndex(policy) if self._split is not None else None

    def step(self, state: SchedulerState, now: float) -> Decisions:
        decisions = Decisions(now)
        policy = self.policy
        domain = _domain_word(state)
        schedulable = state.schedulable
        self._index.sync(state, now)

        # 1. walltimes and grace periods (only jobs with a deadline are looked at)
        excluded: set[str] = set()  # running jobs that are not preemption candidates
        live = state.running
        due = now + 1e-9 * max(1.0, abs(now))  # far beyond any rounding of a deadline
        ahead = math.inf  # the earliest deadline of a job that keeps running
        freed: list[list[tuple[int, int]]] = []  # GPUs of jobs that stop now
        kept = self._grace.kept(state)
        leaving: dict[str, float] = {}  # jobs in their grace period -> release time
        fresh: list[str] = []  # those of them the kept map does not hold as they are
        for job_id, deadline in state.deadlines.items():
            record = live[job_id]
            at = record.preempt_at
            if deadline > due and at is None:
                # a walltime that cannot have passed: nothing to do (the usual case)
                ahead = min(ahead, deadline)
                continue
            walltime = record.spec.walltime
            if walltime is not None and record.run_time_at(now) >= walltime:
                decisions.timeouts.append(job_id)
                freed.append(usable(record.placement, schedulable))
            elif at is not None and at <= now:
                decisions.requeues.append(Preempt(job_id, now, record.preempt_reason))
                freed.append(usable(record.placement, schedulable))
            else:
                ahead = min(ahead, deadline)
                if at is None:
                    continue
                leaving[job_id] = at
                held = kept.get(job_id)
                if held is None or held[0] != at or held[1] != record.run_start:
                    fresh.append(job_id)
            excluded.add(job_id)
        self._grace.sync(state, leaving, fresh)
        pools = Pools(state, self._grace)
        for gpus in freed:
            pools.release(gpus)

        # 2. ranks
        guarantees = guarantees_at(state.leases, now)
        ctx = OrderContext(
            now,
            state.usage_by_tenant(now) if policy.needs_usage else {},
            {t: float(g) for t, g in guarantees.items()},
        )
        visit = QueueWalk(
            policy, self.config, self._index, state, decisions, pools, excluded, now, domain
        )
        queued: list[Ranked] = []
        if self._fast_queue(guarantees):
            assert self._queue is not None
            self._queue.sync(state, now)
            if guarantees:
                split = self._split
                assert split is not None
                tiers = guaranteed(
                    self._queue, self._index, state, guarantees, excluded, now, self._tiers
                )
                queued = tiers.queued
                visit.candidates = CandidateList(
                    tiered_candidates(
                        self._index, state, tiers.running, lambda t: split.tenant_key(t, ctx)
                    ),
                    excluded,
                )
                for ranked in queued:  # guaranteed jobs rank before every borrowed one
                    visit.visit(ranked)
            self._visit_merged(visit, ctx, {x.record.id for x in queued})
        else:
            queued = [self._rank(r, ctx) for r in state.queued.values()]
            if guarantees:
                running = [
                    self._rank(r, ctx) for r in state.running.values() if r.id not in excluded
                ]
                queued, running = apply_tiers(queued, running, guarantees, now)
                running.sort(key=lambda x: (x.coarse, x.key), reverse=True)
                visit.candidates = CandidateList(iter(running), excluded)
            queued.sort(key=lambda x: x.key)
            # 3. visit the queue, best-ranked first
            for ranked in queued:
                visit.visit(ranked)

        if guarantees:
            started = {s.job_id for s in decisions.starts}
            claims = decisions.guaranteed_waiting
            for x in queued:
                if x.tier is Tier.GUARANTEED:
                    job_id = x.record.spec.id
                    if job_id not in started:
                        claims.append(job_id)
        attribute(state, decisions)  # whose capacity each start runs on
        decisions.next_wakeup = self._next_wakeup(state, decisions, ahead)
        return decisions

    def _fast_queue(self, guarantees: dict[str, int]) -> bool:
        """May this step walk the queue through the index? Only where skipping a job cannot
        change a decision: greedy queueing (no reservation, nothing blocks); with leases,
        only for a policy whose rank inside a tenant is what the indexes sort by
        (``coarse_ordered``, ``tiers``). Strict and EASY queueing rank the whole queue
        every step."""
        return (
            self._queue is not None
            and self.config.queue_index
            and self.policy.queueing is Queueing.GREEDY
            and (not guarantees or bool(getattr(self.policy, "coarse_ordered", False)))
        )

    def _visit_merged(self, visit: QueueWalk, ctx: OrderContext, skip: set[str]) -> None:
        """Visit borrowed queued jobs in rank order by merging the index's groups lazily.

        Exactly the full walk minus no-op visits: a job whose shape is already hopeless (and
        that cannot fit the free map, which only shrinks until the hopeless set is cleared)
        only waits for its shape's reason, so a group whose shape turns hopeless is set
        aside whole, its jobs recorded as one run of ``Decisions.waiting``. When GPUs are
        released at once (no grace) the hopeless set is cleared and the groups set aside
        come back from the first job ranked after the current one, as the full walk would
        visit them. Once nothing is free or being released and no running job ranks below
        the next job, every job left only waits: the walk stops. Jobs in ``skip`` (the
        guaranteed ones, already visited) are passed over.
        """
        split = self._split
        assert self._queue is not None
        assert split is not None
        queued = visit.state.queued
        borrowed = float(Tier.BORROWED)
        tenant_keys: dict[str, tuple[float, ...]] = {}
        groups = self._queue.groups.values()
        pools = visit.pools
        free, soon = pools.free, pools.soon
        explain = visit.explain
        waiting = visit.decisions.waiting
        waiting.skip = skip
        hopeless = visit.hopeless
        if not free.total and not soon.total and groups:
            # A full site, nothing being released: only preemption could change anything,
            # and only for a job ranked above the worst running job.
            best = min(_group_shape(group, borrowed)[0] for group in groups)
            if not self._may_preempt_any(visit, best):
                if explain:
                    for group in groups:
                        shape = _group_shape(group, borrowed)
                        waiting.add_run(group.entries[:], _left_waiting(hopeless, shape))
                return
        heap: list[_HeapItem] = []
        for group in groups:
            tenant_key = tenant_keys.get(group.tenant)
            if tenant_key is None:
                tenant_key = tenant_keys[group.tenant] = split.tenant_key(group.tenant, ctx)
            prefix = (borrowed, *group.outer, *tenant_key, *group.inner)
            shape = _group_shape(group, borrowed)
            submit, seq, _ = group.entries[0]
            heap.append(((*prefix, submit, seq), 0, prefix, shape, group))
        heapq.heapify(heap)
        dropped: list[tuple[_HeapItem, WaitReason]] = []
        clears = visit.clears
        while heap:
            item = heap[0]
            key, pos, prefix, shape, group = item
            if not free.total and not soon.total and not self._may_preempt_any(visit, shape[0]):
                # Nothing free, nothing being released unclaimed, and no running job ranks
                # below this one: every job left (ranked at least as low) only waits.
                if explain:
                    for _, pos, _, shape, group in heap:
                        waiting.add_run(group.entries[pos:], _left_waiting(hopeless, shape))
                break
            if shape in hopeless:
                heapq.heappop(heap)
                dropped.append((item, hopeless[shape]))
                continue
            entries = group.entries
            job_id = entries[pos][2]
            if job_id not in skip:
                # ``key`` is the rank key ``_rank`` gives (the SplitKey contract),
                # ``shape[0]`` its coarse key: no need to ask the policy again.
                visit.visit(Ranked(key, shape[0], Tier.BORROWED, queued[job_id]), shape)
            pos += 1
            if pos < len(entries):
                submit, seq, _ = entries[pos]
                heapq.heapreplace(heap, ((*prefix, submit, seq), pos, prefix, shape, group))
            else:
                heapq.heappop(heap)
            if visit.clears != clears:
                clears = visit.clears
                for (_, pos, prefix, shape, group), reason in dropped:
                    entries = group.entries
                    # the full walk passed these while their shape was hopeless: they wait
                    start = pos
                    while pos < len(entries) and (*prefix, *entries[pos][:2]) < key:
                        pos += 1
                    if explain:
                        waiting.add_run(entries[start:pos], reason)
                    if pos < len(entries):
                        submit, seq, _ = entries[pos]
                        heapq.heappush(heap, ((*prefix, submit, seq), pos, prefix, shape, group))
                dropped.clear()
        if explain:
            for (_, pos, _, _, group), reason in dropped:
                waiting.add_run(group.entries[pos:], reason)

    def _may_preempt_any(self, visit: QueueWalk, coarse: tuple[float, ...]) -> bool:
        """Does some running job (not already leaving) rank below ``coarse``? If not,
        ``choose_victims`` stops at its first candidate for this job and every later one."""
        worst = visit.candidates.first()
        return worst is not None and worst.coarse > coarse

    # ------------------------------------------------------------------ parts
    def _rank(self, record: JobRecord, ctx: OrderContext) -> Ranked:
        spec = record.spec
        tier = float(Tier.BORROWED)
        prio = float(-spec.priority)
        key = (tier, prio, *self.policy.key(record, ctx), spec.submit_time, float(record.seq))
        coarse = (tier, prio, *self.policy.preempt_key(record, ctx.now))
        return Ranked(key, coarse, Tier.BORROWED, record)

    def _next_wakeup(
        self, state: SchedulerState, decisions: Decisions, ahead: float
    ) -> float | None:
        """The earliest moment a decision could change without a new event, as the state will
        be once ``decisions`` are applied: a grace period or walltime ends (this step's
        notices and starts included), a running job's rank changes, a lease starts or ends."""
        now = decisions.now
        wake = ahead  # deadlines of the jobs this step does not end
        for notice in decisions.notices:
            wake = min(wake, notice.at)
        queue_left = len(state.queued) - len(decisions.starts) + len(decisions.requeues) > 0
        for start in decisions.starts:
            record = state.jobs[start.job_id]
            walltime = record.spec.walltime
            if walltime is not None:
                wake = min(wake, now + walltime - record.run_time)
            if queue_left:
                change = self.policy.next_key_change(_started_at(record, now), now)
                if change is not None:
                    wake = min(wake, change)
        if queue_left:
            wake = min(wake, self._index.next_change(state))
        lease_change = next_guarantee_change(state.leases, now)
        if lease_change is not None:
            wake = min(wake, lease_change)
        return None if wake == math.inf else max(wake, now)


def _group_shape(group: QueueGroup, tier: float) -> Shape:
    """The hopeless-set shape of every job of ``group`` (kept on the group: constant)."""
    shape = group.memo
    if shape is None:
        shape = group.memo = ((tier, *group.coarse), *group.shape)
    return shape  # type: ignore[return-value]


def _started_at(record: JobRecord, now: float) -> JobRecord:
    """``replace(record, run_start=now)``, without ``dataclasses.replace``'s introspection."""
    copy = JobRecord.__new__(JobRecord)
    for name in JobRecord.__slots__:
        setattr(copy, name, getattr(record, name))
    copy.run_start = now
    return copy


def _left_waiting(hopeless: dict[Shape, WaitReason], shape: Shape) -> WaitReason:
    """The reason of a job the walk no longer needs to visit (nothing free, nothing to
    preempt): its shape's reason if the shape is hopeless, else not enough free GPUs."""
    return hopeless.get(shape) or short_reason(shape[1])


# (key of the group's next job, its position, group prefix, hopeless shape, group)
_HeapItem = tuple[tuple[float, ...], int, tuple[float, ...], Shape, QueueGroup]


def _domain_word(state: SchedulerState) -> str:
    return "NVLink domain" if state.cluster.hardware == "gb200-nvl72" else "rack"
