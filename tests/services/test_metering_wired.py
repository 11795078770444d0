"""Metering wired to the live system: the scheduler's starts record whose capacity each GPU
is, usage is read back from the allocation rows, rated, invoiced and credited (SQLite and
PostgreSQL).

The literal example (the demo's default plan: reserved = the lease's quoted USD 3.50 per
GPU-hour, on-demand 5.25, borrowed 60% off = 2.10, lenders 50% of it): the bank runs 4 GPUs
within its lease for 1h30 and the lease-less tenant 8 borrowed GPUs for 30 minutes, from
09:00 on 2 March 2026; in April the operator issues March's invoices.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, InvalidRequest, NotFound
from gpulease.metering.periods import Period
from gpulease.metering.rating import LineKind
from gpulease.metering.render import invoice_dict, to_csv, to_html
from gpulease.persistence.tables import AuditRecord, GpuAllocation, Lease
from gpulease.services import invoicing, jobs, metering, price_plans
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from live_support import kept_and_rebuilt

PURPOSE = "financial AI: credit risk models"
MARCH = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def _run(ctx: ServiceContext, clock: ManualClock, scheduler: LiveScheduler,
         bank: Principal, outsider: Principal) -> tuple[str, str]:  # fmt: skip
    own = jobs.submit(ctx, bank, jobs.JobSubmission(4, PURPOSE, command="run", duration_s=5400))
    lent = jobs.submit(
        ctx, outsider, jobs.JobSubmission(8, "financial AI", command="run", duration_s=1800)
    )
    scheduler.tick()
    for _ in range(2):
        clock.advance(45 * 60)
        scheduler.tick()
    return own.id, lent.id


def test_starts_record_their_capacity_and_the_rebuilt_state_keeps_it(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    bank: Principal,
    outsider: Principal,
) -> None:
    own = jobs.submit(ctx, bank, jobs.JobSubmission(4, PURPOSE, command="run"))
    other = jobs.submit(ctx, outsider, jobs.JobSubmission(8, "financial AI", command="run"))
    scheduler.tick()
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(select(GpuAllocation).order_by(GpuAllocation.id))
        bank_lease = tx.all(select(Lease).where(Lease.tenant_id == bank.tenant_id))[0]
    by_job = {r.job_id: r for r in rows}
    assert {r.job_id for r in rows} == {own.id, other.id}
    mine = [r for r in rows if r.job_id == own.id]
    assert {(r.capacity, r.lease_id, r.lender_lease_id) for r in mine} == {
        ("guaranteed", bank_lease.id, None)
    }
    assert mine[0].claimed_at is None  # it started in the pass that saw it: it never waited
    assert by_job[other.id].capacity == "borrowed"
    assert by_job[other.id].lender_lease_id is None  # 1,536 GPUs are unleased
    kept, fresh = kept_and_rebuilt(scheduler, ctx, clock)
    assert kept.state.book == fresh.state.book
    assert kept.state.book.held == {bank_lease.id: 4}
    assert kept.state.book.unleased == 8


def test_usage_invoice_and_credit_note_of_a_month(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
    outsider: Principal,
) -> None:
    own, borrowed = _run(ctx, clock, scheduler, bank, outsider)
    rows, total = metering.usage_records(ctx, operator, MARCH)
    assert total == len(rows) == 12
    secs = {r.job_id: sum(x.gpu_seconds for x in rows if x.job_id == r.job_id) for r in rows}
    assert secs == {own: Decimal(4 * 5400), borrowed: Decimal(8 * 1800)}
    summary = {u.tenant: u for u in metering.usage_by_tenant(ctx, operator, MARCH)}
    assert summary[bank.tenant_id or ""].guaranteed == Decimal(21600)
    assert summary[outsider.tenant_id or ""].borrowed == Decimal(14400)
    # a tenant reads its own usage only, and never whose lease it borrowed
    seen, _ = metering.usage_records(ctx, outsider, MARCH)
    assert {r.tenant for r in seen} == {outsider.tenant_id}
    with pytest.raises(NotFound):
        metering.usage_records(ctx, outsider, MARCH, tenant=bank.tenant_id)

    with pytest.raises(InvalidRequest, match="once it is over"):
        invoicing.issue(ctx, operator, outsider.tenant_id or "", MARCH)
    clock.advance((datetime(2026, 4, 1, 8, 0, tzinfo=UTC) - clock.now()).total_seconds())
    assert outsider.tenant_id is not None
    assert bank.tenant_id is not None
    labs = invoicing.issue(ctx, operator, outsider.tenant_id, MARCH)
    [line] = labs.lines
    assert line.kind is LineKind.BORROWED
    assert (line.quantity, line.unit_price, line.amount) == (
        Decimal("4.000000"), Decimal("2.10000"), Decimal("8.40")
    )  # fmt: skip
    assert labs.total == Decimal("8.40")
    inv = invoicing.issue(ctx, operator, bank.tenant_id, MARCH)
    kinds = [ln.kind for ln in inv.lines]
    assert kinds == [LineKind.RESERVED, LineKind.INCLUDED]
    reserved, included = inv.lines
    # 128 GPUs from 09:00 on 2 March to April: 29 days 15 hours = 711 hours
    assert (reserved.gpu_seconds, reserved.amount) == (
        Decimal(128 * 711 * 3600), Decimal("318528.00")  # x 3.50
    )  # fmt: skip
    assert (included.gpu_seconds, included.amount) == (Decimal(21600), Decimal("0.00"))
    assert inv.total == reserved.amount + included.amount
    assert to_csv(inv).splitlines()[-1].startswith(f"total,,invoice {inv.id},,,,318528.00,USD")
    assert 'id="total">318528.00<' in to_html(inv)
    # issued once; a correction is a credit note; both audited into the ledger
    with pytest.raises(Conflict, match=inv.id):
        invoicing.issue(ctx, operator, bank.tenant_id, MARCH)
    with pytest.raises(Exception, match="only operator-admin"):
        invoicing.credit(ctx, bank, inv.id, invoicing.CreditRequest("please", lines=[1]))
    note = invoicing.credit(
        ctx,
        operator,
        inv.id,
        invoicing.CreditRequest("goodwill", amounts=[(1, Decimal("-1000.00"))]),
    )
    issued = invoicing.get(ctx, bank, inv.id)
    assert issued.invoice == inv  # never changed
    assert issued.notes == (note,)
    assert issued.balance == Decimal("317528.00")
    with pytest.raises(InvalidRequest, match="more than invoice"):
        invoicing.credit(ctx, operator, inv.id, invoicing.CreditRequest("all", lines=[1]))
    with pytest.raises(NotFound):
        invoicing.get(ctx, outsider, inv.id)
    assert [i.invoice.id for i in invoicing.list_invoices(ctx, bank)] == [inv.id]
    assert invoice_dict(inv)["total"] == "318528.00"
    with ctx.db.transaction(write=False) as tx:  # audited: the ledger takes it from there
        trail = tx.all(
            select(AuditRecord).where(AuditRecord.action.in_(["invoice.issue", "invoice.credit"]))
        )
    assert sorted(a.action for a in trail) == ["invoice.credit", "invoice.issue", "invoice.issue"]
    assert {a.subject_id for a in trail} == {inv.id, labs.id}


def test_a_price_change_takes_effect_now_or_later_and_cuts_usage(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
    outsider: Principal,
) -> None:
    change = clock.now() + timedelta(minutes=10)
    given = price_plans.PlanInput(
        plan_id=price_plans.DEFAULT_PLAN,
        effective_from=clock.now() - timedelta(minutes=1),
        currency="USD",
        reserved_rate=Decimal("3.50"),
        on_demand_rate=Decimal("6.00"),
        borrowed_discount=Decimal("0.5"),
        lending_share=Decimal("0.5"),
    )
    with pytest.raises(InvalidRequest, match="now or later"):
        price_plans.create_version(ctx, operator, given)
    with pytest.raises(InvalidRequest, match="one currency"):
        price_plans.create_version(
            ctx, operator, replace(given, effective_from=change, currency="EUR")
        )
    price_plans.create_version(ctx, operator, replace(given, effective_from=change))
    _run(ctx, clock, scheduler, bank, outsider)
    clock.advance((datetime(2026, 4, 1, tzinfo=UTC) - clock.now()).total_seconds())
    assert outsider.tenant_id is not None
    labs = invoicing.issue(ctx, operator, outsider.tenant_id, MARCH)
    # 8 GPUs: 10 minutes at 2.10, 20 minutes at 3.00 (6.00 less 50%)
    assert [(ln.quantity, ln.unit_price, ln.amount) for ln in labs.lines] == [
        (Decimal("1.333333"), Decimal("2.10000"), Decimal("2.80")),
        (Decimal("2.666667"), Decimal("3.000"), Decimal("8.00")),
    ]
    assert [p.version.ref for p in price_plans.list_plans(ctx, bank)] == [
        "standard/v1",
        "standard/v2",
    ]


def test_a_clock_stepped_back_never_counts_a_gpu_second_twice(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
) -> None:
    """A run ends at 09:30; the clock steps back to 09:10; the next run starts then (on the
    GPUs the first freed) and ends at 09:20, inside the first run's interval as written."""
    first = jobs.submit(ctx, bank, jobs.JobSubmission(4, PURPOSE, command="run", duration_s=1800))
    scheduler.tick()
    clock.advance(1800)
    scheduler.tick()
    clock.advance(-1200)
    second = jobs.submit(ctx, bank, jobs.JobSubmission(4, PURPOSE, command="run", duration_s=600))
    scheduler.tick()
    clock.advance(3600)
    scheduler.tick()
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(select(GpuAllocation).order_by(GpuAllocation.id))
    gpus = {job: {r.gpu_serial for r in rows if r.job_id == job} for job in (first.id, second.id)}
    assert all(r.end is not None for r in rows)
    usage, _ = metering.usage_records(ctx, operator, MARCH)  # no overlap refused
    total = sum((r.gpu_seconds for r in usage), Decimal(0))
    assert gpus[first.id] == gpus[second.id]  # best fit: the GPUs the first run freed
    # written 09:10..09:20, inside the first run's 09:00..09:30: nothing more is counted
    assert total == Decimal(4 * 1800)
