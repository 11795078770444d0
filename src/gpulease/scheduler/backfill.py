"""EASY backfill: a reservation for the queue head that later jobs may not delay.

The head job that cannot start gets a *shadow time*: running jobs are released in the order
of their expected ends (start + walltime; unknown walltimes never end) until the head can be
placed. The GPUs that placement needs are held: a later job may start now only if it fits
without them, or if its own walltime ends before the shadow time. With no walltimes the
shadow time is infinite and backfill only uses GPUs the head does not need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpulease.domain.models import JobSpec
from gpulease.scheduler.placement import FreeMap, Placement, WaitReason, place
from gpulease.scheduler.preemption import usable
from gpulease.scheduler.state import JobRecord


@dataclass(frozen=True, slots=True)
class Reservation:
    job_id: str
    shadow_time: float  # math.inf when some release has no known end
    held: FreeMap  # the free map minus GPUs the head needs that are free now


def expected_end(record: JobRecord) -> float:
    walltime = record.spec.walltime
    if walltime is None or record.run_start is None:
        return math.inf
    return record.run_start + max(walltime - record.run_time, 0.0)


def reserve(
    head: JobSpec,
    free: FreeMap,
    running: Iterable[JobRecord],
    schedulable: Sequence[bool],
    *,
    domain: str,
) -> Reservation | None:
    """The head's reservation, or None if it cannot be placed even when everything ends."""
    trial = free.copy()
    released: dict[int, int] = {}
    for record in sorted(running, key=lambda r: (expected_end(r), r.seq)):
        gain = usable(record.placement, schedulable)
        trial.give(gain)
        for node, count in gain:
            released[node] = released.get(node, 0) + count
        outcome = place(head, trial, domain=domain)
        if not isinstance(outcome, WaitReason):
            return Reservation(head.id, expected_end(record), _hold(free, outcome, released))
    return None


def _hold(free: FreeMap, placement: Placement, released: dict[int, int]) -> FreeMap:
    held = free.copy()
    for node, count in placement:
        from_free_now = max(0, count - released.get(node, 0))
        held.take(((node, min(from_free_now, held.node_free[node])),))
    return held


def may_backfill(
    job: JobSpec, reservation: Reservation, now: float, *, domain: str
) -> Placement | None:
    """A placement for ``job`` that does not delay the reservation, or None."""
    outcome = place(job, reservation.held, domain=domain)
    if not isinstance(outcome, WaitReason):
        return outcome
    return None


def ends_before_shadow(job: JobSpec, reservation: Reservation, now: float) -> bool:
    return job.walltime is not None and now + job.walltime <= reservation.shadow_time
