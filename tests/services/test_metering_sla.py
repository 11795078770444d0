"""An SLA wait credit and a lending credit through the live scheduler (SQLite and
PostgreSQL): the lease-less tenant's borrowed run fills the site; the bank claims 4 GPUs
within its lease, the borrowed run is reclaimed after a grace period of 3 hours (set long
here), and the bank's run starts 3 hours after its claim. The demo plan's SLO is an hour:
4 GPUs x 2 hours late = 8 GPU-hours credited at the lease's committed 3.50 = 28.00, with
the wait as evidence; the bank's 128 idle GPUs ran the borrowed work until then: a lending
credit of half its revenue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.metering.periods import Period
from gpulease.metering.rating import LineKind
from gpulease.services import invoicing, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import Settings

GRACE = 3 * 3600.0
PURPOSE = "financial AI: credit risk models"
MARCH = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "var", preemption_grace_s=GRACE)


def test_a_guarantee_that_waited_beyond_the_slo_is_credited(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
    outsider: Principal,
) -> None:
    site = jobs.submit(
        ctx, outsider, jobs.JobSubmission(2304, "financial AI", command="run", duration_s=86400.0)
    )
    scheduler.tick()
    assert jobs.get_job(ctx, outsider, site.id).state == "running"
    clock.advance(60)
    claim = clock.now()
    own = jobs.submit(ctx, bank, jobs.JobSubmission(4, PURPOSE, command="run", duration_s=3600.0))
    scheduler.tick()  # the claim begins; the borrowed run gets its notice
    assert jobs.get_job(ctx, bank, own.id).state == "queued"
    clock.advance(GRACE)
    scheduler.tick()  # the notice is over: reclaimed, and the bank's run starts
    assert jobs.get_job(ctx, bank, own.id).state == "running"
    clock.advance((datetime(2026, 4, 1, 1, tzinfo=UTC) - clock.now()).total_seconds())
    assert bank.tenant_id is not None
    inv = invoicing.issue(ctx, operator, bank.tenant_id, MARCH)
    [wait] = [ln for ln in inv.lines if ln.kind is LineKind.SLA_WAIT]
    assert wait.gpu_seconds == Decimal(4 * 2 * 3600)
    assert wait.amount == Decimal("-28.00")
    assert len(wait.evidence) == 1
    assert f"claimed {claim.isoformat()}" in wait.evidence[0]
    assert inv.total == sum((ln.amount for ln in inv.lines), Decimal(0))
    # the borrowed run held all 2,304 GPUs: the 1,536 unleased and every lease's idle GPUs,
    # the bank's 128 among them until reclaimed: half the borrowed revenue comes back to it
    [lent] = [ln for ln in inv.lines if ln.kind is LineKind.LENDING_CREDIT]
    assert lent.gpu_seconds == Decimal(128 * (60 + int(GRACE)))
    assert lent.unit_price == Decimal("-1.05")
    assert lent.amount == Decimal("-405.44")  # 386.133333 GPU-hours x 1.05
    assert outsider.tenant_id is not None
    labs = invoicing.issue(ctx, operator, outsider.tenant_id, MARCH)
    [borrowed] = labs.lines
    assert borrowed.gpu_seconds == Decimal(2304 * (60 + int(GRACE)))
