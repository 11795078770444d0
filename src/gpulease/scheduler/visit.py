"""The queue walk of one step: each queued job, best-ranked first, starts, plans on GPUs
being released, preempts, or waits.

Design. :class:`QueueWalk` holds one step's scratch (the ``Pools`` of free GPUs and GPUs
being released, the preemption candidates, the hopeless shapes, the queueing discipline's
block or reservation) and :meth:`QueueWalk.visit` decides one job against it. The engine's
two walks (the full ranking and the index's lazy merge of queue groups, ``engine``) both
call it, so both decide alike; it never reads a clock and never writes the state.

A visit, in order:
1. held back by a blocked queue head (strict) or a shape already hopeless (greedy): wait;
2. placeable on free GPUs (and, under EASY, not delaying the reservation): start;
3. placeable on GPUs being released by preempted jobs (``soon``): plan there, earmark the
   plan's GPUs so that no later job takes them, and wait (a guaranteed claim plans on the
   releases that come within the grace of its claim when it can: ``_in_time``);
4. worse-ranked running jobs free a place (``preemption.choose_victims``): preempt them
   (at once with no grace: start; else earmark and wait);
5. else wait, and the shape is hopeless until the free map grows.

Invariant: a GPU is promised at most once per step (every change goes through ``Pools``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from gpulease.domain.models import JobSpec, TopologyMode
from gpulease.scheduler.backfill import ends_before_shadow, may_backfill, reserve
from gpulease.scheduler.decisions import PREEMPTED, RECLAIMED, Decisions, Preempt, Start
from gpulease.scheduler.ordering import OrderingPolicy, Queueing
from gpulease.scheduler.placement import (
    FreeMap,
    Placement,
    WaitCode,
    WaitReason,
    place,
    racks_spanned,
)
from gpulease.scheduler.pools import Pools
from gpulease.scheduler.preemption import Ranked, choose_victims, usable
from gpulease.scheduler.quota import Tier
from gpulease.scheduler.running_index import RunningIndex
from gpulease.scheduler.state import JobRecord, SchedulerState
from gpulease.scheduler.tiers import CandidateList, index_candidates
from gpulease.scheduler.waiting import preempting_reason, reservation_reason, short_reason


class WalkConfig(Protocol):
    """What a walk reads of the scheduler's configuration (``engine.SchedulerConfig``)."""

    @property
    def preemption_grace_s(self) -> float: ...

    @property
    def explain(self) -> bool: ...

    @property
    def keep_blocks(self) -> int: ...


# (coarse rank key, GPUs, GPUs per node, segment, topology mode): what ``hopeless`` holds
Shape = tuple[tuple[float, ...], int, int | None, int | None, TopologyMode]

# Stands for a reason nobody reads (``explain`` off): building the message costs time.
UNEXPLAINED = WaitReason(WaitCode.NO_CAPACITY, "not enough free GPUs")


class QueueWalk:
    """The queue walk of one step. :meth:`visit` is called for each queued job, best-ranked
    first: the job starts, earmarks GPUs being released, preempts, or waits; the queueing
    discipline decides whether later jobs may still start. The full ranking and the index's
    merged groups both call it, so both decide alike."""

    def __init__(
        self,
        policy: OrderingPolicy,
        config: WalkConfig,
        index: RunningIndex,
        state: SchedulerState,
        decisions: Decisions,
        pools: Pools,
        excluded: set[str],
        now: float,
        domain: str,
    ) -> None:
        self.policy = policy
        self.config = config
        self.state = state
        self.decisions = decisions
        self.pools = pools
        self.excluded = excluded
        self.now = now
        self.domain = domain
        # running jobs that could be preempted, worst first (tiered when leases exist)
        self.candidates = CandidateList(index_candidates(index, state), excluded)
        self.blocked: WaitReason | None = None
        # tenants whose job blocks the queue (strict) or holds the EASY reservation: their
        # later jobs wait behind it; other tenants' guaranteed jobs do not (``_held_back``)
        self.holders: set[str] = set()
        # Shapes (coarse rank + request) that found neither released GPUs nor victims since
        # the free map last grew, with the reason they got: a later job of the same shape
        # cannot do better, and waits for the same reason.
        self.hopeless: dict[Shape, WaitReason] = {}
        self.clears = 0  # times ``hopeless`` was emptied because the free map grew
        self.explain = config.explain
        self.greedy = policy.queueing is Queueing.GREEDY

    def _held_back(self, ranked: Ranked) -> bool:
        """Does a blocked queue head or the EASY reservation hold this job back? Not when
        it is a guaranteed job of another tenant: a lease's guarantee is that tenant's
        own, and another tenant's job that cannot start may not keep it idle."""
        return not (
            ranked.tier is Tier.GUARANTEED and ranked.record.spec.tenant not in self.holders
        )

    def _plan(self, spec: JobSpec, early: FreeMap, merged: FreeMap | None) -> Placement | None:
        """Where ``spec`` will start on GPUs being released (``early``), with free ones
        (``merged`` holds both; None: ``pools.merged()``, built only when needed) only if
        that spans fewer racks: released GPUs alone leave free ones to jobs that can start
        now or count on them."""
        domain, cluster = self.domain, self.state.cluster
        later: Placement | WaitReason = UNEXPLAINED
        if early.total >= spec.gpus:
            later = place(spec, early, domain=domain)
        if isinstance(later, WaitReason) or racks_spanned(cluster, later) > 1:
            mixed = place(spec, self.pools.merged() if merged is None else merged, domain=domain)
            if isinstance(later, WaitReason) or (
                not isinstance(mixed, WaitReason)
                and racks_spanned(cluster, mixed) < racks_spanned(cluster, later)
            ):
                later = mixed
        return None if isinstance(later, WaitReason) else later

    def _in_time(self, record: JobRecord, plan: Placement) -> tuple[Placement, float]:
        """A guaranteed claim starts within the grace of its claim: if ``plan`` counts on
        GPUs released after that (another claim's victims), the plan on the earliest
        releases that let it start instead, so that no job ranked below takes the free
        GPUs it needs meanwhile. Returns the plan and the release it waits for at most."""
        pools = self.pools
        since = record.guaranteed_since
        due = (self.now if since is None else since) + self.config.preemption_grace_s
        if pools.latest_release <= due:  # nothing is released later: the plan is in time
            return plan, math.inf
        ready = pools.ready_at(plan)
        if ready <= due:
            return plan, math.inf
        for at in pools.release_times(record.spec.gpus):
            if at >= ready:
                break
            early, merged = pools.released_by(at)
            sooner = self._plan(record.spec, early, merged)
            if sooner is not None:
                return sooner, at
        return plan, math.inf

    def _earmark(self, placement: Placement, by: float = math.inf) -> None:
        promised = self.pools.earmark(placement, by)
        if promised:
            self.decisions.earmarks.append((len(self.decisions.starts), promised))

    def visit(self, ranked: Ranked, shape: Shape | None = None) -> None:
        """Decide one job; ``shape``: its hopeless-set shape when the caller has it."""
        decisions, pools = self.decisions, self.pools
        policy, domain, now = self.policy, self.domain, self.now
        record = ranked.record
        spec = record.spec
        # ``_held_back``, inline (one call less per visit)
        held_back = ranked.tier is not Tier.GUARANTEED or spec.tenant in self.holders
        if self.blocked is not None and held_back:
            self._wait(record, self.blocked)
            return
        if shape is None:
            topology = spec.topology
            shape = (ranked.coarse, spec.gpus, spec.gpus_per_node, topology.segment, topology.mode)
        hopeless = self.hopeless.get(shape)
        if hopeless is not None and self.greedy:
            # The free map only shrank since a job of this shape failed: so would this one.
            self._wait(record, hopeless)
            return
        free = pools.free
        outcome: Placement | WaitReason
        if free.total >= spec.gpus:
            outcome = place(spec, free, domain=domain, keep_blocks=self.config.keep_blocks)
        elif self.explain:
            outcome = short_reason(spec.gpus)
        else:
            outcome = UNEXPLAINED
        if not isinstance(outcome, WaitReason):
            reservation = pools.reservation
            if reservation is not None and held_back:
                held = may_backfill(spec, reservation, now, domain=domain)
                if held is None and not ends_before_shadow(spec, reservation, now):
                    self._wait(record, reservation_reason(reservation))
                    return
                outcome = held or outcome
            pools.claim(outcome)
            self._start(ranked, outcome)
            return
        # Not placeable on free GPUs: GPUs about to be released by preempted jobs?
        state = self.state
        soon = pools.soon
        if soon.total and free.total + soon.total >= spec.gpus:
            later = self._plan(spec, soon, None)
            by = math.inf
            if later is not None and ranked.tier is Tier.GUARANTEED:
                later, by = self._in_time(record, later)
            if later is not None:
                self._earmark(later, by)
                if self.explain:
                    self._wait(record, preempting_reason(spec.gpus))
                return
        # Preempt worse-ranked work? With a grace period the job waits for its victims
        # anyway, so GPUs already being released (and not earmarked) count with theirs.
        excluded = self.excluded
        schedulable = state.schedulable
        grace = self.config.preemption_grace_s
        found = choose_victims(
            spec,
            ranked,
            self.candidates,
            pools.merged() if grace > 0 and soon.total else free,
            schedulable,
            policy_preemptive=policy.preemptive,
            domain=domain,
        )
        if found is not None:
            victims, planned = found
            self._preempt(victims, ranked)
            excluded.update(v.record.id for v in victims)
            gain = [g for v in victims for g in usable(v.record.placement, schedulable)]
            if grace <= 0:
                pools.release(gain)
                decisions.releases.append((len(decisions.starts), tuple(gain)))
                self.hopeless.clear()
                self.clears += 1
                pools.claim(planned)
                self._start(ranked, planned)
            else:
                pools.release_later(gain, now + grace)
                self._earmark(planned)
                self._wait(record, preempting_reason(spec.gpus))
            return
        self.hopeless[shape] = outcome
        self._wait(record, outcome)
        if policy.queueing is Queueing.STRICT:
            self.holders.add(spec.tenant)
            if self.blocked is None:
                self.blocked = WaitReason(
                    WaitCode.BLOCKED, "queued behind an earlier job that cannot start yet"
                )
        elif policy.queueing is Queueing.EASY and pools.reservation is None:
            live = [r for r in state.running.values() if r.id not in excluded]
            pools.reservation = reserve(spec, free, live, schedulable, domain=domain)
            self.holders.add(spec.tenant)

    # ------------------------------------------------------------------ outcomes
    def _start(self, ranked: Ranked, p: Placement) -> None:
        self.decisions.starts.append(Start(ranked.record.id, p, ranked.tier is Tier.BORROWED))

    def _preempt(self, victims: Sequence[Ranked], claimant: Ranked) -> None:
        grace = self.config.preemption_grace_s
        decisions, record = self.decisions, claimant.record
        for victim in victims:
            reclaim = claimant.tier is Tier.GUARANTEED and victim.tier is Tier.BORROWED
            reason = RECLAIMED if reclaim else PREEMPTED
            notice = Preempt(victim.record.id, self.now + max(grace, 0.0), reason, record.id)
            (decisions.notices if grace > 0 else decisions.requeues).append(notice)

    def _wait(self, record: JobRecord, reason: WaitReason) -> None:
        if self.explain:
            self.decisions.waiting.put(record.id, reason)
