"""Set-at-a-time bookkeeping writes and the scheduler's change feed, on each database."""

from __future__ import annotations

from datetime import UTC, datetime

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.persistence import bulk
from gpulease.persistence.change_feed import writing_as
from gpulease.persistence.change_reader import ChangeFeed
from gpulease.persistence.tables import Job, SchedulerChange
from gpulease.services import demo as demo_service
from gpulease.services import identity, jobs
from gpulease.services.context import ServiceContext

SITE = demo_service.SITE_ID


def _admin(ctx: ServiceContext, demo: list[demo_service.DemoUser]) -> Principal:
    token = next(u.token for u in demo if u.email == "admin@inftech.example")
    return identity.authenticate(ctx, token)


def _job(ctx: ServiceContext, who: Principal) -> Job:
    return jobs.submit(
        ctx, who, jobs.JobSubmission(gpus=8, purpose="financial AI", command="train")
    )


def test_bookkeeping_writes_touch_only_queued_rows_and_keep_versions(
    ctx: ServiceContext, demo: list[demo_service.DemoUser]
) -> None:
    who = _admin(ctx, demo)
    queued, cancelled = _job(ctx, who), _job(ctx, who)
    jobs.cancel(ctx, who, cancelled.id, "not needed")
    since = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    with ctx.db.transaction() as tx:
        before = {j.id: j.version for j in bulk.load_jobs(tx, [queued.id, cancelled.id])}
    with ctx.db.transaction() as tx:
        bulk.set_wait_reasons(tx, {queued.id: "waits: test", cancelled.id: "waits: test"})
        bulk.set_claims(tx, {queued.id: since, cancelled.id: since})
    with ctx.db.transaction(write=False) as tx:
        rows = {j.id: j for j in bulk.load_jobs(tx, [queued.id, cancelled.id])}
    assert rows[queued.id].wait_reason == "waits: test"
    assert rows[queued.id].guaranteed_since == since
    assert rows[cancelled.id].wait_reason != "waits: test"
    assert rows[cancelled.id].guaranteed_since is None
    assert {j.id: j.version for j in rows.values()} == before
    with ctx.db.transaction() as tx:  # a claim ended: NULLs alone (no type to infer from)
        bulk.set_claims(tx, {queued.id: None})
    with ctx.db.transaction(write=False) as tx:
        [row] = bulk.load_jobs(tx, [queued.id])
    assert row.guaranteed_since is None


def test_every_job_change_is_announced_once_per_transaction_with_its_origin(
    ctx: ServiceContext, demo: list[demo_service.DemoUser], clock: ManualClock
) -> None:
    who = _admin(ctx, demo)
    feed = ChangeFeed(SITE)
    with ctx.db.transaction(write=False) as tx:
        feed.reset(tx)
        feed.read(tx)  # the demo's own changes
    job = _job(ctx, who)
    with ctx.db.transaction() as tx, writing_as("leader-1"):
        row = tx.require(Job, job.id, "job")
        row.priority = "high"
        tx.flush()
        row.preemptible = False  # a second flush in the same transaction: no second row
    with ctx.db.transaction() as tx:  # bookkeeping set at a time is not announced
        bulk.set_wait_reasons(tx, {job.id: "waits: test"})
    with ctx.db.transaction(write=False) as tx:
        changes = feed.read(tx)
        assert feed.read(tx) == []  # each number is read once
    assert [(c.kind, c.ref, c.origin) for c in changes] == [
        ("job", job.id, ""),
        ("job", job.id, "leader-1"),
    ]


def test_a_gap_is_waited_for_then_given_up(
    ctx: ServiceContext, demo: list[demo_service.DemoUser]
) -> None:
    """A number allocated by a transaction still open shows up later (PostgreSQL); one that
    was rolled back never does and is given up after the timeout."""
    feed = ChangeFeed(SITE, gap_timeout_s=10.0)
    with ctx.db.transaction(write=False) as tx:
        feed.reset(tx)
        feed.read(tx, clock=0.0)
        top = feed.low
    with ctx.db.transaction() as tx:
        for seq in (top + 1, top + 3):
            tx.add(SchedulerChange(seq=seq, site_id=SITE, kind="job", ref=f"job-{seq}", origin=""))
    with ctx.db.transaction(write=False) as tx:
        assert [c.seq for c in feed.read(tx, clock=1.0)] == [top + 1, top + 3]
    assert (feed.low, sorted(feed.gaps)) == (top + 1, [top + 2])
    with ctx.db.transaction() as tx:  # the late transaction commits
        tx.add(SchedulerChange(seq=top + 2, site_id=SITE, kind="job", ref="late", origin=""))
    with ctx.db.transaction(write=False) as tx:
        assert [c.ref for c in feed.read(tx, clock=2.0)] == ["late"]
    assert (feed.low, feed.gaps) == (top + 3, {})
    with ctx.db.transaction() as tx:  # top + 4 never commits
        tx.add(SchedulerChange(seq=top + 5, site_id=SITE, kind="job", ref="after", origin=""))
    with ctx.db.transaction(write=False) as tx:
        assert [c.ref for c in feed.read(tx, clock=3.0)] == ["after"]
        assert feed.low == top + 3
        assert feed.read(tx, clock=20.0) == []
    assert (feed.low, feed.gaps) == (top + 5, {})


def test_the_heartbeat_is_one_upsert_counting_ticks(
    ctx: ServiceContext, demo: list[demo_service.DemoUser]
) -> None:
    from gpulease.persistence.tables import SchedulerStatus

    first = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    later = datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC)
    with ctx.db.transaction() as tx:
        tx.session.query(SchedulerStatus).delete()
    for leader, at, failed in (("a", first, 0), ("a", first, 1), ("b", later, 3)):
        with ctx.db.transaction() as tx:
            bulk.heartbeat(tx, SITE, leader, at, failed)
    with ctx.db.transaction(write=False) as tx:
        [row] = tx.all(tx.select(SchedulerStatus))
    assert (row.site_id, row.leader, row.last_tick_at, row.ticks, row.failed_passes) == (
        SITE,
        "b",
        later,
        3,
        3,
    )


def test_the_feed_purges_its_rows_once_it_moved_on_enough(
    ctx: ServiceContext, demo: list[demo_service.DemoUser]
) -> None:
    feed = ChangeFeed(SITE, lookback=1, purge_every=3)  # 0: SQLite would reuse numbers
    with ctx.db.transaction() as tx:
        feed.reset(tx)
        feed.read(tx)
        feed.purge(tx)  # the demo's rows
    who = _admin(ctx, demo)
    for expected in (0, 0, 3):  # each job adds one change row of this site
        _job(ctx, who)
        with ctx.db.transaction() as tx:
            feed.read(tx)
            assert feed.purge(tx) == expected
