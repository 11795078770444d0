"""Races between the scheduler's apply phase and operators, on PostgreSQL (READ COMMITTED).

SQLite serialises writers, so these interleavings cannot happen there.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, text

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock, to_seconds
from gpulease.domain.states import JobState, NodeState
from gpulease.persistence.db import Database
from gpulease.persistence.tables import GpuAllocation, Job, Node
from gpulease.scheduler.engine import Scheduler
from gpulease.scheduler.ordering import make_policy
from gpulease.services import demo as demo_service
from gpulease.services import inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler, PassReport

SITE = demo_service.SITE_ID


def _wait_for_lock_waiters(db: Database, at_least: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with db.connect() as conn:  # a new transaction sees fresh activity statistics
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting >= at_least:
            return
        assert time.monotonic() < deadline, "the transaction never waited on the lock"
        time.sleep(0.02)


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_node_going_down_while_a_start_is_applied(
    ctx: ServiceContext,
    clock: ManualClock,
    db: Database,
    inftech: Principal,
    operator: Principal,
    scheduler: LiveScheduler,
) -> None:
    """A node taken down while the scheduler applies a start on it: either the start is
    dropped or the job is requeued; never a running job holding GPUs of a down node."""
    job = jobs.submit(
        ctx, inftech, jobs.JobSubmission(8, "financial AI", command="c", duration_s=600)
    )
    now = clock.now()
    topology = inventory.cached_topology(ctx, SITE)
    snap = scheduler._snapshot(SITE, now)
    decisions = Scheduler(make_policy("default"), scheduler.scheduler_config).step(
        scheduler._rebuild(topology, snap), to_seconds(now)
    )
    [start] = decisions.starts
    node_id = topology.node_ids[start.placement[0][0]]

    # Another session holds the GPU rows, so the apply blocks at its allocation insert
    # (the foreign-key check), after it has read the nodes as up.
    blocker = db.connect()
    blocker.execute(text("SELECT serial FROM gpus FOR UPDATE")).all()
    results: dict[str, Any] = {}

    def apply() -> None:
        try:
            report = PassReport(SITE)
            results["apply"] = scheduler._apply(SITE, topology, snap, decisions, report)
        except BaseException as error:
            results["apply_error"] = error

    def take_down() -> None:
        try:
            results["down"] = inventory.set_node_state(
                ctx, operator, node_id, NodeState.DOWN, "PSU failure"
            )
        except BaseException as error:
            results["down_error"] = error

    applying = threading.Thread(target=apply)
    applying.start()
    try:
        _wait_for_lock_waiters(db, 1)
        downing = threading.Thread(target=take_down)
        downing.start()
        downing.join(timeout=1.0)  # finishes at once unless it waits for the apply
    finally:
        blocker.rollback()
        blocker.close()
    applying.join(timeout=30)
    downing.join(timeout=30)
    assert "apply_error" not in results, results
    assert "down_error" not in results, results

    with db.transaction(write=False) as tx:
        node = tx.require(Node, node_id, "node")
        row = tx.require(Job, job.id, "job")
        open_on_down = tx.all(
            select(GpuAllocation).where(
                GpuAllocation.node_id == node_id, GpuAllocation.end.is_(None)
            )
        )
    assert node.state == NodeState.DOWN
    assert open_on_down == []
    assert row.state == JobState.QUEUED


@pytest.mark.parametrize("db_backend", ["postgresql"])
def test_a_tenants_submission_is_not_blocked_by_the_scheduler_starting_its_jobs(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    scheduler: LiveScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The apply reads the tenants of its starts under a share lock: a new job of that tenant
    (whose foreign-key check takes a key-share lock on the tenant row) commits while the
    apply's transaction is still open, instead of waiting for the whole pass."""
    from gpulease.services import decision_apply

    jobs.submit(ctx, inftech, jobs.JobSubmission(8, "financial AI", command="c", duration_s=600))
    original = decision_apply.bulk.share_tenants
    results: dict[str, Any] = {}

    def share_then_submit(tx: Any, ids: Any) -> Any:
        found = original(tx, ids)  # the apply now holds its lock on the tenant row

        def submit() -> None:
            job = jobs.submit(
                ctx, inftech, jobs.JobSubmission(8, "financial AI", command="c", duration_s=60)
            )
            results["submitted"] = job.id

        other = threading.Thread(target=submit)
        other.start()
        other.join(timeout=15)
        results["blocked"] = other.is_alive()
        return found

    monkeypatch.setattr(decision_apply.bulk, "share_tenants", share_then_submit)
    [report] = scheduler.tick()
    assert results.get("blocked") is False, "the submission waited for the scheduler's apply"
    assert "submitted" in results
    assert len(report.started) == 1
