"""The scheduler survives any one bad job, on both databases.

A job row the scheduler cannot act on (written straight into the database, as an older
version or a manual fix could), a decision that fails to apply, a launch the executor
refuses: that job is failed with the reason, audited, its GPUs released, and every other job
is scheduled as usual. A pass that fails whole (the database is unavailable) is counted and
retried by a loop that keeps running.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock, to_seconds
from gpulease.domain.states import JobState
from gpulease.executors.base import Executor
from gpulease.executors.local import LocalExecutor
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.tables import AuditRecord, GpuAllocation, Job, SchedulerStatus
from gpulease.scheduler.engine import Decisions, Start
from gpulease.services import demo as demo_service
from gpulease.services import inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduler_loop import SchedulerLoop
from gpulease.services.scheduling import LiveScheduler, PassReport

SITE = demo_service.SITE_ID


def submit(ctx: ServiceContext, who: Principal, gpus: int = 8, **fields: Any) -> Job:
    fields.setdefault("command", "train")
    fields.setdefault("duration_s", 120)
    return jobs.submit(ctx, who, jobs.JobSubmission(gpus=gpus, purpose="financial AI", **fields))


def poison(ctx: ServiceContext, job_id: str, **values: Any) -> Job:
    """Write values straight into the job's row, past every check at the edge."""
    with ctx.db.transaction() as tx:
        row = tx.require(Job, job_id, "job", for_update=True)
        for name, value in values.items():
            setattr(row, name, value)
    return row_of(ctx, job_id)


def row_of(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


def open_gpus(ctx: ServiceContext, job_id: str) -> int:
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            select(GpuAllocation).where(GpuAllocation.job_id == job_id, GpuAllocation.end.is_(None))
        )
    return len(rows)


def failed_audit(ctx: ServiceContext, job_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(AuditRecord).where(
                AuditRecord.subject_id == job_id, AuditRecord.action == "job.failed"
            )
        )


def heartbeat_ticks(ctx: ServiceContext) -> int:
    with ctx.db.transaction(write=False) as tx:
        row = tx.get(SchedulerStatus, SITE)
        return 0 if row is None else row.ticks


def assert_failed_with_reason(ctx: ServiceContext, job_id: str, *words: str) -> Job:
    bad = row_of(ctx, job_id)
    assert bad.state == JobState.FAILED
    assert bad.end_reason.startswith("failed by the scheduler: ")
    for word in words:
        assert word in bad.end_reason
    assert open_gpus(ctx, job_id) == 0
    [record] = failed_audit(ctx, job_id)
    assert record.actor == "scheduler"
    return bad


def run_passes(
    scheduler: LiveScheduler, clock: ManualClock, ctx: ServiceContext, passes: int, step_s: float
) -> list[PassReport]:
    """Run passes; each must report on the site and beat the heartbeat (none failed)."""
    reports = []
    for _ in range(passes):
        before = heartbeat_ticks(ctx)
        [report] = scheduler.tick()
        assert heartbeat_ticks(ctx) == before + 1
        reports.append(report)
        clock.advance(step_s)
    return reports


POISONS: dict[str, tuple[dict[str, Any], str]] = {
    "duration 1e12": ({"duration_s": 1e12}, "duration_s"),
    "duration 1e308": ({"duration_s": 1e308}, "duration_s"),
    "duration infinite": ({"duration_s": math.inf}, "duration_s"),
    "duration NaN": ({"duration_s": math.nan}, "duration_s"),
    "duration negative": ({"duration_s": -5.0}, "duration_s"),
    "walltime 1e300": ({"walltime_s": 1e300}, "walltime_s"),
    "walltime infinite": ({"walltime_s": math.inf}, "walltime_s"),
    "walltime NaN": ({"walltime_s": math.nan}, "walltime_s"),
    "walltime negative": ({"walltime_s": -5.0}, "walltime"),
    "no GPUs": ({"gpus": 0}, "gpus"),
    "unknown topology": ({"topology": "sideways"}, "sideways"),
    "unknown priority": ({"priority": "urgent"}, "urgent"),
    "never fits": ({"gpus": 8, "gpus_per_node": 1000}, "gpus_per_node"),
}


@pytest.mark.parametrize("name", list(POISONS))
def test_a_poisoned_queued_job_is_failed_and_the_others_run(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    bank: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
    name: str,
) -> None:
    values, word = POISONS[name]
    good = submit(ctx, bank, duration_s=120)
    bad = submit(ctx, inftech)
    stored = poison(ctx, bad.id, **values)
    if any(getattr(stored, k) is None for k in values):
        pytest.skip("this database stores NaN as NULL: nothing poisoned")

    first, *_ = run_passes(scheduler, clock, ctx, passes=1, step_s=60)
    assert first.failed == [bad.id]
    assert first.started == [good.id]
    assert_failed_with_reason(ctx, bad.id, word)
    run_passes(scheduler, clock, ctx, passes=3, step_s=60)
    done = row_of(ctx, good.id)
    assert done.state == JobState.SUCCEEDED
    assert done.ended_at is not None
    assert done.started_at is not None
    assert to_seconds(done.ended_at) - to_seconds(done.started_at) == 120
    assert executor.active() == set()
    assert len(failed_audit(ctx, bad.id)) == 1  # failed once, never again


def test_a_running_job_poisoned_under_way_is_failed_and_its_gpus_freed(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    bank: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    """The reported outage: a huge duration on a run the executor must adopt after a
    failover overflowed on every pass."""
    running = submit(ctx, inftech, gpus=64, duration_s=600)
    run_passes(scheduler, clock, ctx, passes=1, step_s=10)
    assert open_gpus(ctx, running.id) == 64
    poison(ctx, running.id, duration_s=1e308)
    successor_executor = SimulatedExecutor()  # a new leader adopts the runs it finds
    successor = LiveScheduler(ctx, successor_executor, name="successor")
    good = submit(ctx, bank, duration_s=30)
    [report] = run_passes(successor, clock, ctx, passes=1, step_s=60)
    assert report.failed == [running.id]
    assert report.started == [good.id]
    assert_failed_with_reason(ctx, running.id, "duration_s")
    assert successor_executor.active() == {(good.id, 1)}
    run_passes(successor, clock, ctx, passes=1, step_s=60)
    assert row_of(ctx, good.id).state == JobState.SUCCEEDED


def test_a_running_job_without_gpus_is_failed_not_the_pass(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    bank: Principal,
    scheduler: LiveScheduler,
) -> None:
    """A running job whose allocation rows were closed by hand contradicts itself: the core
    cannot place it back, and every pass used to fail on it."""
    broken = submit(ctx, inftech, gpus=16, duration_s=600)
    run_passes(scheduler, clock, ctx, passes=1, step_s=10)
    with ctx.db.transaction() as tx:
        for row in tx.all(select(GpuAllocation).where(GpuAllocation.job_id == broken.id)):
            row.end = clock.now()
    # an edit by hand reaches the scheduler when it next rebuilds (a consistency check)
    scheduler.reset_state()
    good = submit(ctx, bank, duration_s=30)
    [report] = run_passes(scheduler, clock, ctx, passes=1, step_s=60)
    assert report.failed == [broken.id]
    assert report.started == [good.id]
    assert_failed_with_reason(ctx, broken.id, "placement")
    run_passes(scheduler, clock, ctx, passes=1, step_s=60)
    assert row_of(ctx, good.id).state == JobState.SUCCEEDED


def test_a_start_that_fails_to_apply_fails_that_job_and_the_rest_is_applied(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    bank: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    """A stray open allocation (a finished job's GPUs never closed) makes one start fail
    while it is applied; the whole apply used to roll back, on every pass."""
    stray_owner = submit(ctx, bank, gpus=4)
    doomed, fine = submit(ctx, inftech, gpus=4), submit(ctx, bank, gpus=4)
    topology = inventory.cached_topology(ctx, SITE)
    blocked, free = topology.node_ids[0], topology.node_ids[1]
    with ctx.db.transaction() as tx:
        gpu_rows = tx.session.execute(
            text("SELECT serial, slot FROM gpus WHERE node_id = :n ORDER BY slot"), {"n": blocked}
        ).all()
        for serial, slot in gpu_rows:
            tx.add(
                GpuAllocation(
                    job_id=stray_owner.id,
                    tenant_id=bank.tenant_id,
                    node_id=blocked,
                    gpu_serial=serial,
                    slot=slot,
                    purpose="financial AI",
                    start=clock.now(),
                    end=None,
                )
            )
    now = clock.now()
    snap = scheduler._snapshot(SITE, now)
    decisions = Decisions(
        now=to_seconds(now),
        starts=[
            Start(doomed.id, ((topology.node_index[blocked], 4),), False),
            Start(fine.id, ((topology.node_index[free], 4),), False),
        ],
    )
    report = PassReport(SITE)
    launches = scheduler._apply(SITE, topology, snap, decisions, report).launches
    assert [launch.job_id for launch in launches] == [fine.id]
    assert report.started == [fine.id]
    assert report.failed == [doomed.id]
    assert row_of(ctx, fine.id).state == JobState.RUNNING
    assert open_gpus(ctx, fine.id) == 4
    bad = assert_failed_with_reason(ctx, doomed.id, "could not start it")
    assert bad.starts == 0


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("refused", ["over-long command", "NUL in the command"])
def test_a_launch_the_local_executor_refuses_fails_that_job_only(
    ctx: ServiceContext,
    inftech: Principal,
    bank: Principal,
    db_backend: str,
    refused: str,
) -> None:
    if refused == "NUL in the command" and db_backend == "postgresql":
        pytest.skip("PostgreSQL text cannot hold NUL: such a row cannot exist there")
    executor: Executor = LocalExecutor(kill_after_s=1)
    scheduler = LiveScheduler(ctx, executor, name="local")
    try:
        good = submit(ctx, bank, gpus=4, command="true")
        bad = submit(ctx, inftech, gpus=4, command="true")
        # a single argument longer than the kernel takes (128 KiB), or one with a NUL
        command = "echo " + "x" * 300_000 if refused == "over-long command" else "echo \x00"
        poison(ctx, bad.id, command=command)
        [report] = scheduler.tick()
        assert sorted(report.started) == sorted([good.id, bad.id])  # both decided and applied
        if report.failed:  # refused at launch (else its run fails with its exit code)
            assert report.failed == [bad.id]
            assert_failed_with_reason(ctx, bad.id, "could not launch")

        def settled() -> bool:
            [_report] = scheduler.tick()
            return row_of(ctx, good.id).state == JobState.SUCCEEDED

        _wait_for(settled, "the good job to succeed")
        bad_row = row_of(ctx, bad.id)
        assert bad_row.state == JobState.FAILED
        assert bad_row.end_reason
        assert open_gpus(ctx, bad.id) == 0
        assert scheduler.failed_passes == 0
    finally:
        executor.close()


def test_a_pass_that_fails_whole_is_counted_and_the_loop_goes_on(
    ctx: ServiceContext,
    db_backend: str,
    inftech: Principal,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database refuses every pass for a while (a table is missing); the loop logs and
    counts the failures and schedules again once the database is back."""
    loop = SchedulerLoop(LiveScheduler(ctx, SimulatedExecutor(), name="loop"), interval_s=0.05)
    job = submit(ctx, inftech, gpus=8, duration_s=3600)
    with ctx.db.connect() as conn:
        conn.execute(text("ALTER TABLE sites RENAME TO sites_away"))
        conn.commit()
    renamed = True
    try:
        with caplog.at_level(logging.ERROR, logger="gpulease.scheduler"):
            loop.start()
            _wait_for(lambda: loop.failed_passes >= 3, "failed passes")
            assert loop._thread is not None
            assert loop._thread.is_alive()
            assert loop.leading
            assert row_of(ctx, job.id).state == JobState.QUEUED
            with ctx.db.connect() as conn:
                conn.execute(text("ALTER TABLE sites_away RENAME TO sites"))
                conn.commit()
            renamed = False
            _wait_for(lambda: row_of(ctx, job.id).state == JobState.RUNNING, "the job to start")
        assert any("scheduler pass failed" in r.getMessage() for r in caplog.records)
    finally:
        loop.stop()
        if renamed:
            with ctx.db.connect() as conn:
                conn.execute(text("ALTER TABLE sites_away RENAME TO sites"))
                conn.commit()


def test_a_row_the_database_refuses_at_the_batch_flush_fails_only_its_job(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    bank: Principal,
    scheduler: LiveScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The applier writes a pass's decisions with one flush; when the database refuses one
    row there (here an allocation naming a GPU that does not exist), the pass is redone one
    decision at a time: that job is failed, saying why, and the others start."""
    from gpulease.services import decision_apply

    doomed = submit(ctx, inftech, gpus=4, duration_s=600)
    fine = submit(ctx, bank, gpus=4, duration_s=600)
    original = decision_apply.runs.start_run

    def start_run(tx: Any, job: Job, *args: Any, **kwargs: Any) -> Any:
        taken = original(tx, job, *args, **kwargs)
        if job.id == doomed.id:
            taken[0].gpu_serial = "NO-SUCH-GPU"  # the foreign key refuses it at flush
        return taken

    monkeypatch.setattr(decision_apply.runs, "start_run", start_run)
    [report] = run_passes(scheduler, clock, ctx, passes=1, step_s=5)
    assert report.started == [fine.id]
    assert report.failed == [doomed.id]
    assert row_of(ctx, fine.id).state == JobState.RUNNING
    assert open_gpus(ctx, fine.id) == 4
    assert_failed_with_reason(ctx, doomed.id, "could not start it")
