"""Allocations as recorded, turned into metering :class:`~.usage.Allocation` s.

Design. The scheduler attributes each run's GPUs when the run starts (``scheduler.capacity``)
and the attribution is written once, with the allocation rows. A lease may end while the run
goes on (the scheduler then ranks the job as borrowed, and may reclaim it): the part of a
guaranteed allocation outside its lease's window is unleased borrowed capacity, and the part
of a lent allocation outside the lender lease's window has no lender. :func:`split_at_leases`
cuts there, so the rating never sees guaranteed usage outside a lease (``UncoveredUsage``)
nor pays a lending credit for a lease that was over.

A row written before metering (no capacity recorded) is unleased borrowed capacity: the
conservative reading for the tenant who ran it is not available without its lease, and such
rows are only on installations upgraded with running history.

On-demand. Capacity beyond a tenant's guarantee is borrowed; a job submitted not
preemptible asks not to be preempted for other borrowers' priority (the scheduler's
``preemption.may_preempt``). :func:`on_demand` rates such a job's GPUs on **unleased**
capacity (no lease lent them: the site's GPUs beyond every guarantee, or what a lease that
ended leaves) as on-demand, at the plan's full on-demand rate; its GPUs on another
tenant's idle lease stay borrowed (the holder reclaims them), and so does a preemptible
job's. Applied after :func:`split_at_leases`, so the part of a run after its lease ended
is on-demand too when the job is not preemptible.

Clock steps. Rows are written with the writer's clock: a clock stepped back can close a row
before it opened, or open a row on a GPU inside the interval of the row before it.
:func:`without_clock_steps` takes each GPU's rows in the order they were written and starts
each no earlier than where the ones before it ended (an inverted row counts nothing), so no
GPU-second is counted twice, whatever the clock did; with a clock that only moves forward it
changes nothing.

Invariants: the parts of one recorded allocation tile ``[start, end)`` exactly (nothing lost
or repeated); the first part keeps the recorded id, a later part's id is
``<id>~<its start>``, so ids stay unique and stable.
"""

from __future__ import annotations

import itertools
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from gpulease.metering.periods import utc
from gpulease.metering.usage import Allocation, CapacityClass


@dataclass(frozen=True, slots=True)
class RecordedAllocation:
    """One allocation row with the attribution written at its start."""

    id: str
    tenant: str
    job_id: str
    gpu_serial: str
    start: datetime
    end: datetime | None
    capacity: CapacityClass | None
    lease_id: str | None = None
    lender_lease_id: str | None = None
    lender_tenant: str | None = None


Window = tuple[datetime, datetime]


def _parts(
    start: datetime, end: datetime | None, window: Window | None, now: datetime | None
) -> list[tuple[datetime, datetime | None, bool]]:
    """``[start, end)`` cut at ``window``'s bounds: (from, to, inside the window). A running
    allocation (``end`` None) is cut only at bounds ``now`` has reached: its part inside the
    lease stays open while the lease lasts, never closed at the lease's future end."""
    if window is None:
        return [(start, end, False)]
    lo, hi = utc(window[0]), utc(window[1])
    reached = None if end is not None or now is None else utc(now)
    cuts = [
        t
        for t in (lo, hi)
        if start < t and (end is None or t < end) and (reached is None or t <= reached)
    ]
    bounds: list[datetime | None] = [start, *cuts, end]
    out = []
    for a, b in itertools.pairwise(bounds):
        assert a is not None
        out.append((a, b, lo <= a < hi))
    return out


def without_clock_steps(
    written: Sequence[RecordedAllocation], high: dict[str, datetime] | None = None
) -> list[RecordedAllocation]:
    """``written`` (in the order the rows were written) with each GPU's intervals made
    disjoint and in order (module doc): same ids, same order. ``high``: GPU -> where its
    rows so far end (open: forever), carried from one page of rows to the next (updated)."""
    if high is None:
        high = {}
    out: list[RecordedAllocation] = []
    for r in written:
        start, end = utc(r.start), None if r.end is None else utc(r.end)
        mark = high.get(r.gpu_serial)
        if mark is not None and start < mark:
            start = mark
        if end is not None and end < start:
            end = start  # closed before it opened (or before the rows before it ended)
        high[r.gpu_serial] = end if end is not None else datetime.max.replace(tzinfo=UTC)
        out.append(r if (start, end) == (r.start, r.end) else replace(r, start=start, end=end))
    return out


def split_at_leases(
    recorded: Iterable[RecordedAllocation],
    windows: Mapping[str, Window],
    now: datetime | None = None,
) -> list[Allocation]:
    """Metering allocations of ``recorded``, cut where the lease each names ends or begins
    (``windows``: lease id -> its ``[start, end)``; a lease not given counts as outside).
    ``now``: a running allocation is cut only at bounds already reached (None: every
    bound, for a history read after the fact)."""
    out: list[Allocation] = []
    for r in recorded:
        start = utc(r.start)
        end = None if r.end is None else utc(r.end)
        if end is not None and end < start:  # inverted: let ``meter`` name it
            out.append(_allocation(r, r.id, start, end, CapacityClass.BORROWED, None, None))
            continue
        if r.capacity is CapacityClass.GUARANTEED and r.lease_id is not None:
            lease = r.lease_id
        elif r.capacity is CapacityClass.BORROWED and r.lender_lease_id is not None:
            lease = r.lender_lease_id
        else:
            cap = r.capacity or CapacityClass.BORROWED
            if cap is CapacityClass.GUARANTEED:  # names no lease: not covered by one
                cap = CapacityClass.BORROWED
            out.append(_allocation(r, r.id, start, end, cap, None, None))
            continue
        for a, b, inside in _parts(start, end, windows.get(lease), now):
            ident = r.id if a == start else f"{r.id}~{a.isoformat()}"
            if not inside:
                out.append(_allocation(r, ident, a, b, CapacityClass.BORROWED, None, None))
            elif r.capacity is CapacityClass.GUARANTEED:
                out.append(_allocation(r, ident, a, b, CapacityClass.GUARANTEED, lease, None))
            else:
                out.append(_allocation(r, ident, a, b, CapacityClass.BORROWED, None, lease))
    return out


def on_demand(allocations: Iterable[Allocation], firm_jobs: Container[str]) -> list[Allocation]:
    """``allocations`` with the borrowed ones on unleased capacity (no lender) of a job in
    ``firm_jobs`` (submitted not preemptible) rated as on-demand (module doc)."""
    return [
        replace(a, capacity=CapacityClass.ON_DEMAND)
        if a.capacity is CapacityClass.BORROWED
        and a.lender_lease_id is None
        and a.job_id in firm_jobs
        else a
        for a in allocations
    ]


def _allocation(
    r: RecordedAllocation,
    ident: str,
    start: datetime,
    end: datetime | None,
    capacity: CapacityClass,
    lease_id: str | None,
    lender_lease_id: str | None,
) -> Allocation:
    return Allocation(
        id=ident,
        tenant=r.tenant,
        job_id=r.job_id,
        gpu_serial=r.gpu_serial,
        start=start,
        end=end,
        capacity=capacity,
        lease_id=lease_id,
        lender_lease_id=lender_lease_id,
        lender_tenant=r.lender_tenant if lender_lease_id is not None else None,
    )
