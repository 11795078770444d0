"""Metering: usage from the allocation rows, rated per tenant and period.

Design (load, call the pure core, return typed values). :func:`load_period` reads the
allocation rows that overlap a period (with the attribution the scheduler wrote at each
start), the leases they name, the plans of the tenants involved, and turns them into usage
records with the pure cores: ``metering.sources.without_clock_steps`` (a clock stepped
back), ``split_at_leases`` (a lease that ended under a running job), ``on_demand`` (a job
submitted not preemptible on unleased capacity), then ``metering.usage.meter`` on the
allocations clipped to the period, cut at the period's bounds, calendar months and every
plan change. Open allocations are metered up to ``now``. :func:`rate_tenant` adds the
tenant's leases and the SLA evidence (``services.sla_evidence``: guarantee waits, degraded
capacity from the node state history) and calls ``metering.rating.rate_period``; invoices
are issued from it in :mod:`gpulease.services.invoicing`.

Paging. The allocation rows are read by key (``id``), :data:`PAGE` at a time, columns only,
each page turned into usage records before the next is read; the clock-step trim carries
each GPU's high mark from page to page (one entry per GPU). For a set of tenants, the
stream also holds the other tenants' rows on the same GPUs (the trim needs them; they are
not metered). :func:`period_records` yields the records a page at a time and keeps none:
:func:`usage_by_tenant` sums them as they come and :func:`usage_records` keeps the first
``offset + limit`` in order; :func:`load_period` keeps them all, since an invoice cites
every record.

What a principal sees: operator staff every tenant's usage; a tenant its own usage only,
and of a borrowed record not whose lease it ran on (the lender is another tenant: texts a
tenant reads name no other tenant). The lease holder sees what it lent as the lending credit
on its invoice.

Bounds: a period is 1 second to 366 days, inside years 2000..2999; a usage page is 1..1000
records. Invariants: the records of a period reconcile with the allocation rows clipped to
it (``metering.usage``'s property), and each is cut at the period's bounds, so a rating of
the period sees each record whole.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest, NotFound
from gpulease.domain.states import LeaseState
from gpulease.metering.periods import Granularity, Period, utc
from gpulease.metering.plans import PlanSchedule
from gpulease.metering.rating import (
    LeaseTerm,
    Rated,
    SlaEvidence,
    SlaRule,
    rate_period,
)
from gpulease.metering.sources import (
    RecordedAllocation,
    on_demand,
    split_at_leases,
    without_clock_steps,
)
from gpulease.metering.usage import Allocation, CapacityClass, UsageRecord, meter
from gpulease.persistence import metering_reads as reads
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Lease, Tenant
from gpulease.services import price_plans, sla_evidence
from gpulease.services.context import ServiceContext

MAX_PERIOD = timedelta(days=366)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)
MAX_PAGE = 1000
PAGE = 5000  # allocation rows read at a time (by key)
CHUNK = 500  # ids in one IN list
# Leases billed for their window: every state that reached approval (a reservation is billed
# whether used or not); requests, refusals, withdrawals and lapsed holds are not.
BILLED_LEASE_STATES = frozenset(
    {
        LeaseState.APPROVED.value,
        LeaseState.SCHEDULED.value,
        LeaseState.ACTIVE.value,
        LeaseState.SUSPENDED.value,
        LeaseState.ENDED.value,
    }
)


def period_of(start: datetime, end: datetime) -> Period:
    """A bounded billing period ``[start, end)`` (module doc), or InvalidRequest."""
    period = Period(utc(start, "start"), utc(end, "end"))
    if period.end - period.start > MAX_PERIOD:
        raise InvalidRequest("a period is at most 366 days", field="end")
    if period.start < EARLIEST or period.end > LATEST:
        raise InvalidRequest("a period lies between the years 2000 and 2999", field="start")
    return period


def month_of(t: datetime) -> Period:
    """The calendar month (UTC) that holds ``t``: the default period."""
    return Period.of(utc(t), Granularity.MONTH)


def requested_period(now: datetime, start: datetime | None, end: datetime | None) -> Period:
    """The period a request names: ``[start, end)``; a missing bound is taken from the
    month holding the other (or ``now``): neither given, this month (bounded: period_of)."""
    if start is None and end is None:
        return month_of(now)
    month = month_of(start or end or now)
    return period_of(start or month.start, end or month.end)


def named_month(text: str, field: str = "month") -> Period:
    """The calendar month ``YYYY-MM`` names, bounded like any period (InvalidRequest)."""
    try:
        first = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"{field} is a month as YYYY-MM", field=field) from None
    month = month_of(first)
    try:
        return period_of(month.start, month.end)
    except InvalidRequest as error:
        raise InvalidRequest(error.message, field=field) from None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One usage record as a principal may read it (a tenant: no lender named)."""

    id: str
    tenant: str
    job_id: str
    gpu_serial: str
    start: datetime
    end: datetime
    gpu_seconds: Decimal
    capacity: str
    lease_id: str | None
    lender_lease_id: str | None
    lender_tenant: str | None
    open: bool


@dataclass(frozen=True, slots=True)
class TenantUsage:
    """A tenant's GPU-seconds in a period by capacity class, and what its leases lent."""

    tenant: str
    guaranteed: Decimal
    borrowed: Decimal
    on_demand: Decimal
    lent: Decimal  # others' borrowed work on its leases' idle GPUs

    @property
    def total(self) -> Decimal:
        return self.guaranteed + self.borrowed + self.on_demand


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    """Everything one rating needs of a period, loaded in one read transaction."""

    period: Period
    now: datetime
    records: list[UsageRecord]
    plans: dict[str, PlanSchedule]  # tenant -> its plan
    rules: dict[str, SlaRule]  # tenant -> the SLA rule in force at the period's start
    leases: list[LeaseTerm]
    evidence: SlaEvidence


def _recorded(row: Any) -> RecordedAllocation:
    """An allocation row (``metering_reads.ALLOCATION_COLUMNS``) as recorded."""
    return RecordedAllocation(
        id=f"alloc-{row.id}",
        tenant=row.tenant_id,
        job_id=row.job_id,
        gpu_serial=row.gpu_serial,
        start=row.start,
        end=row.end,
        capacity=None if row.capacity is None else CapacityClass(row.capacity),
        lease_id=row.lease_id,
        lender_lease_id=row.lender_lease_id,
        lender_tenant=row.lender_tenant,
    )


def _clip(a: Allocation, period: Period, now: datetime) -> Allocation | None:
    """``a`` inside ``period``; an open one stays open while ``now`` is inside the period.
    An open allocation that starts after ``now`` (the clock stepped back) counts nothing
    until ``now`` passes its start."""
    start = max(a.start, period.start)
    if a.end is not None:
        end: datetime | None = min(a.end, period.end)
    else:
        end = period.end if now >= period.end else None
    if (end is not None and end <= start) or (end is None and start > now):
        return None
    return replace(a, start=start, end=end)


def _plans(
    tx: Tx, tenants: Sequence[str], period: Period
) -> tuple[dict[str, PlanSchedule], dict[str, SlaRule]]:
    assigned = price_plans.assigned_plans(tx, list(tenants))
    loaded = price_plans.schedules(tx, sorted(set(assigned.values())))
    plans: dict[str, PlanSchedule] = {}
    rules: dict[str, SlaRule] = {}
    for tenant, plan_id in assigned.items():
        found = loaded.get(plan_id)
        if found is None:
            continue  # rating this tenant says it has no plan
        schedule, sla = found
        plans[tenant] = schedule
        at = max(period.start, schedule.starts[0])
        rules[tenant] = sla[schedule.versions.index(schedule.at(at))]
    return plans, rules


@dataclass(slots=True)
class _Reader:
    """Reads a period's allocation rows by key, a page at a time, into usage records.

    ``wanted`` None: every row of the period. Else the rows of those tenants and the rows
    they lent, and, for the clock-step trim, every other row of the period on the same GPUs
    (read in the same stream, in the order written, and not metered)."""

    tx: Tx
    period: Period
    now: datetime
    wanted: list[str] | None
    windows: dict[str, tuple[datetime, datetime]]
    changes: list[datetime]
    page: int
    high: dict[str, datetime] = field(default_factory=dict)  # the trim's state per GPU

    def tenants(self) -> set[str]:
        """The tenants whose rows are metered (their plans are needed)."""
        return reads.allocation_tenants(self.tx, self.period.start, self.period.end, self.wanted)

    def pages(self) -> Iterator[list[UsageRecord]]:
        """The period's usage records, one page of rows at a time (module doc)."""
        scope = reads.allocation_scope(self.period.start, self.period.end, self.wanted)
        wanted = None if self.wanted is None else set(self.wanted)
        after = 0
        while True:
            rows = reads.allocation_page(self.tx, scope, after, self.page)
            if not rows:
                return
            trimmed = without_clock_steps([_recorded(r) for r in rows], self.high)
            mine = [
                x
                for x, r in zip(trimmed, rows, strict=True)
                if wanted is None or r.tenant_id in wanted or r.lender_tenant in wanted
            ]
            self._windows_of(mine)
            firm = self._firm({x.job_id for x in mine})
            allocations = []
            for a in on_demand(split_at_leases(mine, self.windows, self.now), firm):
                clipped = _clip(a, self.period, self.now)
                if clipped is not None:
                    allocations.append(clipped)
            start = self.period.start
            yield meter(allocations, max(self.now, start), Granularity.MONTH, self.changes)
            if len(rows) < self.page:
                return
            after = rows[-1].id

    def _windows_of(self, recorded: Sequence[RecordedAllocation]) -> None:
        """Add the windows of leases the rows name that are not billed in the period (e.g.
        ended before it)."""
        named = {x.lease_id for x in recorded} | {x.lender_lease_id for x in recorded}
        missing = {x for x in named if x is not None and x not in self.windows}
        if missing:
            self.windows.update(reads.lease_windows(self.tx, missing))

    def _firm(self, job_ids: set[str]) -> set[str]:
        """Those of ``job_ids`` submitted not preemptible."""
        return reads.not_preemptible(self.tx, job_ids)


def _open_reader(
    tx: Tx, period: Period, now: datetime, wanted: list[str] | None, page: int | None
) -> tuple[_Reader, list[Lease], dict[str, PlanSchedule], dict[str, SlaRule]]:
    """The reader of a period's rows (``page`` of them at a time, None: :data:`PAGE`), with
    the billed leases and the plans it needs."""
    page = PAGE if page is None else page
    if page < 1:
        raise InvalidRequest("a page is at least one row", field="page")
    leases = tx.all(
        tx.select(Lease).where(
            Lease.state.in_(sorted(BILLED_LEASE_STATES)),
            Lease.start < period.end,
            Lease.end > period.start,
        )
    )
    reader = _Reader(tx, period, now, wanted, {x.id: (x.start, x.end) for x in leases}, [], page)
    involved = reader.tenants() | {x.tenant_id for x in leases} | set(wanted or ())
    plans, rules = _plans(tx, sorted(involved), period)
    changes = {period.start, period.end}
    for schedule in plans.values():
        changes.update(schedule.change_times())
    reader.changes = sorted(changes)
    return reader, leases, plans, rules


def load_period(
    ctx: ServiceContext, period: Period, tenants: Iterable[str] | None, *, page: int | None = None
) -> PeriodUsage:
    """Usage records of ``period`` for ``tenants`` (None: every tenant) and of others' work
    on their leases, with what rating them needs (module doc). The rows are read by key,
    ``page`` at a time; the records are kept (an invoice cites each)."""
    now = ctx.now()
    wanted = None if tenants is None else sorted(set(tenants))
    records: list[UsageRecord] = []
    with ctx.db.transaction(write=False) as tx:
        reader, leases, plans, rules = _open_reader(tx, period, now, wanted, page)
        for batch in reader.pages():
            records += batch
        evidence = SlaEvidence(
            waits=tuple(
                sla_evidence.read_waits(tx, period, wanted, BILLED_LEASE_STATES, reader.page)
            ),
            degradations=tuple(
                sla_evidence.read_degradations(tx, period, wanted, BILLED_LEASE_STATES, reader.page)
            ),
        )
    terms = [
        LeaseTerm(x.id, x.tenant_id, x.gpus, x.start, x.end, rate=x.rate, currency=x.currency)
        for x in leases
    ]
    return PeriodUsage(period, now, records, plans, rules, terms, evidence)


def period_records(
    ctx: ServiceContext, period: Period, tenants: Iterable[str] | None, *, page: int | None = None
) -> Iterator[list[UsageRecord]]:
    """The usage records of :func:`load_period`, a page of rows at a time, none kept: what
    totals and listings read (bounded memory)."""
    wanted = None if tenants is None else sorted(set(tenants))
    with ctx.db.transaction(write=False) as tx:
        reader, _, _, _ = _open_reader(tx, period, ctx.now(), wanted, page)
        yield from reader.pages()


def rate_tenant(usage: PeriodUsage, tenant: str) -> Rated:
    """``tenant``'s period priced (``metering.rating.rate_period``)."""
    return rate_period(
        tenant,
        usage.period,
        usage.records,
        usage.leases,
        usage.plans,
        usage.rules.get(tenant),
        usage.evidence,
    )


def _visible(principal: Principal, tenant: str | None) -> list[str] | None:
    """The tenants a usage read covers: a tenant user's own; staff the one named or all."""
    scope_all = principal.is_operator
    principal.scope(Action.USAGE_READ)
    if not scope_all:
        return [principal.acting_tenant(tenant)]
    return None if tenant is None else [tenant]


def _check_tenant(ctx: ServiceContext, principal: Principal, tenant: str | None) -> None:
    if tenant is None:
        return
    with ctx.db.transaction(write=False) as tx:
        row = tx.get(Tenant, tenant)
    if row is None:
        raise NotFound(f"no tenant {tenant!r}", tenant_id=tenant)
    principal.authorize(Action.USAGE_READ, tenant_id=tenant, record_id=tenant, kind="tenant")


def usage_records(
    ctx: ServiceContext,
    principal: Principal,
    period: Period,
    *,
    tenant: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[UsageRow], int]:
    """A page of the period's usage records the principal may read, sorted by (tenant,
    GPU, start), and how many there are in all."""
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= 10_000_000:
        raise InvalidRequest(f"limit is 1..{MAX_PAGE}, offset 0..10000000", field="limit")
    _check_tenant(ctx, principal, tenant)
    tenants = _visible(principal, tenant)
    wanted = None if tenants is None else set(tenants)
    count = 0

    def own() -> Iterator[UsageRecord]:
        nonlocal count
        for batch in period_records(ctx, period, tenants):
            for r in batch:
                if wanted is None or r.tenant in wanted:
                    count += 1
                    yield r

    # the first offset + limit in order, never the whole period (bounded by the page asked)
    first = heapq.nsmallest(
        offset + limit, own(), key=lambda r: (r.tenant, r.gpu_serial, r.start, r.id)
    )
    page = first[offset:]
    hide = not principal.is_operator
    rows = [
        UsageRow(
            id=r.id,
            tenant=r.tenant,
            job_id=r.job_id,
            gpu_serial=r.gpu_serial,
            start=r.start,
            end=r.end,
            gpu_seconds=r.gpu_seconds,
            capacity=r.capacity.value,
            lease_id=r.lease_id,
            lender_lease_id=None if hide else r.lender_lease_id,
            lender_tenant=None if hide else r.lender_tenant,
            open=r.open,
        )
        for r in page
    ]
    return rows, count


def usage_by_tenant(
    ctx: ServiceContext, principal: Principal, period: Period, *, tenant: str | None = None
) -> list[TenantUsage]:
    """Each visible tenant's GPU-seconds in ``period`` by class, and what its leases lent
    (operator staff: every tenant with usage or lending; a tenant: itself)."""
    _check_tenant(ctx, principal, tenant)
    tenants = _visible(principal, tenant)
    zero = Decimal(0)
    sums: dict[str, dict[str, Decimal]] = {}

    def add(who: str, kind: str, secs: Decimal) -> None:
        sums.setdefault(who, {}).setdefault(kind, zero)
        sums[who][kind] += secs

    for batch in period_records(ctx, period, tenants):  # summed a page at a time
        for r in batch:
            if tenants is None or r.tenant in tenants:
                add(r.tenant, r.capacity.value, r.gpu_seconds)
            if r.lender_tenant is not None and (tenants is None or r.lender_tenant in tenants):
                add(r.lender_tenant, "lent", r.gpu_seconds)
    if tenants is not None:
        for t in tenants:
            sums.setdefault(t, {})
    return [
        TenantUsage(
            tenant=t,
            guaranteed=k.get(CapacityClass.GUARANTEED.value, zero),
            borrowed=k.get(CapacityClass.BORROWED.value, zero),
            on_demand=k.get(CapacityClass.ON_DEMAND.value, zero),
            lent=k.get("lent", zero),
        )
        for t, k in sorted(sums.items())
    ]
