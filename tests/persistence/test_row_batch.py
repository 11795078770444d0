"""The rows a pass writes set at a time (``bulk.RowBatch``) are exactly the rows the session
writes one by one: allocation rows, closed runs and audit records, on each database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict
from gpulease.domain.states import JobState
from gpulease.persistence import bulk
from gpulease.persistence.change_feed import writing_as
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AuditRecord, GpuAllocation, Job, SchedulerChange
from gpulease.services import audit, inventory, jobs, runs
from gpulease.services.context import ServiceContext
from live_support import SITE, job_of

# columns that name the row or the chip, not what was recorded about it
_ALLOCATION_IDS = {"id", "job_id", "node_id", "gpu_serial"}


def _allocations(tx: Tx, job_id: str) -> list[dict[str, Any]]:
    rows = tx.all(
        select(GpuAllocation).where(GpuAllocation.job_id == job_id).order_by(GpuAllocation.slot)
    )
    return [
        {
            c: getattr(r, c)
            for c in GpuAllocation.__table__.columns.keys()  # noqa: SIM118
            if c not in _ALLOCATION_IDS
        }
        for r in rows
    ]


def _trail(tx: Tx, job_id: str) -> list[tuple[Any, ...]]:
    """The job's audit records, oldest first, with whether each JSON field is SQL NULL."""
    a = AuditRecord
    rows = tx.session.execute(
        select(
            a.at,
            a.actor,
            a.action,
            a.before,
            a.after,
            a.reason,
            a.before.is_(None),
            a.after.is_(None),
        )
        .where(a.subject_id == job_id)
        .order_by(a.id)
    )
    return [tuple(row) for row in rows]


def _node_of(tx: Tx, ctx: ServiceContext, gpus: int, taken: set[str]) -> str:
    topology = inventory.cached_topology(ctx, SITE)
    free = bulk.free_gpus(tx, list(topology.node_ids))
    return next(n for n in topology.node_ids if n not in taken and len(free[n]) >= gpus)


def test_a_batch_writes_the_rows_the_session_writes(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal
) -> None:
    one, other = (jobs.submit(ctx, inftech, job_of(2, 60.0)) for _ in range(2))
    start = clock.now()
    with ctx.db.transaction() as tx:
        locked = bulk.lock_jobs(tx, [one.id, other.id])
        first = _node_of(tx, ctx, 2, set())
        second = _node_of(tx, ctx, 2, {first})
        free = bulk.free_gpus(tx, [first, second])
        batch = bulk.RowBatch()
        held = runs.start_run(
            tx, locked[one.id], [(first, 2)], start, borrowed=True, actor="t", free=free,
            batch=batch,
        )  # fmt: skip
        rows = runs.start_run(
            tx, locked[other.id], [(second, 2)], start, borrowed=True, actor="t", free=free
        )
        tx.flush()
        batch.write(tx)
        assert len(rows) == 2
    end = start + timedelta(seconds=30)
    with ctx.db.transaction() as tx:
        locked = bulk.lock_jobs(tx, [one.id, other.id])
        batch = bulk.RowBatch()
        runs.stop_run(tx, locked[one.id], end, JobState.SUCCEEDED, reason="exit 0",
                      actor="t", exit_code=0, batch=batch)  # fmt: skip
        runs.stop_run(tx, locked[other.id], end, JobState.SUCCEEDED, reason="exit 0",
                      actor="t", exit_code=0)  # fmt: skip
        # an audit record with no before (a preemption notice's): JSON null, as the session's
        notice: dict[str, Any] = {"at": end, "actor": "t", "action": "job.note",
                                  "subject_type": "job", "after": {"n": 1}}  # fmt: skip
        batch.audit.append(audit.values(subject_id=one.id, **notice))
        audit.record(tx, subject_id=other.id, **notice)
        tx.flush()
        batch.write(tx)
    with ctx.db.transaction(write=False) as tx:
        batched, alone = _allocations(tx, one.id), _allocations(tx, other.id)
        assert len(batched) == 2
        assert batched == alone
        assert all(row["end"] == end and row["start"] == start for row in batched)
        # what a launch reads of the GPUs taken: the rows written
        written = tx.all(
            select(GpuAllocation).where(GpuAllocation.job_id == one.id).order_by(GpuAllocation.slot)
        )
        assert [(g.node_id, g.slot, g.gpu_serial) for g in held] == [
            (r.node_id, r.slot, r.gpu_serial) for r in written
        ]
        trail_batched, trail_alone = _trail(tx, one.id), _trail(tx, other.id)
        # the start's reason names its node: the rest is the same
        assert [r[:5] for r in trail_batched] == [r[:5] for r in trail_alone]
        assert [r[6:] for r in trail_batched] == [r[6:] for r in trail_alone]
        assert [r[2] for r in trail_batched] == [
            "job.submit",
            "job.start",
            "job.succeeded",
            "job.note",
        ]
        stored = {j.id: j for j in tx.all(select(Job).where(Job.id.in_([one.id, other.id])))}
        assert stored[one.id].state == stored[other.id].state == JobState.SUCCEEDED
        assert stored[one.id].attained_gpu_s == stored[other.id].attained_gpu_s == 60.0


def test_a_batch_closes_only_open_allocations(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal
) -> None:
    """A run's rows closed by an earlier run keep their end; its open rows get the new one."""
    job = jobs.submit(ctx, inftech, job_of(1, 60.0))
    t0 = clock.now()
    ends = []
    for run in range(2):
        t_start = t0 + timedelta(seconds=100 * run)
        with ctx.db.transaction() as tx:
            row = bulk.lock_jobs(tx, [job.id])[job.id]
            node = _node_of(tx, ctx, 1, set())
            free = bulk.free_gpus(tx, [node])
            batch = bulk.RowBatch()
            runs.start_run(tx, row, [(node, 1)], t_start, borrowed=False, actor="t", free=free,
                           batch=batch)  # fmt: skip
            tx.flush()
            batch.write(tx)
        with ctx.db.transaction() as tx:
            row = bulk.lock_jobs(tx, [job.id])[job.id]
            batch = bulk.RowBatch()
            ends.append(t_start + timedelta(seconds=10 + run))
            runs.stop_run(tx, row, ends[-1], JobState.QUEUED, reason="test", actor="t",
                          batch=batch)  # fmt: skip
            tx.flush()
            batch.write(tx)
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            select(GpuAllocation).where(GpuAllocation.job_id == job.id).order_by(GpuAllocation.id)
        )
    assert [r.end for r in rows] == ends


def test_job_rows_written_in_one_statement_keep_versions_and_the_feed(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, db_backend: str
) -> None:
    """``update_jobs`` writes like the session's flush: the row's version moves on by one,
    the change is announced with the writer's origin, a row changed meanwhile is stale, and
    a change outside a run's columns is left to the flush."""
    one, other, third = (jobs.submit(ctx, inftech, job_of(1, 60.0)) for _ in range(3))
    with ctx.db.transaction() as tx, writing_as("leader-x"):
        rows = bulk.lock_jobs(tx, [one.id, other.id, third.id])
        rows[one.id].wait_reason = "waits: test"
        rows[other.id].wait_reason = "waits: test"
        rows[other.id].name = "renamed"  # not a run's column: the flush writes this row
        written = bulk.update_jobs(tx, rows.values())
        assert written == (0 if db_backend == "sqlite" else 1)
        tx.flush()  # the rest, as the applier flushes, under the same origin
    with ctx.db.transaction(write=False) as tx:
        stored = {j.id: j for j in bulk.load_jobs(tx, [one.id, other.id, third.id])}
        origins = tx.session.execute(
            select(SchedulerChange.ref, SchedulerChange.origin).where(
                SchedulerChange.ref.in_([one.id, other.id, third.id]),
                SchedulerChange.origin == "leader-x",
            )
        ).all()
    assert (stored[one.id].wait_reason, stored[one.id].version) == ("waits: test", 2)
    assert (stored[other.id].name, stored[other.id].version) == ("renamed", 2)
    assert stored[third.id].version == 1
    assert sorted(origins) == sorted([(one.id, "leader-x"), (other.id, "leader-x")])

    # a row changed since it was read: stale, nothing written
    with ctx.db.transaction() as tx:
        row = bulk.lock_jobs(tx, [third.id])[third.id]
        tx.session.expunge(row)
    with ctx.db.transaction() as tx:
        tx.require(Job, third.id, "job").priority = "high"

    def late() -> None:
        with ctx.db.transaction() as tx:
            tx.session.add(row)
            row.wait_reason = "too late"
            bulk.update_jobs(tx, [row])
            tx.flush()

    with pytest.raises(Conflict):
        late()
    with ctx.db.transaction(write=False) as tx:
        [again] = bulk.load_jobs(tx, [third.id])
    assert (again.wait_reason, again.version) != ("too late", 3)
    assert again.version == 2
