"""Leases as quotas: guarantees, borrowing and the tiers reclaim works on.

Design. At any instant a tenant's guarantee is the sum of its active leases' GPUs (the lease
calendar, in ``leasing``, refuses to sell more than the site holds, so guarantees never
exceed capacity). Each step the engine walks every tenant's jobs (queued and running) in
policy order and marks the first ones whose GPUs fit within the guarantee as GUARANTEED; the
rest are BORROWED. Guaranteed jobs rank before every borrowed job, and a guaranteed job may
preempt any borrowed job (reclaim), whatever its ``preemptible`` flag: borrowing is only ever
lent. A tenant without a lease only runs on borrowed capacity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import TypeVar

from gpulease.domain.models import LeaseGuarantee


class Tier(IntEnum):
    GUARANTEED = 0
    BORROWED = 1


def guarantees_at(leases: Iterable[LeaseGuarantee], now: float) -> dict[str, int]:
    """GPUs guaranteed to each tenant at ``now``."""
    totals: dict[str, int] = {}
    for lease in leases:
        if lease.active_at(now):
            totals[lease.tenant] = totals.get(lease.tenant, 0) + lease.gpus
    return totals


def next_guarantee_change(leases: Iterable[LeaseGuarantee], now: float) -> float | None:
    """The next lease start or end after ``now`` (a moment the tiers may change)."""
    times = [t for lease in leases for t in (lease.start, lease.end) if t > now]
    return min(times, default=None)


J = TypeVar("J")


def classify(
    jobs_in_order: Sequence[J],
    guarantees: dict[str, int],
    *,
    tenant_of: Callable[[J], str],
    gpus_of: Callable[[J], int],
) -> list[Tier]:
    """Tier of each job: first-fit of the tenant's jobs, in order, into its guarantee."""
    left = dict(guarantees)
    tiers: list[Tier] = []
    for job in jobs_in_order:
        tenant = tenant_of(job)
        room = left.get(tenant, 0)
        gpus = gpus_of(job)
        if gpus <= room:
            left[tenant] = room - gpus
            tiers.append(Tier.GUARANTEED)
        else:
            tiers.append(Tier.BORROWED)
    return tiers
