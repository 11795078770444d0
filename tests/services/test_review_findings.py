"""Regression tests for correctness bugs found in review (scheduler pass, races, executors).
Each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import DomainError
from gpulease.domain.states import JobState, KycState, LeaseState
from gpulease.executors.local import LocalExecutor
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.db import DatabaseUnavailable, Tx
from gpulease.persistence.tables import AuditRecord, Job, Lease, Node, Tenant
from gpulease.services import demo as demo_service
from gpulease.services import identity, inventory, jobs, kyc, leases, runs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduler_loop import SchedulerLoop
from gpulease.services.scheduling import LiveScheduler
from gpulease.services.snapshot import Snapshot


def submission(gpus: int = 4, **fields: Any) -> jobs.JobSubmission:
    fields.setdefault("purpose", "financial AI")
    fields.setdefault("command", "train")
    fields.setdefault("duration_s", 600)
    return jobs.JobSubmission(gpus=gpus, **fields)


def state_of(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


def test_second_site_runs_are_not_stopped_by_the_first_sites_reconcile(
    ctx: ServiceContext, operator: Principal, inftech: Principal
) -> None:
    """One executor serves every site: site A's reconcile must not stop site B's runs (the
    local executor cannot adopt them back, so each pass killed and requeued them)."""
    inventory.register_site(
        ctx,
        operator,
        site_id="sgp1",
        name="Singapore",
        country="SG",
        city="Singapore",
        hardware="hgx-8gpu",
        racks=1,
        serial_prefix="SGP",
    )
    local = LocalExecutor(kill_after_s=1)
    scheduler = LiveScheduler(ctx, local, name="two-sites")
    try:
        job = jobs.submit(ctx, inftech, submission(8, site_id="sgp1", command="sleep 30"))
        scheduler.tick()
        assert local.active() == {(job.id, 1)}
        scheduler.tick()
        after = state_of(ctx, job.id)
        assert after.state == JobState.RUNNING
        assert (after.starts, after.preemptions) == (1, 0)
        assert local.active() == {(job.id, 1)}
    finally:
        local.close()


def test_tenant_suspended_after_the_snapshot_gets_no_start(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    scheduler: LiveScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tenant suspended (re-screen hit, officer) between the pass's snapshot and its apply
    must not have work started: the apply re-reads the tenant's standing."""
    job = jobs.submit(ctx, inftech, submission(4))
    original = scheduler._snapshot

    def snapshot_then_suspend(*args: Any, **kwargs: Any) -> Snapshot:
        snap = original(*args, **kwargs)
        with ctx.db.transaction() as tx:
            tenant = tx.require(Tenant, inftech.tenant_id, "tenant", for_update=True)
            kyc.set_standing(tx, tenant, "suspended", "suspended: new hit", clock.now(), "t")
        return snap

    monkeypatch.setattr(scheduler, "_snapshot", snapshot_then_suspend)
    [report] = scheduler.tick()
    assert job.id not in report.started
    assert state_of(ctx, job.id).state == JobState.QUEUED
    monkeypatch.setattr(scheduler, "_snapshot", original)
    scheduler.tick()
    held = state_of(ctx, job.id)
    assert held.state == JobState.QUEUED
    assert held.wait_reason.startswith("held: the tenant is not approved")


def test_snapshot_is_consistent_when_a_job_is_cancelled_during_it(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    scheduler: LiveScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The snapshot reads jobs, then nodes and allocations: on PostgreSQL (READ COMMITTED)
    a cancel committed in between left a RUNNING job without GPUs and the pass crashed."""
    job = jobs.submit(ctx, inftech, submission(4))
    scheduler.tick()
    assert state_of(ctx, job.id).state == JobState.RUNNING
    clock.advance(5)
    original_all = Tx.all
    fired: list[bool] = []

    def all_with_cancel(self: Tx, query: Any) -> Any:
        entity = query.column_descriptions[0].get("entity")
        if entity is Node and not fired:
            fired.append(True)
            jobs.cancel(ctx, inftech, job.id, "changed my mind")
        return original_all(self, query)

    monkeypatch.setattr(Tx, "all", all_with_cancel)
    scheduler.reset_state()  # the pass rebuilds: it takes a snapshot
    scheduler.tick()
    assert fired
    monkeypatch.setattr(Tx, "all", original_all)
    assert state_of(ctx, job.id).state == JobState.CANCELLED
    scheduler.tick()


def test_cancel_racing_the_recording_of_completions_loses_none(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    scheduler: LiveScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user cancels a job while the pass records its completion: on PostgreSQL the job row
    was read unlocked, the cancel's commit made the update stale, and the whole batch of
    completions was lost (the pass failed; a local run that succeeded would be re-run)."""
    first = jobs.submit(ctx, inftech, submission(4, duration_s=60))
    second = jobs.submit(ctx, inftech, submission(4, duration_s=60))
    scheduler.tick()
    clock.advance(61)
    original_stop = runs.stop_run
    racers: list[threading.Thread] = []
    refused: list[Exception] = []

    def cancel() -> None:
        try:
            jobs.cancel(ctx, inftech, second.id, "too late")
        except DomainError as error:
            refused.append(error)

    def stop_run_with_a_racing_cancel(tx: Tx, job: Job, *args: Any, **kwargs: Any) -> None:
        if job.id == second.id and not racers:
            racer = threading.Thread(target=cancel)
            racers.append(racer)
            racer.start()
            racer.join(timeout=1.0)  # committed at once, or blocked on the row until we commit
        original_stop(tx, job, *args, **kwargs)

    monkeypatch.setattr(runs, "stop_run", stop_run_with_a_racing_cancel)
    [report] = scheduler.tick()
    racers[0].join(timeout=60)
    assert set(report.finished) == {first.id, second.id}
    assert state_of(ctx, first.id).state == JobState.SUCCEEDED
    assert state_of(ctx, second.id).state == JobState.SUCCEEDED
    assert len(refused) == 1


def test_rejecting_a_second_case_keeps_the_approval_the_tenant_stands_on(
    ctx: ServiceContext,
    clock: ManualClock,
    officer: Principal,
    outsider: Principal,
    scheduler: LiveScheduler,
) -> None:
    """An approved tenant submits a further case (say, to add an end use); its rejection
    refuses that case only. It used to set the tenant's standing to rejected while the case
    it stood on stayed approved: its work was drained and refused, its leases suspended."""
    assert outsider.tenant_id is not None
    with ctx.db.transaction(write=False) as tx:
        standing_on = tx.require(Tenant, outsider.tenant_id, "tenant").approval_case_id
    running = jobs.submit(ctx, outsider, submission(4))
    scheduler.tick()
    clock.advance(60)
    extra = kyc.submit_case(
        ctx,
        outsider,
        outsider.tenant_id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput("Lease-less Labs", countries=("SG",)),
            end_uses=("scientific-computing",),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
        ),
    )
    kyc.decide_case(ctx, officer, extra.id, approve=False, reason="not needed")
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, outsider.tenant_id, "tenant")
    assert (tenant.approval, tenant.approval_case_id) == ("approved", standing_on)
    [report] = scheduler.tick()
    assert running.id not in report.requeued
    assert state_of(ctx, running.id).state == JobState.RUNNING
    jobs.submit(ctx, outsider, submission(4))  # still admitted


def test_case_left_unscreened_is_screened_by_the_next_pass(
    ctx: ServiceContext,
    operator: Principal,
    scheduler: LiveScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Submission commits the case, then screens it in a second transaction. If that step
    fails (database error, crash), the case stayed ``submitted`` for ever: no officer can
    decide it and the tenant cannot submit another (it has an open case)."""
    tenant = identity.create_tenant(ctx, operator, name="Unlucky Labs", country="SG", kind="lab")
    original = kyc.current_lists

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseUnavailable("database error: connection lost")

    sub = kyc.CaseSubmission(
        organization=kyc.PartyInput("Unlucky Labs", countries=("SG",)),
        end_uses=("scientific-computing",),
        identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
    )
    monkeypatch.setattr(kyc, "current_lists", unavailable)
    with pytest.raises(DatabaseUnavailable):
        kyc.submit_case(ctx, operator, tenant.id, sub)
    monkeypatch.setattr(kyc, "current_lists", original)
    [case] = kyc.list_cases(ctx, operator, state="submitted")
    scheduler.tick()
    screened = kyc.get_case(ctx, operator, case.id)
    assert screened.state == KycState.NEEDS_REVIEW
    assert screened.round == 1
    scheduler.tick()
    assert kyc.get_case(ctx, operator, case.id).round == 1  # screened once, not every pass


def test_queued_work_for_an_end_use_no_longer_approved_is_held(
    ctx: ServiceContext,
    officer: Principal,
    outsider: Principal,
    scheduler: LiveScheduler,
) -> None:
    """The officer approves a new case for fewer end uses (it supersedes the earlier one).
    A job queued for a withdrawn end use would be refused at submission now; it used to
    start all the same. It waits, saying why, until the end use is approved again."""
    assert outsider.tenant_id is not None
    queued = jobs.submit(ctx, outsider, submission(4, purpose="financial-services-ai"))
    narrower = kyc.submit_case(
        ctx,
        outsider,
        outsider.tenant_id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput("Lease-less Labs", countries=("SG",)),
            end_uses=("scientific-computing",),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
        ),
    )
    kyc.decide_case(ctx, officer, narrower.id, approve=True, reason="science only now")
    with pytest.raises(kyc.NotApproved):
        jobs.submit(ctx, outsider, submission(4, purpose="financial-services-ai"))
    [report] = scheduler.tick()
    assert queued.id not in report.started
    held = state_of(ctx, queued.id)
    assert held.state == JobState.QUEUED
    assert held.wait_reason.startswith("held: ")
    allowed = jobs.submit(ctx, outsider, submission(4, purpose="scientific-computing"))
    [report] = scheduler.tick()
    assert report.started == [allowed.id]


def _narrow_to_science(ctx: ServiceContext, officer: Principal, tenant: Principal) -> None:
    assert tenant.tenant_id is not None
    narrower = kyc.submit_case(
        ctx,
        tenant,
        tenant.tenant_id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput("Lease-less Labs", countries=("SG",)),
            end_uses=("scientific-computing",),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
        ),
    )
    kyc.decide_case(ctx, officer, narrower.id, approve=True, reason="science only now")


@pytest.mark.parametrize("setting", ["drain", "keep"])
def test_running_work_for_a_withdrawn_end_use_is_drained_when_so_set(
    ctx: ServiceContext,
    officer: Principal,
    outsider: Principal,
    executor: SimulatedExecutor,
    setting: str,
) -> None:
    """Only queued work used to be held when an officer withdrew an end use: a job already
    running for it kept the chips. Under ``suspended_running = drain`` (the default) it is
    stopped and requeued, held with the reason, as a suspended tenant's jobs are."""
    ctx.settings = ctx.settings.model_copy(update={"suspended_running": setting})
    scheduler = LiveScheduler(ctx, executor, name="test-scheduler")
    finance = jobs.submit(
        ctx, outsider, submission(4, purpose="financial-services-ai", duration_s=86400)
    )
    science = jobs.submit(
        ctx, outsider, submission(4, purpose="scientific-computing", duration_s=86400)
    )
    [report] = scheduler.tick()
    assert sorted(report.started) == sorted([finance.id, science.id])
    _narrow_to_science(ctx, officer, outsider)
    [report] = scheduler.tick()
    if setting == "keep":
        assert report.requeued == []
        assert state_of(ctx, finance.id).state == JobState.RUNNING
        return
    assert report.requeued == [finance.id]
    drained = state_of(ctx, finance.id)
    assert drained.state == JobState.QUEUED
    assert drained.wait_reason.startswith("held: ")
    assert state_of(ctx, science.id).state == JobState.RUNNING  # its use is still covered
    assert {job_id for job_id, _run in executor.active()} == {science.id}
    with ctx.db.transaction(write=False) as tx:
        actions = [
            r.action
            for r in tx.all(
                tx.select(AuditRecord)
                .where(AuditRecord.subject_id == finance.id)
                .order_by(AuditRecord.id)
            )
        ]
    assert actions[-1] == "job.requeue"
    [report] = scheduler.tick()  # and it stays held
    assert finance.id not in report.started


def test_approval_audit_record_names_the_expiry(
    ctx: ServiceContext, clock: ManualClock, operator: Principal, outsider: Principal
) -> None:
    """The ``kyc.approved`` record's after-picture was taken before the expiry was set, so
    the trail showed an approval that never expires."""
    assert outsider.tenant_id is not None
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.require(Tenant, outsider.tenant_id, "tenant")
        case_id = tenant.approval_case_id
        expires = tenant.approval_expires_at
        [approved] = tx.all(
            tx.select(AuditRecord).where(
                AuditRecord.action == "kyc.approved", AuditRecord.subject_id == tenant.id
            )
        )
    assert expires is not None
    assert approved.after["case_id"] == case_id
    assert approved.after["expires_at"] == expires.isoformat()


class _RecordingLock:
    def __init__(self) -> None:
        self.released = threading.Event()

    def acquire(self) -> bool:
        return True

    def still_held(self) -> bool:
        return not self.released.is_set()

    def release(self) -> None:
        self.released.set()


def test_stopping_during_a_long_pass_keeps_the_lock_until_the_pass_ends(
    ctx: ServiceContext, demo: Any, scheduler: LiveScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``stop`` waited a while for the running pass, then gave up the leader lock anyway: a
    new leader decided beside a pass still applying decisions (split brain)."""
    lock = _RecordingLock()
    loop = SchedulerLoop(scheduler, lock=lock, interval_s=0.01)
    loop.stop_timeout_s = 0.2
    in_pass, finish = threading.Event(), threading.Event()

    def long_pass() -> list[Any]:
        in_pass.set()
        finish.wait(30)
        return []

    monkeypatch.setattr(scheduler, "tick", long_pass)
    loop.start()
    assert in_pass.wait(10)
    loop.stop()
    assert not lock.released.is_set()  # the pass still runs: nobody else may lead yet
    finish.set()
    assert lock.released.wait(10)  # given up as soon as the pass ended


def test_lease_window_passing_while_the_tenant_is_held_never_activates_it(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    outsider: Principal,
) -> None:
    """A scheduled lease of a tenant that is not approved waits; when its window passed it
    went scheduled -> active ("lease window began") -> ended: the trail said the lease of an
    unapproved tenant was activated. It ends without ever being active."""
    assert outsider.tenant_id is not None
    now = clock.now()
    lease = leases.request_lease(
        ctx,
        outsider,
        leases.LeaseRequest(
            demo_service.SITE_ID, now + timedelta(hours=1), now + timedelta(hours=2), gpus=8
        ),
    )
    leases.decide(ctx, operator, lease.id, LeaseState.APPROVED, "ok")
    with ctx.db.transaction() as tx:
        tenant = tx.require(Tenant, outsider.tenant_id, "tenant", for_update=True)
        kyc.set_standing(tx, tenant, "suspended", "suspended: new hit", clock.now(), "t")
    clock.advance(90 * 60)
    leases.tick(ctx, clock.now())  # in its window: held
    clock.advance(60 * 60)
    leases.tick(ctx, clock.now())  # its window is over
    with ctx.db.transaction(write=False) as tx:
        ended = tx.require(Lease, lease.id, "lease")
        actions = [
            a.action
            for a in tx.all(
                tx.select(AuditRecord)
                .where(AuditRecord.subject_type == "lease", AuditRecord.subject_id == lease.id)
                .order_by(AuditRecord.id)
            )
        ]
    assert ended.state == LeaseState.ENDED
    assert ended.state_reason.startswith("lease window ended unused")
    assert "lease.active" not in actions
    assert actions[-1] == "lease.ended"


def test_one_sites_failing_pass_does_not_stop_the_others(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # "aaa1" sorts before the demo's "jkt1": its pass runs first and fails
    inventory.register_site(
        ctx,
        operator,
        site_id="aaa1",
        name="Broken",
        country="SG",
        city="Singapore",
        hardware="hgx-8gpu",
        racks=1,
        serial_prefix="AAA",
    )
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(8, "financial AI", command="c", site_id=demo_service.SITE_ID),
    )
    real = scheduler._site_pass

    def failing(site_id: str, *args: Any) -> Any:
        if site_id == "aaa1":
            raise RuntimeError("site aaa1 is broken")
        return real(site_id, *args)

    monkeypatch.setattr(scheduler, "_site_pass", failing)
    reports = scheduler.tick()
    assert [r.site_id for r in reports] == [demo_service.SITE_ID]
    assert jobs.get_job(ctx, inftech, job.id).state == JobState.RUNNING


def test_a_held_job_loses_its_guarantee_claim(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    outsider: Principal,
    executor: SimulatedExecutor,
) -> None:
    """Held jobs are left out of the snapshot, so their ``guaranteed_since`` was never
    cleared: once the hold lifted, the job came back with its old claim and ranked ahead
    of claims made while it was held. A held job is not waiting within its guarantee."""
    assert inftech.tenant_id is not None
    ctx.settings = ctx.settings.model_copy(update={"preemption_grace_s": 1000.0})
    scheduler = LiveScheduler(ctx, executor, name="test-scheduler")
    borrower = jobs.submit(ctx, outsider, submission(2304, duration_s=86400))
    scheduler.tick()
    assert state_of(ctx, borrower.id).state == JobState.RUNNING
    clock.advance(5)
    claim = jobs.submit(ctx, inftech, submission(64, purpose="health-research"))
    scheduler.tick()
    assert state_of(ctx, claim.id).guaranteed_since == clock.now()

    def approve(uses: list[str]) -> None:
        with ctx.db.transaction() as tx:
            tenant = tx.require(Tenant, inftech.tenant_id, "tenant", for_update=True)
            tenant.approved_end_uses = uses

    approve(["financial-services-ai", "drug-discovery"])  # health research withdrawn
    clock.advance(100)
    scheduler.tick()
    held = state_of(ctx, claim.id)
    assert held.wait_reason.startswith("held: ")
    assert held.guaranteed_since is None
    approve(["financial-services-ai", "health-research", "drug-discovery"])
    clock.advance(100)
    scheduler.tick()
    assert state_of(ctx, claim.id).guaranteed_since == clock.now()  # a new claim
