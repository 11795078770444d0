"""Wait reasons of the jobs a pass sets aside together: written when they change, never
compared job by job on every pass (``decision_apply.Explained``)."""

from __future__ import annotations

from sqlalchemy import text

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.persistence import bulk
from gpulease.persistence.tables import SchedulerChange
from gpulease.services import jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from live_support import SITE, job_of


def _reasons(ctx: ServiceContext, ids: list[str]) -> dict[str, str]:
    with ctx.db.transaction(write=False) as tx:
        return {j.id: j.wait_reason for j in bulk.load_jobs(tx, ids)}


def test_a_set_aside_jobs_reason_is_written_again_when_its_row_changed(
    ctx: ServiceContext, clock: ManualClock, scheduler: LiveScheduler, outsider: Principal
) -> None:
    with ctx.db.connect() as conn:  # nothing can start: every job is set aside together
        conn.execute(text("UPDATE nodes SET state = 'down'"))
        conn.commit()
    # a tenant without a lease: its jobs borrow, and the walk sets them aside by shape
    queued = [jobs.submit(ctx, outsider, job_of(gpus, 600)).id for gpus in (1, 1, 2)]
    [first] = scheduler.tick()
    assert first.started == []
    reasons = _reasons(ctx, queued)
    assert "next pass" not in reasons[queued[0]]
    assert reasons[queued[0]] == reasons[queued[1]]
    site = scheduler._sites[SITE]
    assert set(queued) <= set(site.explained.text_of)  # remembered as stored
    clock.advance(2)
    scheduler.tick()  # re-reads the feed's lookback once after a rebuild

    # another process rewrites one job's reason (its row announced, as every service's is)
    with ctx.db.transaction() as tx:
        tx.session.execute(
            text("UPDATE jobs SET wait_reason = 'edited', version = version + 1 WHERE id = :id"),
            {"id": queued[0]},
        )
        tx.add(SchedulerChange(site_id=SITE, kind="job", ref=queued[0], origin=""))
    clock.advance(2)
    [second] = scheduler.tick()
    assert second.changes == 1
    assert _reasons(ctx, queued) == reasons  # written back: its run's text again

    # a steady pass compares nothing: every job is known to store its run's text
    clock.advance(2)
    scheduler.tick()
    assert _reasons(ctx, queued) == reasons
