"""Usage and invoices read the allocation rows by key, a page at a time (SQLite and
PostgreSQL): with a page of 3 rows, a period of 16 rows is read in 6 pages and says exactly
what one page of thousands says, the clock-step trim carried from page to page.

The rows: the bank runs 4 GPUs 09:00..09:30; the clock steps back to 09:10 and its next run
takes the same GPUs 09:10..09:20 (inside the first as written: nothing more is counted); the
lease-less tenant runs 8 borrowed GPUs for 30 minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.metering.periods import Period
from gpulease.persistence.tables import GpuAllocation
from gpulease.services import invoicing, jobs, metering
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler

PURPOSE = "financial AI: credit risk models"
MARCH = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


@pytest.fixture
def page_reads(ctx: ServiceContext) -> Iterator[list[str]]:
    """The statements that read the usage's allocation rows a page at a time (LIMIT)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        text = " ".join(statement.split()).lower()
        usage = text.startswith("select gpu_allocations.id, gpu_allocations.tenant_id,")
        if usage and "from gpu_allocations" in text and "order by" in text:
            seen.append(text)

    event.listen(ctx.db.engine, "before_cursor_execute", note)
    yield seen
    event.remove(ctx.db.engine, "before_cursor_execute", note)


def _rows(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    bank: Principal,
    outsider: Principal,
) -> None:
    jobs.submit(ctx, bank, jobs.JobSubmission(4, PURPOSE, command="run", duration_s=1800))
    jobs.submit(
        ctx, outsider, jobs.JobSubmission(8, "financial AI", command="run", duration_s=1800)
    )
    scheduler.tick()
    clock.advance(1800)
    scheduler.tick()
    clock.advance(-1200)
    jobs.submit(ctx, bank, jobs.JobSubmission(4, PURPOSE, command="run", duration_s=600))
    scheduler.tick()
    clock.advance(3600)
    scheduler.tick()


def test_a_period_larger_than_a_page_reads_the_same_in_pages(
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    operator: Principal,
    bank: Principal,
    outsider: Principal,
    page_reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _rows(ctx, clock, scheduler, bank, outsider)
    with ctx.db.transaction(write=False) as tx:
        assert len(tx.all(select(GpuAllocation))) == 16
    assert bank.tenant_id is not None
    assert outsider.tenant_id is not None
    whole = {
        "all": metering.load_period(ctx, MARCH, None),
        "bank": metering.load_period(ctx, MARCH, [bank.tenant_id]),
    }
    listing, count = metering.usage_records(ctx, operator, MARCH, limit=1000)
    summary = metering.usage_by_tenant(ctx, operator, MARCH)
    draft = invoicing.draft(ctx, operator, bank.tenant_id, MARCH)
    assert sum(r.gpu_seconds for r in whole["bank"].records if r.tenant == bank.tenant_id) == (
        Decimal(4 * 1800)  # the second run lies inside the first as written
    )

    page_reads.clear()
    monkeypatch.setattr(metering, "PAGE", 3)
    paged = metering.load_period(ctx, MARCH, None)
    assert len(page_reads) == 6  # 16 rows, 3 at a time: 5 full pages and a last of 1
    assert all("limit" in s for s in page_reads)
    assert sorted(paged.records, key=lambda r: r.id) == sorted(
        whole["all"].records, key=lambda r: r.id
    )
    mine = metering.load_period(ctx, MARCH, [bank.tenant_id])
    assert sorted(mine.records, key=lambda r: r.id) == sorted(
        whole["bank"].records, key=lambda r: r.id
    )
    assert metering.usage_records(ctx, operator, MARCH, limit=1000) == (listing, count)
    # a page of the listing from the middle: the same rows as the whole listing's slice
    assert metering.usage_records(ctx, operator, MARCH, offset=5, limit=4) == (
        listing[5:9],
        count,
    )
    assert metering.usage_by_tenant(ctx, operator, MARCH) == summary
    assert invoicing.draft(ctx, operator, bank.tenant_id, MARCH) == draft
