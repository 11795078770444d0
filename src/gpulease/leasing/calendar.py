"""The capacity calendar: a lease is admitted only if the site never oversells.

Design. A site has ``total`` GPUs. Over time some are out of service (maintenance windows of
nodes) and some are held by leases (every lease in a capacity-holding state). A new lease of
``gpus`` over ``[start, end)`` is admitted iff at *every* instant of its window

    held(t) + out_of_service(t) + gpus <= total.

Both functions are step functions that change only at interval ends, so checking each
breakpoint inside the window (plus ``start``) is exact. Intervals are half-open: a lease
ending at ``t`` and one starting at ``t`` do not overlap. Pure: times are whatever the caller
uses consistently (aware datetimes in the service).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gpulease.domain.errors import InsufficientCapacity, InvalidRequest


@dataclass(frozen=True, slots=True)
class Hold:
    """``gpus`` GPUs unavailable over ``[start, end)``: a lease or a maintenance window."""

    start: datetime
    end: datetime
    gpus: int
    what: str = ""


@dataclass(frozen=True, slots=True)
class Availability:
    free_min: int  # fewest free GPUs at any instant of the window
    at: datetime  # the first instant where that minimum occurs
    leased_peak: int
    maintenance_peak: int


def availability(
    total: int, start: datetime, end: datetime, holds: Iterable[Hold], maintenance: Iterable[Hold]
) -> Availability:
    """The fewest GPUs free at any instant of ``[start, end)`` given the holds."""
    if end <= start:
        raise InvalidRequest("end must be after start", field="end")
    leases = [h for h in holds if h.start < end and start < h.end]
    windows = [h for h in maintenance if h.start < end and start < h.end]
    points = sorted({start} | {h.start for h in leases + windows if h.start > start})
    best: Availability | None = None
    for t in points:
        leased = sum(h.gpus for h in leases if h.start <= t < h.end)
        down = sum(h.gpus for h in windows if h.start <= t < h.end)
        free = total - leased - down
        if best is None or free < best.free_min:
            best = Availability(free, t, leased, down)
    assert best is not None
    return best


def admit(
    total: int,
    gpus: int,
    start: datetime,
    end: datetime,
    holds: Iterable[Hold],
    maintenance: Iterable[Hold] = (),
) -> Availability:
    """Return the window's availability, or raise InsufficientCapacity saying when and by how
    much the site would be oversold."""
    if gpus < 1:
        raise InvalidRequest("a lease needs at least 1 GPU", field="gpus")
    if gpus > total:
        raise InsufficientCapacity(
            f"the site has {total:,} GPUs in all; the lease asks {gpus:,}",
            requested=gpus,
            total=total,
        )
    found = availability(total, start, end, holds, maintenance)
    if found.free_min < gpus:
        raise InsufficientCapacity(
            f"at {found.at.isoformat()} only {found.free_min:,} of {total:,} GPUs are free "
            f"({found.leased_peak:,} leased, {found.maintenance_peak:,} in maintenance); "
            f"the lease asks {gpus:,}",
            requested=gpus,
            free=found.free_min,
            at=found.at.isoformat(),
        )
    return found


def free_steps(
    total: int, start: datetime, end: datetime, holds: Iterable[Hold], maintenance: Iterable[Hold]
) -> list[tuple[datetime, int]]:
    """The free GPUs over ``[start, end)`` as a step function: ``(t, free)`` at ``start`` and
    at every instant inside the window where the number changes (the headroom a calendar
    draws). ``free`` may be negative only if the holds already oversell the site."""
    if end <= start:
        raise InvalidRequest("end must be after start", field="end")
    leases = [h for h in holds if h.start < end and start < h.end]
    windows = [h for h in maintenance if h.start < end and start < h.end]
    edges = {start} | {t for h in leases + windows for t in (h.start, h.end) if start < t < end}
    steps: list[tuple[datetime, int]] = []
    for t in sorted(edges):
        taken = sum(h.gpus for h in leases + windows if h.start <= t < h.end)
        free = total - taken
        if not steps or steps[-1][1] != free:
            steps.append((t, free))
    return steps
