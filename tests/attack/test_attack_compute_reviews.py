"""Attacks on the compute review queue (``services.compute_reviews``): a tenant must learn
nothing about a review of its compute (not through the queue, not through the ledger); a
scan with nothing new must write nothing (the scheduler runs it every few minutes); a job
requeued after running must keep the compute it has used; a decision and a scan at once
must not leave a decided review altered behind the officer's back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.persistence.db import Database
from gpulease.persistence.tables import AuditRecord, ComputeReview, Job, OwnershipRow
from gpulease.services import compute_reviews, demo_sites, jobs, ledger
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from support.shells import shell

Client = Callable[[str | None], TestClient]

CAMPAIGN = "financial AI: foundation model pretraining"


def _stage(ctx: ServiceContext, who: Principal, i: int, gpus: int = 2304) -> str:
    # 2304 GPUs x 2 days on B200 at 0.4: 3.98e23 operations; 30 of them pass 10^25
    return jobs.submit(
        ctx,
        who,
        jobs.JobSubmission(
            gpus=gpus, purpose=CAMPAIGN, command="train", walltime_s=2 * 86_400.0, name=f"s{i}"
        ),
    ).id


def _audit_ids(ctx: ServiceContext, prefix: str) -> list[int]:
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(select(AuditRecord).where(AuditRecord.action.like(f"{prefix}%")))
        return sorted(r.id for r in rows)


@pytest.mark.slow  # a head signed over the demo's ledger
def test_a_tenant_cannot_read_its_compute_review_through_a_ledger_proof(
    ctx: ServiceContext,
    api: Client,
    demo: list[DemoUser],
    inftech: Principal,
    officer: Principal,
) -> None:
    """The queue answers a tenant 403; the ledger must not hand it the same review (its id,
    the threshold, the total, the officer's decision and reason: tipping off)."""
    ledger.ensure_key(ctx)
    for i in range(30):
        _stage(ctx, inftech, i)
    [review_id, *_] = compute_reviews.scan(ctx).opened
    compute_reviews.decide_review(
        ctx, officer, review_id, outcome="reported", reason="reported to the ministry, ref 7/26"
    )
    ledger.sign_head(ctx)
    tokens = {u.email: u.token for u in demo}
    tenant = api(tokens["admin@inftech.example"])
    assert tenant.get(f"/compliance/compute-reviews/{review_id}").status_code == 403
    ids = _audit_ids(ctx, "compute_review.")
    assert ids
    for audit_id in ids:
        answer = tenant.get(f"/ledger/records/{audit_id}/proof")
        assert answer.status_code == 404, answer.text
        assert "compute_review" not in answer.text
        assert "ministry" not in answer.text
    staff = api(tokens["compliance@indosat.example"])
    for audit_id in ids:  # the officer still proves them
        assert staff.get(f"/ledger/records/{audit_id}/proof").status_code == 200


def test_a_later_scan_with_nothing_new_changes_nothing(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal
) -> None:
    """The leader scans every ``compute_review_scan_s``: the clock moves between scans. With
    the same jobs and the same total, no update and no audit record may follow (each open
    review would otherwise be rewritten and audited every five minutes, forever)."""
    for i in range(30):
        _stage(ctx, inftech, i)
    first = compute_reviews.scan(ctx)
    assert len(first.opened) == 2
    before = _audit_ids(ctx, "compute_review.")
    clock.advance(ctx.settings.compute_review_scan_s)
    again = compute_reviews.scan(ctx)
    assert (again.opened, again.updated) == ((), ())
    assert _audit_ids(ctx, "compute_review.") == before


def test_a_job_requeued_after_running_keeps_the_compute_it_used(
    ctx: ServiceContext, inftech: Principal, officer: Principal
) -> None:
    """Preemption and requeue after a node failure take a job RUNNING -> QUEUED with its run
    seconds kept; its estimate must count them. A job that ran 60 days on 2304 B200s
    (1.19e25 operations) and was requeued with a one-hour walltime is over 10^25."""
    job_id = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(gpus=2304, purpose=CAMPAIGN, command="train", walltime_s=3600.0),
    ).id
    with ctx.db.transaction() as tx:
        job = tx.require(Job, job_id, "job")
        job.starts, job.run_s = 1, 60 * 86_400.0  # ran 60 days, then requeued (state queued)
    found = compute_reviews.scan(ctx)
    assert found.opened, "60 days of 2304 B200s hidden by a requeue"
    kinds = {compute_reviews.get_review(ctx, officer, r).kind for r in found.opened}
    assert kinds == {"tenant", "campaign"}


def test_a_decision_beside_a_scan_leaves_the_decided_review_as_decided(
    ctx: ServiceContext, inftech: Principal, officer: Principal
) -> None:
    """An officer decides while a scan runs (PostgreSQL, two connections): the decided
    review's total and evidence are what the officer decided on; the scan must not write a
    new total into it after the decision (it raises nothing within the window instead)."""
    if ctx.db.is_sqlite:
        pytest.skip("row locks: PostgreSQL")
    for i in range(30):
        _stage(ctx, inftech, i)
    opened = compute_reviews.scan(ctx).opened
    _stage(ctx, inftech, 30)  # the next scan has a new total for every open review
    with ctx.db.transaction(write=False) as tx:
        before = {r.id: r.estimated_ops for r in tx.all(select(ComputeReview))}
    # the officer's transaction: the row locked and decided, not yet committed
    with ctx.db.engine.connect() as conn:
        conn.execute(
            text("SELECT id FROM compute_reviews WHERE id = :id FOR UPDATE"), {"id": opened[0]}
        )
        conn.execute(
            text(
                "UPDATE compute_reviews SET state = 'cleared', decided_by = 'officer', "
                "decided_at = :at, decision_reason = 'nothing to report' WHERE id = :id"
            ),
            {"id": opened[0], "at": ctx.now()},
        )
        scanning = threading.Thread(target=compute_reviews.scan, args=(ctx,))
        scanning.start()
        time.sleep(1.0)  # the scan reaches the locked row (if it does not, the test passes)
        conn.commit()
    scanning.join(60)
    with ctx.db.transaction(write=False) as tx:
        decided = tx.require(ComputeReview, opened[0], "compute review")
        assert decided.state == "cleared"
        assert decided.estimated_ops == before[opened[0]], "decided review rewritten"
        assert decided.decision_reason == "nothing to report"


def test_scans_at_once_from_two_processes_open_one_review_per_subject(
    ctx: ServiceContext, db_url: str, inftech: Principal
) -> None:
    """Two leaders for a moment (a failover), or the leader and an officer's scan: each on
    its own engine, at once. One open review per subject, never two."""
    for i in range(30):
        _stage(ctx, inftech, i)
    others = [Database(db_url) for _ in range(3)]
    try:
        contexts = [ServiceContext(db, settings=ctx.settings, clock=ctx.clock) for db in others]
        errors: list[BaseException] = []

        def run(one: ServiceContext) -> None:
            try:
                compute_reviews.scan(one)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(c,)) for c in contexts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for db in others:
            db.dispose()
    if ctx.db.is_sqlite and errors:  # SQLite: a writer may wait out its busy timeout
        pytest.skip(f"SQLite refused a concurrent writer: {errors[0]!r}")
    assert not errors, errors
    with ctx.db.transaction(write=False) as tx:
        keys = [r.subject_key for r in tx.all(select(ComputeReview))]
    assert len(keys) == len(set(keys)) == 2
    assert len(_audit_ids(ctx, "compute_review.open")) == 2


def test_a_group_that_ran_under_common_control_is_not_hidden_by_ending_the_stakes(
    ctx: ServiceContext, clock: ManualClock, operator: Principal, officer: Principal
) -> None:
    """Two shells of one holding run 1.04e25 together inside the window (5.2e24 each), then
    the holding's stakes end (a new declaration, a sale to a friendly party): the jobs ran
    under common control, so the group's total should still be raised."""
    demo_sites.add_regional_sites(ctx, operator)
    one = shell(ctx, operator, officer, "Shell One")
    two = shell(ctx, operator, officer, "Shell Two")
    for who, site in ((one, "sgp1"), (two, "bkk1")):
        for i in range(13):
            jobs.submit(
                ctx,
                who,
                jobs.JobSubmission(
                    gpus=32,
                    site_id=site,
                    purpose=f"financial-services-ai: model {i}",
                    command="train",
                    walltime_s=365 * 86_400.0,
                ),
            )
    clock.advance(3600)
    with ctx.db.transaction() as tx:
        for stake in tx.all(select(OwnershipRow)):
            stake.until = ctx.now() - timedelta(minutes=1)
    found = compute_reviews.scan(ctx)
    kinds = [compute_reviews.get_review(ctx, officer, r).kind for r in found.opened]
    assert "group" in kinds
