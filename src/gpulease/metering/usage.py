"""Usage records: allocation intervals cut at period boundaries and price-plan changes.

Input. An :class:`Allocation` is one GPU used by one run of a job from ``start`` to ``end``
(None while it still runs), with the capacity class the scheduler gave it:

* ``GUARANTEED``: within the tenant's own lease (``lease_id`` is that lease);
* ``BORROWED``: preemptible capacity, either another tenant's idle guaranteed capacity
  (``lender_lease_id`` / ``lender_tenant`` name the lease and its holder, who earns a
  lending credit) or unleased capacity (no lender);
* ``ON_DEMAND``: unleased capacity held by a job submitted not preemptible, at the full
  on-demand rate (``metering.sources.on_demand`` decides it from the recorded attribution).

The live service fills it from ``gpu_allocations`` rows (id, tenant, job, serial, start,
end) joined with the run's lease and the class recorded when the run started.

Output. :func:`meter` returns :class:`UsageRecord` slices of those intervals: each slice
lies inside one period of the granularity (hour, day or month in UTC) and between two
consecutive price-plan change instants, so every slice has exactly one price.

Invariants (checked by the property test):

* nothing is counted twice: two allocations of the same GPU that overlap in time are an
  :class:`OverlappingAllocations` error naming both, never summed; the same allocation given
  twice (same id, same fields, e.g. from two snapshots) counts once, while the same id with
  different fields is a :class:`ConflictingAllocation` error;
* nothing is lost: the GPU-seconds of an allocation's records sum exactly (to the
  microsecond, in Decimal) to ``end - start``; an open allocation is metered up to the
  caller's ``now``; an interval that ends before it starts (a clock step) or an open one
  that starts after ``now`` is an :class:`InvertedInterval` error;
* preemptions and requeues are closed intervals followed by new ones; a failover is the
  same run continued on another allocation: each is metered on its own, so they reconcile
  with the allocations one for one;
* a record's id is ``<allocation id>@<slice start>``: stable across runs with the same
  cuts, unique within one metering.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from gpulease.domain.errors import InvalidRequest
from gpulease.metering.periods import Granularity, cut_points, micros_between, utc


class CapacityClass(StrEnum):
    GUARANTEED = "guaranteed"
    BORROWED = "borrowed"
    ON_DEMAND = "on_demand"


class MeteringError(InvalidRequest):
    code = "metering_error"


class OverlappingAllocations(MeteringError):
    """Two allocations hold one GPU at the same instant: a recording fault to fix."""

    code = "overlapping_allocations"


class ConflictingAllocation(MeteringError):
    code = "conflicting_allocation"


class InvertedInterval(MeteringError):
    code = "inverted_interval"


@dataclass(frozen=True, slots=True)
class Allocation:
    """One GPU held by one run of a job over ``[start, end)``; ``end`` None: still held."""

    id: str
    tenant: str
    job_id: str
    gpu_serial: str
    start: datetime
    end: datetime | None
    capacity: CapacityClass
    lease_id: str | None = None
    lender_lease_id: str | None = None
    lender_tenant: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start, "allocation.start"))
        if self.end is not None:
            object.__setattr__(self, "end", utc(self.end, "allocation.end"))
        if self.capacity is CapacityClass.GUARANTEED and self.lease_id is None:
            raise MeteringError(f"guaranteed allocation {self.id} names no lease", id=self.id)
        if (self.lender_lease_id is None) != (self.lender_tenant is None):
            raise MeteringError(f"allocation {self.id}: lender lease and tenant go together")
        if self.lender_lease_id is not None and self.capacity is not CapacityClass.BORROWED:
            raise MeteringError(f"allocation {self.id}: only borrowed capacity has a lender")
        if self.lender_tenant is not None and self.lender_tenant == self.tenant:
            raise MeteringError(f"allocation {self.id}: a tenant does not borrow from itself")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """A slice of one allocation inside one period and one price: the unit of rating."""

    id: str
    allocation_id: str
    tenant: str
    job_id: str
    gpu_serial: str
    start: datetime
    end: datetime
    capacity: CapacityClass
    lease_id: str | None
    lender_lease_id: str | None
    lender_tenant: str | None
    open: bool  # the allocation was still running: ``end`` is the caller's ``now``

    @property
    def micros(self) -> int:
        return micros_between(self.start, self.end)

    @property
    def gpu_seconds(self) -> Decimal:
        """Exact GPU-seconds (one GPU per record), to the microsecond."""
        return Decimal(self.micros).scaleb(-6)


def _unique(allocations: Iterable[Allocation]) -> list[Allocation]:
    by_id: dict[str, Allocation] = {}
    for a in allocations:
        seen = by_id.setdefault(a.id, a)
        if seen != a:
            raise ConflictingAllocation(
                f"allocation {a.id} given twice with different fields", id=a.id
            )
    return sorted(by_id.values(), key=lambda a: (a.gpu_serial, a.start, a.id))


def _check_overlaps(allocations: Sequence[Allocation], ends: dict[str, datetime]) -> None:
    """Allocations are sorted by (serial, start): an overlap is between neighbours'
    running maximum end, so one pass finds the first one. An empty allocation (it ends
    where it starts: started and stopped at one instant) holds the GPU for no time and
    overlaps nothing, whatever its place among those starting at the same instant."""
    prev: Allocation | None = None
    prev_end: datetime | None = None
    for a in allocations:
        end = ends[a.id]
        if end == a.start:
            continue
        if prev is not None and prev_end is not None and prev.gpu_serial == a.gpu_serial:
            if a.start < prev_end:
                raise OverlappingAllocations(
                    f"GPU {a.gpu_serial} is held by allocations {prev.id} and {a.id} at "
                    f"{a.start.isoformat()}",
                    gpu_serial=a.gpu_serial,
                    allocations=[prev.id, a.id],
                )
            if end > prev_end:
                prev, prev_end = a, end
        else:
            prev, prev_end = a, end


def meter(
    allocations: Iterable[Allocation],
    now: datetime,
    granularity: Granularity = Granularity.HOUR,
    price_changes: Iterable[datetime] = (),
) -> list[UsageRecord]:
    """Usage records of ``allocations`` up to ``now``, cut at every ``granularity`` boundary
    and every instant in ``price_changes``; sorted by (serial, start)."""
    now = utc(now, "now")
    changes = sorted({utc(t, "price change") for t in price_changes})
    unique = _unique(allocations)
    ends: dict[str, datetime] = {}
    for a in unique:
        end = a.end if a.end is not None else now
        if end < a.start:
            raise InvertedInterval(
                f"allocation {a.id} ends at {end.isoformat()} before it starts at "
                f"{a.start.isoformat()}" + ("" if a.end is not None else " (open, at now)"),
                id=a.id,
            )
        ends[a.id] = end
    _check_overlaps(unique, ends)
    records: list[UsageRecord] = []
    for a in unique:
        end = ends[a.id]
        inside = changes[bisect.bisect_right(changes, a.start) : bisect.bisect_left(changes, end)]
        cuts = list(heapq.merge(cut_points(a.start, end, granularity), inside))
        bounds = [a.start, *sorted(set(cuts)), end]
        for lo, hi in itertools.pairwise(bounds):
            if lo == hi:
                continue
            records.append(
                UsageRecord(
                    id=f"{a.id}@{lo.isoformat()}",
                    allocation_id=a.id,
                    tenant=a.tenant,
                    job_id=a.job_id,
                    gpu_serial=a.gpu_serial,
                    start=lo,
                    end=hi,
                    capacity=a.capacity,
                    lease_id=a.lease_id,
                    lender_lease_id=a.lender_lease_id,
                    lender_tenant=a.lender_tenant,
                    open=a.end is None,
                )
            )
    return records


def allocated_micros(allocations: Iterable[Allocation], now: datetime) -> int:
    """Allocated GPU-microseconds straight from the intervals (the reconciliation side)."""
    now = utc(now, "now")
    return sum(
        micros_between(a.start, a.end if a.end is not None else now) for a in _unique(allocations)
    )
