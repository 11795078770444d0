"""Scheduler leadership with a heartbeat: a stalled leader loses leadership after the TTL,
another process takes over, and the stalled one can no longer commit what it decided."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock, to_seconds
from gpulease.domain.states import JobState
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.tables import GpuAllocation, Job, SchedulerStatus
from gpulease.scheduler.engine import Scheduler
from gpulease.scheduler.ordering import make_policy
from gpulease.services import demo as demo_service
from gpulease.services import inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduler_loop import SchedulerLoop
from gpulease.services.scheduling import LiveScheduler, LostLeadership, PassReport

SITE = demo_service.SITE_ID


def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _state(ctx: ServiceContext, job_id: str) -> str:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job").state


def test_a_leader_stalled_between_deciding_and_applying_commits_nothing(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal
) -> None:
    stalled = SchedulerLoop(LiveScheduler(ctx, SimulatedExecutor(), name="stalled"))
    successor = SchedulerLoop(LiveScheduler(ctx, SimulatedExecutor(), name="successor"))
    job = jobs.submit(ctx, inftech, jobs.JobSubmission(gpus=8, purpose="financial AI", command="x"))
    assert stalled.lock.acquire()
    scheduler = stalled.scheduler
    now = clock.now()
    topology = inventory.cached_topology(ctx, SITE)
    snap = scheduler._snapshot(SITE, now)
    decisions = Scheduler(make_policy("default"), scheduler.scheduler_config).step(
        scheduler._rebuild(topology, snap), to_seconds(now)
    )
    assert [s.job_id for s in decisions.starts] == [job.id]

    clock.advance(ctx.settings.leader_ttl_s + 1)  # paused past its TTL, connection alive
    assert successor.lock.acquire()
    with pytest.raises(LostLeadership):
        scheduler._apply(SITE, topology, snap, decisions, PassReport(SITE))
    assert _state(ctx, job.id) == JobState.QUEUED
    with ctx.db.transaction(write=False) as tx:
        assert tx.all(select(GpuAllocation).where(GpuAllocation.job_id == job.id)) == []
    assert scheduler.tick() == []  # no more passes from it
    assert not stalled.lock.acquire()

    [report] = successor.scheduler.tick()
    assert report.started == [job.id]
    with ctx.db.transaction(write=False) as tx:
        status = tx.require(SchedulerStatus, SITE, "site")
    assert status.leader == "successor"


def test_a_paused_leader_loop_is_replaced_after_the_ttl(
    ctx: ServiceContext,
    clock: ManualClock,
    demo: list[demo_service.DemoUser],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reported case: a leader paused mid-pass kept leadership for as long as it was
    paused and nobody took over. Now the other loop takes over once the lease expires."""
    loops = {
        name: SchedulerLoop(LiveScheduler(ctx, SimulatedExecutor(), name=name), interval_s=0.02)
        for name in ("first", "second")
    }
    first, second = loops["first"], loops["second"]
    paused, resume = threading.Event(), threading.Event()

    def paused_pass() -> list[Any]:
        paused.set()
        resume.wait(30)
        return []

    monkeypatch.setattr(first.scheduler, "tick", paused_pass)
    try:
        first.start()
        assert paused.wait(10)
        assert first.leading
        second.start()
        time.sleep(0.2)  # second tries several times: the lease is first's
        assert not second.leading

        clock.advance(ctx.settings.leader_ttl_s + 1)
        assert not first.leading  # its own view: the lease lapsed
        _until(lambda: second.leading, "the second loop to take over")
        resume.set()
        time.sleep(0.2)  # first tries again: its renew fails
        assert not first.leading
        assert second.leading

        def status() -> str | None:
            with ctx.db.transaction(write=False) as tx:
                row = tx.get(SchedulerStatus, SITE)
                return None if row is None else row.leader

        _until(lambda: status() == "second", "a pass of the new leader")
    finally:
        resume.set()
        for loop in loops.values():
            loop.stop()
