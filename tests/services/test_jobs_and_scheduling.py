"""Jobs through the live scheduler on a real database: lifecycle, allocations, cancel, node
failure, walltime, reclaim, stale decisions, failover, idempotency and tenant isolation."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Any

import pytest
from sqlalchemy import func, select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock, to_seconds
from gpulease.domain.errors import IdempotencyMismatch, InvalidRequest, NotFound
from gpulease.domain.states import JobState, NodeState
from gpulease.executors.local import LocalExecutor
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.tables import (
    AuditRecord,
    Gpu,
    GpuAllocation,
    IdempotencyRecord,
    Job,
    Node,
)
from gpulease.scheduler.engine import Scheduler
from gpulease.scheduler.ordering import make_policy
from gpulease.services import demo as demo_service
from gpulease.services import inventory, job_logs, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.idempotency import Idempotent
from gpulease.services.scheduling import LiveScheduler, PassReport

SITE = demo_service.SITE_ID


def submission(gpus: int = 64, **fields: Any) -> jobs.JobSubmission:
    fields.setdefault("purpose", "financial AI")
    fields.setdefault("command", "train")
    fields.setdefault("duration_s", 120)
    return jobs.JobSubmission(gpus=gpus, **fields)


def allocations(ctx: ServiceContext, job_id: str) -> list[GpuAllocation]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(GpuAllocation).where(GpuAllocation.job_id == job_id).order_by(GpuAllocation.id)
        )


def audit_actions(ctx: ServiceContext, job_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(AuditRecord)
            .where(AuditRecord.subject_type == "job", AuditRecord.subject_id == job_id)
            .order_by(AuditRecord.id)
        )


def count(ctx: ServiceContext, model: type) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(model)) or 0)


def state_of(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


# ----------------------------------------------------------------------------- lifecycle
def test_job_lifecycle_with_allocations_and_audit(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = jobs.submit(ctx, inftech, submission(64))
    assert job.state == JobState.QUEUED
    assert job.wait_reason

    [report] = scheduler.tick()
    assert report.started == [job.id]
    running = state_of(ctx, job.id)
    assert running.state == JobState.RUNNING
    assert running.started_at == clock.now()
    assert running.starts == 1
    assert executor.active() == {(job.id, 1)}

    rows = allocations(ctx, job.id)
    assert len(rows) == 64
    assert all(r.end is None for r in rows)
    assert len({r.gpu_serial for r in rows}) == 64
    with ctx.db.transaction(write=False) as tx:
        gpus = {
            g.serial: g
            for g in tx.all(select(Gpu).where(Gpu.serial.in_([r.gpu_serial for r in rows])))
        }
    assert set(gpus) == {r.gpu_serial for r in rows}  # real serials of real chips
    assert all(gpus[r.gpu_serial].node_id == r.node_id for r in rows)
    assert all(gpus[r.gpu_serial].slot == r.slot for r in rows)
    assert all(r.tenant_id == inftech.tenant_id and r.purpose == "financial AI" for r in rows)

    clock.advance(60)
    scheduler.tick()
    assert state_of(ctx, job.id).state == JobState.RUNNING
    clock.advance(70)
    [report] = scheduler.tick()
    assert report.finished == [job.id]
    done = state_of(ctx, job.id)
    assert done.state == JobState.SUCCEEDED
    assert done.exit_code == 0
    assert done.ended_at is not None
    assert to_seconds(done.ended_at) - to_seconds(running.started_at) == 120
    assert done.attained_gpu_s == 64 * 120
    closed = allocations(ctx, job.id)
    assert len(closed) == 64
    assert all(r.end == done.ended_at for r in closed)
    assert executor.active() == set()
    assert "finished" in job_logs.text(ctx, inftech, job.id)

    records = audit_actions(ctx, job.id)
    assert [r.action for r in records] == ["job.submit", "job.start", "job.succeeded"]
    assert records[1].before is not None
    assert records[1].before["state"] == "queued"
    assert records[1].after is not None
    assert records[1].after["state"] == "running"
    assert records[2].after is not None
    assert records[2].after["exit_code"] == 0
    assert records[2].actor == "scheduler"


def test_cancel_running_job_stops_it(
    ctx: ServiceContext,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = jobs.submit(ctx, inftech, submission(8, duration_s=3600))
    scheduler.tick()
    assert executor.active() == {(job.id, 1)}
    cancelled = jobs.cancel(ctx, inftech, job.id, "wrong dataset")
    assert cancelled.state == JobState.CANCELLED
    assert all(r.end is not None for r in allocations(ctx, job.id))
    scheduler.tick()
    assert executor.active() == set()
    assert state_of(ctx, job.id).state == JobState.CANCELLED
    assert state_of(ctx, job.id).end_reason == "wrong dataset"
    assert [r.action for r in audit_actions(ctx, job.id)][-1] == "job.cancelled"


def test_node_down_requeues_and_job_restarts_elsewhere(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    operator: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = jobs.submit(ctx, inftech, submission(64, duration_s=3600))
    scheduler.tick()
    first = allocations(ctx, job.id)
    failed_node = first[0].node_id

    clock.advance(10)
    node, hit = inventory.set_node_state(
        ctx, operator, failed_node, NodeState.DOWN, "GPU fell off the bus"
    )
    assert node.state == NodeState.DOWN
    assert hit == [job.id]
    requeued = state_of(ctx, job.id)
    assert requeued.state == JobState.QUEUED
    assert requeued.preemptions == 1
    assert "GPU fell off the bus" in requeued.wait_reason
    assert all(r.end == clock.now() for r in allocations(ctx, job.id))

    clock.advance(1)
    [report] = scheduler.tick()
    assert report.started == [job.id]
    restarted = state_of(ctx, job.id)
    assert restarted.state == JobState.RUNNING
    assert restarted.starts == 2
    assert executor.active() == {(job.id, 2)}
    second = [r for r in allocations(ctx, job.id) if r.end is None]
    assert len(second) == 64
    assert failed_node not in {r.node_id for r in second}
    actions = [r.action for r in audit_actions(ctx, job.id)]
    assert actions == ["job.submit", "job.start", "job.requeue", "job.start"]


def test_walltime_exceeded_fails_the_job(
    ctx: ServiceContext,
    clock: ManualClock,
    bank: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = jobs.submit(ctx, bank, submission(4, walltime_s=60, duration_s=3600))
    scheduler.tick()
    assert state_of(ctx, job.id).state == JobState.RUNNING
    clock.advance(59)
    scheduler.tick()
    assert state_of(ctx, job.id).state == JobState.RUNNING
    clock.advance(2)
    [report] = scheduler.tick()
    assert report.timed_out == [job.id]
    failed = state_of(ctx, job.id)
    assert failed.state == JobState.FAILED
    assert failed.end_reason == "walltime exceeded"
    assert executor.active() == set()
    assert all(r.end == clock.now() for r in allocations(ctx, job.id))


def test_reclaim_preempts_the_borrower_after_the_grace(
    ctx: ServiceContext,
    clock: ManualClock,
    bank: Principal,
    outsider: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    # a tenant without a lease borrows the whole idle site
    borrower = jobs.submit(ctx, outsider, submission(2304, duration_s=86400))
    scheduler.tick()
    running = state_of(ctx, borrower.id)
    assert running.state == JobState.RUNNING
    assert running.borrowed

    # the bank submits within its 128-GPU guarantee: the borrower gets a notice
    clock.advance(5)
    mine = jobs.submit(ctx, bank, submission(128, duration_s=600))
    [report] = scheduler.tick()
    assert report.notices == [borrower.id]
    noticed = state_of(ctx, borrower.id)
    assert noticed.state == JobState.RUNNING
    grace = ctx.settings.preemption_grace_s
    assert noticed.preempt_at is not None
    assert to_seconds(noticed.preempt_at) == to_seconds(clock.now()) + grace
    assert noticed.preempt_reason
    claim = state_of(ctx, mine.id).guaranteed_since
    assert claim == clock.now()  # its claim began now; kept across passes
    assert state_of(ctx, mine.id).state == JobState.QUEUED
    assert "preempt" in state_of(ctx, mine.id).wait_reason

    # during the grace nothing moves
    clock.advance(grace / 2)
    scheduler.tick()
    assert state_of(ctx, borrower.id).state == JobState.RUNNING
    assert state_of(ctx, mine.id).guaranteed_since == claim

    clock.advance(grace / 2 + 1)
    [report] = scheduler.tick()
    assert report.requeued == [borrower.id]
    assert report.started == [mine.id]
    assert state_of(ctx, borrower.id).state == JobState.QUEUED
    assert state_of(ctx, borrower.id).wait_reason.startswith("requeued:")
    assert state_of(ctx, mine.id).guaranteed_since is None  # served
    assert state_of(ctx, mine.id).state == JobState.RUNNING
    assert not state_of(ctx, mine.id).borrowed
    assert executor.active() == {(mine.id, 1)}
    actions = [r.action for r in audit_actions(ctx, borrower.id)]
    assert actions == ["job.submit", "job.start", "job.preempt_notice", "job.requeue"]


def test_never_fitting_job_is_refused_at_submit(ctx: ServiceContext, inftech: Principal) -> None:
    with pytest.raises(InvalidRequest) as caught:
        jobs.submit(ctx, inftech, submission(80, topology="required"))
    assert "NVLink domain" in caught.value.message
    assert caught.value.details == {"field": "gpus"}
    assert count(ctx, Job) == 0


def test_waiting_job_says_why_in_words(
    ctx: ServiceContext,
    inftech: Principal,
    outsider: Principal,
    scheduler: LiveScheduler,
) -> None:
    small = jobs.submit(ctx, inftech, submission(64, duration_s=3600))
    big = jobs.submit(ctx, outsider, submission(2304, duration_s=3600))
    scheduler.tick()
    assert state_of(ctx, small.id).state == JobState.RUNNING
    waiting = state_of(ctx, big.id)
    assert waiting.state == JobState.QUEUED
    assert waiting.wait_reason != "waiting for the scheduler's next pass"
    assert "GPU" in waiting.wait_reason
    assert len(waiting.wait_reason.split()) >= 3


def test_local_executor_runs_a_real_command(
    ctx: ServiceContext, inftech: Principal, clock: ManualClock
) -> None:
    local = LocalExecutor(kill_after_s=2)
    scheduler = LiveScheduler(ctx, local, name="local-test")
    try:
        job = jobs.submit(
            ctx,
            inftech,
            submission(4, command="echo $CUDA_VISIBLE_DEVICES $GPULEASE_JOB_ID; exit 3"),
        )
        scheduler.tick()
        assert state_of(ctx, job.id).state == JobState.RUNNING
        deadline = time.monotonic() + 20
        while state_of(ctx, job.id).state == JobState.RUNNING:
            assert time.monotonic() < deadline, "the command did not finish"
            time.sleep(0.05)
            clock.advance(1)
            scheduler.tick()
        done = state_of(ctx, job.id)
        assert done.state == JobState.FAILED
        assert done.exit_code == 3
        assert done.end_reason == "exit 3"
        rows = allocations(ctx, job.id)
        slots = ",".join(str(r.slot) for r in sorted(rows, key=lambda r: r.slot))
        assert len({r.node_id for r in rows}) == 1
        assert slots == "0,1,2,3"
        assert f"{slots} {job.id}" in job_logs.text(ctx, inftech, job.id)
        assert all(r.end is not None for r in rows)
    finally:
        local.close()


def test_stale_decision_is_dropped(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    job = jobs.submit(ctx, inftech, submission(64))
    now = clock.now()
    topology = inventory.cached_topology(ctx, SITE)
    snap = scheduler._snapshot(SITE, now)
    state = scheduler._rebuild(topology, snap)
    decisions = Scheduler(make_policy("default"), scheduler.scheduler_config).step(
        state, to_seconds(now)
    )
    assert [s.job_id for s in decisions.starts] == [job.id]

    jobs.cancel(ctx, inftech, job.id, "changed my mind")  # between snapshot and apply

    report = PassReport(SITE)
    launches = scheduler._apply(SITE, topology, snap, decisions, report).launches
    assert launches == []
    assert report.stale == 1
    assert report.started == []
    assert state_of(ctx, job.id).state == JobState.CANCELLED
    assert allocations(ctx, job.id) == []
    assert executor.active() == set()


def test_failover_adopts_running_jobs(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    bank: Principal,
    scheduler: LiveScheduler,
) -> None:
    first = jobs.submit(ctx, inftech, submission(64, duration_s=120))
    second = jobs.submit(ctx, bank, submission(32, duration_s=300))
    scheduler.tick()
    assert {state_of(ctx, j.id).state for j in (first, second)} == {JobState.RUNNING}

    # the leader dies; a new one starts with an executor that knows nothing
    successor_executor = SimulatedExecutor()
    successor = LiveScheduler(ctx, successor_executor, name="successor")
    clock.advance(60)
    [report] = successor.tick()
    assert report.requeued == []
    assert report.started == []
    assert successor_executor.active() == {(first.id, 1), (second.id, 1)}
    assert state_of(ctx, first.id).state == JobState.RUNNING

    clock.advance(70)
    successor.tick()
    assert state_of(ctx, first.id).state == JobState.SUCCEEDED
    assert state_of(ctx, second.id).state == JobState.RUNNING
    clock.advance(200)
    successor.tick()
    done = state_of(ctx, second.id)
    assert done.state == JobState.SUCCEEDED
    assert done.starts == 1  # adopted, never restarted
    assert "adopted after failover" in job_logs.text(ctx, bank, second.id)
    assert successor_executor.active() == set()


# --------------------------------------------------------------------------- idempotency
def test_idempotent_submit(ctx: ServiceContext, inftech: Principal) -> None:
    sub = submission(8)
    idem = Idempotent.of("key-1", "job.submit", asdict(sub))
    first = jobs.submit(ctx, inftech, sub, idem)
    again = jobs.submit(ctx, inftech, sub, Idempotent.of("key-1", "job.submit", asdict(sub)))
    assert again.id == first.id
    assert count(ctx, Job) == 1
    assert count(ctx, IdempotencyRecord) == 1

    other = submission(16)
    with pytest.raises(IdempotencyMismatch):
        jobs.submit(ctx, inftech, other, Idempotent.of("key-1", "job.submit", asdict(other)))
    assert count(ctx, Job) == 1
    # another key is another job
    third = jobs.submit(ctx, inftech, sub, Idempotent.of("key-2", "job.submit", asdict(sub)))
    assert third.id != first.id
    assert count(ctx, Job) == 2
    assert Idempotent.of(None, "job.submit", {}) is None
    with pytest.raises(InvalidRequest):
        Idempotent.of("", "job.submit", {})


def test_idempotency_keys_are_per_user(
    ctx: ServiceContext, inftech: Principal, bank: Principal
) -> None:
    sub = submission(8)
    a = jobs.submit(ctx, inftech, sub, Idempotent.of("same", "job.submit", asdict(sub)))
    b = jobs.submit(ctx, bank, sub, Idempotent.of("same", "job.submit", asdict(sub)))
    assert a.id != b.id
    assert (a.tenant_id, b.tenant_id) == (inftech.tenant_id, bank.tenant_id)


def test_concurrent_same_key_submits_create_one_job(
    ctx: ServiceContext, inftech: Principal
) -> None:
    sub = submission(8)
    threads = 6
    barrier = threading.Barrier(threads)
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def go() -> None:
        barrier.wait()
        try:
            job = jobs.submit(
                ctx, inftech, sub, Idempotent.of("retry-storm", "job.submit", asdict(sub))
            )
        except BaseException as error:
            with lock:
                errors.append(error)
        else:
            with lock:
                ids.append(job.id)

    workers = [threading.Thread(target=go) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert errors == []
    assert len(ids) == threads
    assert len(set(ids)) == 1
    assert count(ctx, Job) == 1
    assert count(ctx, IdempotencyRecord) == 1


# ------------------------------------------------------------------------------ isolation
def test_tenant_isolation_of_jobs(
    ctx: ServiceContext,
    inftech: Principal,
    bank: Principal,
    operator: Principal,
    scheduler: LiveScheduler,
) -> None:
    theirs = jobs.submit(ctx, inftech, submission(8))
    mine = jobs.submit(ctx, bank, submission(8))
    with pytest.raises(NotFound) as caught:
        jobs.get_job(ctx, bank, theirs.id)
    assert caught.value.code == "not_found"
    with pytest.raises(NotFound):
        jobs.cancel(ctx, bank, theirs.id)
    with pytest.raises(NotFound):
        job_logs.text(ctx, bank, theirs.id)
    assert state_of(ctx, theirs.id).state == JobState.QUEUED  # untouched
    assert [j.id for j in jobs.list_jobs(ctx, bank)] == [mine.id]
    assert [j.id for j in jobs.list_jobs(ctx, inftech)] == [theirs.id]
    assert {j.id for j in jobs.list_jobs(ctx, operator)} == {theirs.id, mine.id}
    # a tenant naming another tenant on submit is told it does not exist
    with pytest.raises(NotFound):
        jobs.submit(ctx, bank, submission(8, tenant_id=inftech.tenant_id))
    # nor can it run on another tenant's lease
    [inftech_lease] = [lease for lease in _leases(ctx) if lease[1] == inftech.tenant_id]
    with pytest.raises(InvalidRequest):
        jobs.submit(ctx, bank, submission(8, lease_id=inftech_lease[0]))
    # nodes: tenants see capacity, not who uses it
    scheduler.tick()
    views = inventory.list_nodes(ctx, bank, SITE)
    assert all(v.tenants == () for v in views)
    assert any(v.tenants for v in inventory.list_nodes(ctx, operator, SITE))


def _leases(ctx: ServiceContext) -> list[tuple[str, str]]:
    from gpulease.persistence.tables import Lease

    with ctx.db.transaction(write=False) as tx:
        return [(lease.id, lease.tenant_id) for lease in tx.all(select(Lease))]


def test_long_reasons_fit_their_columns(
    ctx: ServiceContext,
    inftech: Principal,
    operator: Principal,
    scheduler: LiveScheduler,
) -> None:
    """A reason longer than its column is clipped, on PostgreSQL as on SQLite; the audit
    record keeps the long text."""
    job = jobs.submit(ctx, inftech, submission(8, duration_s=3600))
    scheduler.tick()
    node_id = allocations(ctx, job.id)[0].node_id
    long_reason = "thermal alarm " * 50  # 700 characters
    node, hit = inventory.set_node_state(ctx, operator, node_id, NodeState.DOWN, long_reason)
    assert hit == [job.id]
    assert len(node.state_reason) == 500
    requeued = state_of(ctx, job.id)
    assert len(requeued.wait_reason) == 500
    assert requeued.wait_reason.startswith("requeued: node ")
    cancelled = jobs.cancel(ctx, inftech, job.id, "x" * 600)
    assert cancelled.state == JobState.CANCELLED
    assert len(state_of(ctx, job.id).end_reason) == 500
    assert audit_actions(ctx, job.id)[-1].reason == "x" * 600


def test_failover_with_local_executor_requeues_lost_runs(
    ctx: ServiceContext, inftech: Principal
) -> None:
    """A local run started by a dead leader cannot be adopted: it is requeued and run again."""
    old_executor, new_executor = LocalExecutor(kill_after_s=1), LocalExecutor(kill_after_s=1)
    try:
        job = jobs.submit(ctx, inftech, submission(4, command="sleep 30"))
        LiveScheduler(ctx, old_executor, name="old").tick()
        assert old_executor.active() == {(job.id, 1)}
        [report] = LiveScheduler(ctx, new_executor, name="new").tick()
        assert report.requeued == [job.id]
        assert report.started == [job.id]
        restarted = state_of(ctx, job.id)
        assert restarted.state == JobState.RUNNING
        assert restarted.starts == 2
        assert new_executor.active() == {(job.id, 2)}
        reasons = [r.reason for r in audit_actions(ctx, job.id) if r.action == "job.requeue"]
        assert reasons == ["its run was lost with the executor that ran it"]
        assert len([r for r in allocations(ctx, job.id) if r.end is None]) == 4
    finally:
        old_executor.close()
        new_executor.close()


def test_overlong_purpose_or_name_is_refused_on_both_databases(
    ctx: ServiceContext, inftech: Principal
) -> None:
    before = len(jobs.list_jobs(ctx, inftech, limit=5000))
    for fields in ({"purpose": "financial AI: " + "x" * 300}, {"name": "n" * 201}):
        with pytest.raises(InvalidRequest) as caught:
            jobs.submit(ctx, inftech, submission(4, **fields))
        assert caught.value.details["field"] == next(iter(fields))
    assert len(jobs.list_jobs(ctx, inftech, limit=5000)) == before


def test_fair_share_usage_is_counted_per_site(
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    inftech: Principal,
    scheduler: LiveScheduler,
) -> None:
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
    job = jobs.submit(ctx, inftech, submission(8, site_id="sgp1", duration_s=60))
    scheduler.tick()
    clock.advance(61)
    scheduler.tick()
    assert jobs.get_job(ctx, inftech, job.id).state == JobState.SUCCEEDED
    away = scheduler._snapshot("sgp1", clock.now()).usage
    home = scheduler._snapshot(SITE, clock.now()).usage
    assert [(tenant, round(gpu_s)) for tenant, gpu_s, _ in away] == [(inftech.tenant_id, 60)] * 8
    assert home == []


def test_keep_blocks_setting_reaches_the_live_scheduler(
    ctx: ServiceContext, inftech: Principal, executor: SimulatedExecutor
) -> None:
    """GPULEASE_KEEP_BLOCKS=64: with two gangs running, a 16-GPU job goes to the two trays
    each gang leaves in its rack, not into a free rack whose 64-GPU block a gang needs."""
    ctx.settings = ctx.settings.model_copy(update={"keep_blocks": 64})
    scheduler = LiveScheduler(ctx, executor, name="test-scheduler")
    gang = {"topology": "required", "segment": 64, "gpus_per_node": 4, "duration_s": 3600}
    gangs = [jobs.submit(ctx, inftech, submission(64, **gang)) for _ in range(2)]
    [report] = scheduler.tick()
    assert sorted(report.started) == sorted(g.id for g in gangs)
    medium = jobs.submit(ctx, inftech, submission(16, duration_s=3600))
    [report] = scheduler.tick()
    assert report.started == [medium.id]
    with ctx.db.transaction(write=False) as tx:
        rack_of = {n.id: n.rack_id for n in tx.all(select(Node).where(Node.site_id == SITE))}
    gang_racks = {rack_of[r.node_id] for g in gangs for r in allocations(ctx, g.id)}
    assert len(gang_racks) == 2
    assert {rack_of[r.node_id] for r in allocations(ctx, medium.id)} == gang_racks
