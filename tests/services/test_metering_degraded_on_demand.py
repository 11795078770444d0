"""Degraded leased capacity and on-demand capacity, end to end from the database to a rated
invoice line (SQLite and PostgreSQL).

Degraded: a site of one NVL72 rack (18 trays of 4 GPUs) wholly leased to the bank (72
GPUs at the quoted 3.50 per GPU-hour); an operator takes tray 05 down for 3 hours and
nothing can replace it: the demo plan credits 4 GPUs x 3 h at the committed rate = 42.00,
the node and the figures listed as evidence. A tray of Jakarta down as long degrades no
lease (1,536 GPUs there are beyond every guarantee).

On-demand: the lease-less tenant's job submitted not preemptible runs 8 GPUs for an hour
on unleased capacity: 8 GPU-hours at the plan's on-demand 5.25 = 42.00; its preemptible
job beside it is borrowed at 2.10.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.states import LeaseState, NodeState
from gpulease.metering.periods import Period
from gpulease.metering.rating import LineKind
from gpulease.metering.render import invoice_dict
from gpulease.services import inventory, invoicing, jobs, leases, metering
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The suite's settings; a tenant's unapproved request may hold the whole site."""
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "var",
        lease_hold_share=1.0,
        preemption_grace_s=30.0,
    )


MARCH = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
APRIL = datetime(2026, 4, 1, 1, tzinfo=UTC)


def _to(clock: ManualClock, when: datetime) -> None:
    clock.advance((when - clock.now()).total_seconds())


def test_a_tray_down_and_not_replaced_credits_the_lease_with_its_evidence(
    ctx: ServiceContext, clock: ManualClock, operator: Principal, bank: Principal
) -> None:
    inventory.register_site(
        ctx,
        operator,
        site_id="deg1",
        name="One rack",
        country="ID",
        city="Jakarta",
        hardware="gb200-nvl72",
        racks=1,
        serial_prefix="DEG-NVL72",
    )
    start = clock.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    lease = leases.request_lease(
        ctx,
        bank,
        leases.LeaseRequest(site_id="deg1", start=start, end=start + timedelta(days=20), gpus=72),
    )
    leases.decide(ctx, operator, lease.id, LeaseState.APPROVED, "test: approved")
    down_at = datetime(2026, 3, 10, 10, tzinfo=UTC)
    _to(clock, down_at)
    tray = "deg1-r00-n05"
    inventory.set_node_state(ctx, operator, tray, NodeState.DOWN, "tray 05: NVLink errors")
    inventory.set_node_state(ctx, operator, "jkt1-r00-n00", NodeState.DOWN, "test: spare site")
    _to(clock, down_at + timedelta(hours=3))
    inventory.set_node_state(ctx, operator, tray, NodeState.UP, "tray 05 repaired")
    inventory.set_node_state(ctx, operator, "jkt1-r00-n00", NodeState.UP, "test: back")
    _to(clock, APRIL)

    assert bank.tenant_id is not None
    draft = invoicing.draft(ctx, bank, bank.tenant_id, MARCH)
    inv = invoicing.issue(ctx, operator, bank.tenant_id, MARCH)
    assert [ln for ln in inv.lines if ln.kind is LineKind.SLA_DEGRADED] == [
        ln for ln in draft.lines if ln.kind is LineKind.SLA_DEGRADED
    ]
    [degraded] = [ln for ln in inv.lines if ln.kind is LineKind.SLA_DEGRADED]
    assert degraded.lease_id == lease.id  # the Jakarta lease has spare GPUs: no credit
    assert degraded.gpu_seconds == Decimal(4 * 3 * 3600)
    assert degraded.unit_price == Decimal("-3.50")  # the lease's committed rate, multiple 1
    assert degraded.amount == Decimal("-42.00")
    [evidence] = degraded.evidence
    assert "4 GPUs down 2026-03-10T10:00:00+00:00..2026-03-10T13:00:00+00:00" in evidence
    assert tray in evidence
    assert "68 of 72 GPUs up for 72 guaranteed" in evidence
    assert inv.total == sum((ln.amount for ln in inv.lines), Decimal(0))
    # the evidence is part of the stored document
    stored = invoicing.get(ctx, bank, inv.id).invoice
    assert invoice_dict(stored) == invoice_dict(inv)


def test_non_preemptible_work_on_unleased_capacity_is_rated_on_demand(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    outsider: Principal,
) -> None:
    firm = jobs.submit(
        ctx,
        outsider,
        jobs.JobSubmission(8, "financial AI", command="run", duration_s=3600, preemptible=False),
    )
    loose = jobs.submit(
        ctx, outsider, jobs.JobSubmission(8, "financial AI", command="run", duration_s=3600)
    )
    scheduler.tick()
    clock.advance(3600)
    scheduler.tick()
    assert jobs.get_job(ctx, outsider, firm.id).state == "succeeded"
    rows, _ = metering.usage_records(ctx, operator, MARCH, tenant=outsider.tenant_id)
    assert {(r.job_id, r.capacity) for r in rows} == {
        (firm.id, "on_demand"),
        (loose.id, "borrowed"),
    }
    [summary] = metering.usage_by_tenant(ctx, operator, MARCH, tenant=outsider.tenant_id)
    assert (summary.on_demand, summary.borrowed) == (Decimal(8 * 3600), Decimal(8 * 3600))
    _to(clock, APRIL)
    assert outsider.tenant_id is not None
    inv = invoicing.issue(ctx, operator, outsider.tenant_id, MARCH)
    by_kind = {ln.kind: ln for ln in inv.lines}
    assert set(by_kind) == {LineKind.ON_DEMAND, LineKind.BORROWED}
    od = by_kind[LineKind.ON_DEMAND]
    assert (od.quantity, od.unit_price, od.amount) == (
        Decimal("8.000000"), Decimal("5.250"), Decimal("42.00")
    )  # fmt: skip
    assert by_kind[LineKind.BORROWED].amount == Decimal("16.80")  # 8 GPU-hours x 2.10
    assert set(od.usage_ids) == {r.id for r in rows if r.job_id == firm.id}
    assert inv.total == Decimal("58.80")
