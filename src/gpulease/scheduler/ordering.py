"""Ordering policies: which waiting job goes first, and whether it may preempt to get there.

A policy is a plug-in: a pure ``key(job, ctx)`` (smaller goes first), a flag saying whether a
better-ranked job of the same priority class may preempt a worse-ranked one, the queueing
discipline used when the best job does not fit, and ``next_key_change`` so the driver knows
when to wake the engine because a running job's rank will change.

The engine prefixes every key with (quota tier, -priority class) and suffixes it with
(submit time, submission sequence), so ties are always broken the same way.

Policies:
* ``fifo``     submit order, strict: the head blocks the queue (no preemption).
* ``easy``     submit order with EASY backfill (a reservation for the head, walltimes used).
* ``las``      discretised least-attained-service (Tiresias' 2D-LAS, non-clairvoyant):
               GPU-seconds of service decide a queue level; lower levels first and preempt.
* ``las-gang`` LAS with three levels (3,250 / 7,200 x GPUs^0.45 GPU-seconds), Tiresias'
               discipline inside a level (a job entering a level joins it behind the waiting
               ones; victims latest entry first) and, among waiting jobs, smaller gangs
               first, then the one that has run longer: still non-clairvoyant.
* ``fairshare``decayed fair share: tenants with the least recent usage per leased GPU first.
* ``default``  ``las-gang``'s levels and in-level rules with fair share between tenants
               inside a level: (level, tenant's share, gang size, service per GPU); more
               levels for rack-scale gangs (``LasGangRack``); greedy
               work-conserving placement with preemption; leases and priority classes on
               top (see ``quota``).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from gpulease.domain.errors import InvalidRequest
from gpulease.scheduler.state import JobRecord

HOUR = 3600.0


class Queueing(StrEnum):
    STRICT = "strict"  # stop at the first job that cannot be placed
    EASY = "easy"  # reserve for the first such job; others may not delay it
    GREEDY = "greedy"  # any job that fits starts (preemption protects better-ranked work)


@dataclass(frozen=True, slots=True)
class OrderContext:
    now: float
    usage: Mapping[str, float] = field(default_factory=dict)  # decayed GPU-seconds per tenant
    weights: Mapping[str, float] = field(default_factory=dict)  # leased GPUs per tenant


class OrderingPolicy(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def preemptive(self) -> bool:
        """May a better-ranked job of the same priority class preempt a worse one?"""
        ...

    @property
    def queueing(self) -> Queueing: ...

    @property
    def needs_usage(self) -> bool:
        """Does ``key`` read ``OrderContext.usage`` (decayed usage per tenant)?"""
        ...

    def key(self, job: JobRecord, ctx: OrderContext) -> tuple[float, ...]: ...

    def preempt_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        """The coarse part of ``key`` that preemption compares (constant between changes).

        A job may preempt another of the same class only if this key is strictly smaller:
        jobs in one LAS level never preempt each other, so nothing thrashes.
        """
        ...

    def next_key_change(self, job: JobRecord, now: float) -> float | None: ...


@runtime_checkable
class SplitKey(Protocol):
    """Optional capability of a policy: its key for a *queued* job splits into a part that
    stays constant while the job is queued and a part that depends only on the tenant.

    Contract, for every queued job and context (the engine's queue index relies on it):
    ``key(job, ctx) == queued_key(job, ctx.now) + tenant_key(job.spec.tenant, ctx) +
    inner_key(job, ctx.now)``; ``queued_key`` and ``inner_key`` do not change while the job
    stays queued; ``preempt_key(job, now)`` is a prefix of ``queued_key(job, now)``. The
    inner key orders one tenant's jobs inside what the tenant key leaves equal (``default``:
    gang size and service inside a level, after the tenant's share); most policies have
    none. A policy without these methods still works: the engine then ranks the whole queue
    every step.
    """

    def queued_key(self, job: JobRecord, now: float) -> tuple[float, ...]: ...

    def tenant_key(self, tenant: str, ctx: OrderContext) -> tuple[float, ...]: ...

    def inner_key(self, job: JobRecord, now: float) -> tuple[float, ...]: ...


# A policy may also say ``coarse_ordered = True``: inside one tenant (whose tenant key is one
# value) a running job ranks by ``(-priority, *preempt_key, submit, seq)`` and a queued one
# by ``(-priority, *queued_key, *inner_key, submit, seq)``, and these two keys of a running
# and a queued job are never one a proper prefix of the other (so comparing them nested, as
# the indexes do, orders as comparing them flat). With leases, the engine then computes
# tiers from its kept indexes (``tiers``) instead of ranking every job; without the flag it
# ranks the whole queue.


@dataclass(frozen=True, slots=True)
class Fifo:
    name: str = "fifo"
    preemptive: bool = False
    queueing: Queueing = Queueing.STRICT
    needs_usage: bool = False
    coarse_ordered: ClassVar[bool] = True

    def key(self, job: JobRecord, ctx: OrderContext) -> tuple[float, ...]:
        return ()

    def queued_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return ()

    def tenant_key(self, tenant: str, ctx: OrderContext) -> tuple[float, ...]:
        return ()

    def inner_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return ()

    def preempt_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return ()

    def next_key_change(self, job: JobRecord, now: float) -> float | None:
        return None


# Level limits in GPU-seconds. Exponentially spaced (x4) from 1 GPU-hour: a 1-GPU debug run
# stays on top for an hour, a 64-GPU job for about a minute.
DEFAULT_LAS_LIMITS: tuple[float, ...] = tuple(HOUR * 4**i for i in range(8))


def _settled(attained: float) -> float:
    """Attained service nudged up by a rounding tolerance, so that at the moment
    ``next_key_change`` announced, the level has changed (3599.9999999999995 counts as 3600)."""
    return attained + 1e-9 * max(1.0, abs(attained))


@dataclass(frozen=True, slots=True)
class Las:
    """Discretised 2D least-attained-service: level = number of limits already passed."""

    limits: Sequence[float] = DEFAULT_LAS_LIMITS
    name: str = "las"
    preemptive: bool = True
    queueing: Queueing = Queueing.GREEDY
    needs_usage: bool = False
    coarse_ordered: ClassVar[bool] = True

    def level(self, job: JobRecord, now: float) -> int:
        return bisect.bisect_right(self.limits, _settled(job.attained_at(now)))

    def key(self, job: JobRecord, ctx: OrderContext) -> tuple[float, ...]:
        return (float(self.level(job, ctx.now)),)

    def queued_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return (float(self.level(job, now)),)  # a queued job's attained service is constant

    def tenant_key(self, tenant: str, ctx: OrderContext) -> tuple[float, ...]:
        return ()

    def inner_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return ()

    def preempt_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return (float(self.level(job, now)),)

    def next_key_change(self, job: JobRecord, now: float) -> float | None:
        if job.run_start is None:
            return None
        index = bisect.bisect_right(self.limits, _settled(job.attained_at(now)))
        if index >= len(self.limits):
            return None
        # From the run's start, not from ``now``: the same moment whenever it is asked.
        return job.run_start + (self.limits[index] - job.attained) / job.spec.gpus


# Level limits of ``las-gang`` (GPU-seconds): Tiresias' 3,250, then 7,200 x GPUs^0.45 (7,200
# for one GPU, 18,354 for 8, 34,249 for 32): a long job leaves the middle level later the
# wider it is. The exponent was 0.5 (a search on eight Philly inputs); 0.45 was chosen on
# the 1,000-job runs and confirmed on the 3,000-job ones (docs/scheduling.md: "Against
# Tiresias"): the widest gaps to the reference shrink, no run gains a gap above 0.1 %.
LAS_GANG_LIMITS: tuple[float, ...] = (3250.0, 7200.0)
LAS_GANG_WIDTH_EXPONENTS: tuple[float, ...] = (0.0, 0.45)  # limit i x GPUs ** exponent i

# The middle element of a ``las-gang`` preempt key: inside one level, running jobs that have
# run there at least once rank first (waiting jobs of their level do not preempt them), then
# the waiting jobs, then a running job at the step at which it enters the level.
_KEPT, _WAITING, _ENTERING = 0.0, 0.5, 1.0
# How long a running job counts as entering its new level: the step at the moment it crosses
# the limit (the engine is woken for it by ``next_key_change``), and no other.
ENTRY_S = 1e-3


@functools.cache
def _scaled(
    limits: tuple[float, ...], exponents: tuple[float, ...], gpus: int
) -> tuple[float, ...]:
    """Limit i x GPUs ** exponent i (a job's levels; asked at every rank, so kept)."""
    return tuple(limit * gpus**exponent for limit, exponent in zip(limits, exponents, strict=True))


@dataclass(frozen=True, slots=True)
class LasGang(Las):
    """LAS levels with Tiresias' discipline inside a level, and smaller gangs first.

    * Levels: ``LAS_GANG_LIMITS`` scaled by the job's width (``LAS_GANG_WIDTH_EXPONENTS``).
    * Waiting jobs of a level: fewer GPUs first (small gangs fit into the holes large ones
      leave), then the one that has run longer (closer to the end of a run it started).
    * A running job keeps its GPUs against waiting jobs of its level, except at the step at
      which it enters the level: a job demoted while running joins its new level behind the
      jobs already waiting there, which may take its GPUs (as in Tiresias' queues).
    * Victims inside a level: latest entry first (the moment the job entered the level
      during its run, else its run's start; arrival in level 0), as Tiresias preempts the
      tail of a queue. Everything is non-clairvoyant: service, width, arrival.
    """

    limits: Sequence[float] = LAS_GANG_LIMITS
    exponents: Sequence[float] = LAS_GANG_WIDTH_EXPONENTS
    name: str = "las-gang"
    # A running job's key is its preempt key, and (level, _KEPT / _ENTERING, ...) and a
    # queued job's (level, _WAITING, ...) differ by their second element at the latest.
    coarse_ordered: ClassVar[bool] = True

    def job_limits(self, job: JobRecord) -> tuple[float, ...]:
        return _scaled(tuple(self.limits), tuple(self.exponents), job.spec.gpus)

    def level(self, job: JobRecord, now: float) -> int:
        return bisect.bisect_right(self.job_limits(job), _settled(job.attained_at(now)))

    def yields_on_entry(self, job: JobRecord) -> bool:
        """Does a running job entering a level yield once to that level's waiting jobs?"""
        return True

    def entered(self, job: JobRecord, now: float) -> float | None:
        """When a running job crossed into its current level during this run, else None."""
        limits = self.job_limits(job)
        level = bisect.bisect_right(limits, _settled(job.attained_at(now)))
        if level == 0 or job.run_start is None or job.attained >= limits[level - 1]:
            return None
        return job.run_start + (limits[level - 1] - job.attained) / job.spec.gpus

    def key(self, job: JobRecord, ctx: OrderContext) -> tuple[float, ...]:
        if job.run_start is not None:
            return self.preempt_key(job, ctx.now)
        return self.queued_key(job, ctx.now)

    def queued_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        # constant while queued: a queued job's attained service does not move
        gpus = float(job.spec.gpus)
        return (float(self.level(job, now)), _WAITING, gpus, -job.attained / gpus)

    def preempt_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        level = float(self.level(job, now))
        if job.run_start is None:
            return (level, _WAITING)
        entered = self.entered(job, now)
        if entered is not None and now < entered + ENTRY_S and self.yields_on_entry(job):
            return (level, _ENTERING, entered)
        if level == 0:
            return (level, _KEPT, job.spec.submit_time)
        return (level, _KEPT, job.run_start if entered is None else entered)

    def next_key_change(self, job: JobRecord, now: float) -> float | None:
        if job.run_start is None:
            return None
        entered = self.entered(job, now)
        if entered is not None and now < entered + ENTRY_S and self.yields_on_entry(job):
            return entered + ENTRY_S  # it has met its level's waiting jobs: it keeps its GPUs
        limits = self.job_limits(job)
        index = bisect.bisect_right(limits, _settled(job.attained_at(now)))
        if index >= len(limits):
            return None
        # From the run's start, not from ``now``: the same moment whenever it is asked.
        return job.run_start + (limits[index] - job.attained) / job.spec.gpus


# Levels of a rack-scale gang under ``default`` (a job asking for segments, each in one
# NVLink domain): Tiresias' 3,250, then 7,200 and five more x4 apart, all but the first
# x sqrt(GPUs) (the square root ``las-gang`` had until issue 18; gangs keep it: a 512-GPU
# gang: 3,250, then 163 k to 167 M GPU-seconds, i.e. 6 s, then 5 min to 91 h of its run).
# From the reference mix (docs/scheduling.md, "Against Tiresias").
RACK_GANG_LIMITS: tuple[float, ...] = (3250.0, *(7200.0 * 4.0**i for i in range(6)))
RACK_GANG_WIDTH_EXPONENTS: tuple[float, ...] = (0.0, *(0.5,) * 6)


@dataclass(frozen=True, slots=True)
class LasGangRack(LasGang):
    """``las-gang`` for every job but rack-scale gangs (jobs with a ``segment``), which get
    more levels (``RACK_GANG_LIMITS``) and keep their GPUs when they enter one.

    Why: a rack-scale gang needs whole NVLink domains, so it starts only when enough of
    them are free at once. With three levels every long gang ends in the last one, where no
    gang may preempt another, and domains stay idle while gangs wait (the reference mix:
    1.9 points of utilisation lost). More levels let a gang with less service reclaim
    domains from one with more, as LAS meant; and a gang entering a level does not yield
    to the waiting jobs there (each yield is a preemption of thousands of GPUs).
    On traces without segments (every Philly VC) this is ``las-gang`` exactly.
    """

    rack_limits: Sequence[float] = RACK_GANG_LIMITS
    rack_exponents: Sequence[float] = RACK_GANG_WIDTH_EXPONENTS
    name: str = "las-gang-rack"

    def job_limits(self, job: JobRecord) -> tuple[float, ...]:
        if job.spec.topology.segment is None:
            return LasGang.job_limits(self, job)
        return _scaled(tuple(self.rack_limits), tuple(self.rack_exponents), job.spec.gpus)

    def yields_on_entry(self, job: JobRecord) -> bool:
        return job.spec.topology.segment is None


@dataclass(frozen=True, slots=True)
class FairShare:
    """Least decayed usage per leased GPU first (a tenant without a lease weighs 1 GPU)."""

    name: str = "fairshare"
    preemptive: bool = False
    queueing: Queueing = Queueing.GREEDY
    needs_usage: bool = True
    coarse_ordered: ClassVar[bool] = True  # the key is the tenant's: one value per tenant

    def key(self, job: JobRecord, ctx: OrderContext) -> tuple[float, ...]:
        return self.tenant_key(job.spec.tenant, ctx)

    def queued_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return ()

    def tenant_key(self, tenant: str, ctx: OrderContext) -> tuple[float, ...]:
        return (ctx.usage.get(tenant, 0.0) / ctx.weights.get(tenant, 1.0),)

    def inner_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return ()

    def preempt_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return ()

    def next_key_change(self, job: JobRecord, now: float) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class LasFairShare:
    """The default: LAS levels first, decayed fair share between tenants inside a level, then
    the level's own order inside a tenant.

    A queued job's key is ``(*coarse, tenant's share, *rest)``, where ``coarse`` is the
    level's preempt key (``las.preempt_key``: a prefix of ``las.queued_key``) and ``rest``
    what ``las.queued_key`` adds to it (``las-gang``: fewer GPUs first, then the one that has
    run longer). So tenants share a level by their decayed usage per leased GPU, and each
    tenant's turn goes to its job that Tiresias' discipline would pick. A running job's key
    is ``las``' key for it (a preempt key) then the share: victims inside a level go by
    ``las``' rule (``las-gang``: latest entry first), across tenants of equal entry by share.
    """

    las: Las = field(default_factory=LasGangRack)
    share: FairShare = field(default_factory=FairShare)
    name: str = "default"
    preemptive: bool = True
    queueing: Queueing = Queueing.GREEDY
    needs_usage: bool = True

    @property
    def coarse_ordered(self) -> bool:
        return bool(getattr(self.las, "coarse_ordered", False))

    def key(self, job: JobRecord, ctx: OrderContext) -> tuple[float, ...]:
        if job.run_start is not None:
            return self.las.key(job, ctx) + self.share.key(job, ctx)
        now = ctx.now
        return self.queued_key(job, now) + self.share.key(job, ctx) + self.inner_key(job, now)

    def queued_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return self.las.preempt_key(job, now)  # of a queued job: constant while queued

    def tenant_key(self, tenant: str, ctx: OrderContext) -> tuple[float, ...]:
        return self.share.tenant_key(tenant, ctx)

    def inner_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return self.las.queued_key(job, now)[len(self.las.preempt_key(job, now)) :]

    def preempt_key(self, job: JobRecord, now: float) -> tuple[float, ...]:
        return self.las.preempt_key(job, now)

    def next_key_change(self, job: JobRecord, now: float) -> float | None:
        return self.las.next_key_change(job, now)


def make_policy(name: str) -> OrderingPolicy:
    factories: dict[str, OrderingPolicy] = {
        "fifo": Fifo(),
        "easy": Fifo(name="easy", queueing=Queueing.EASY),
        "las": Las(),
        "las-gang": LasGang(),
        "fairshare": FairShare(),
        "default": LasFairShare(),
    }
    try:
        return factories[name]
    except KeyError:
        raise InvalidRequest(
            f"unknown policy {name!r}; choose one of {', '.join(factories)}", field="policy"
        ) from None


POLICY_NAMES: tuple[str, ...] = ("default", "las", "las-gang", "fairshare", "easy", "fifo")
