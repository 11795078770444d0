"""SchedulerLoop with leader election on the real databases: one leader, then a handover."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence import ledger_store
from gpulease.persistence.tables import AuditRecord, SchedulerStatus
from gpulease.services import audit
from gpulease.services import demo as demo_service
from gpulease.services.context import ServiceContext
from gpulease.services.scheduler_loop import SchedulerLoop
from gpulease.services.scheduling import LiveScheduler


def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _leader(ctx: ServiceContext) -> tuple[str, int] | None:
    with ctx.db.transaction(write=False) as tx:
        row = tx.get(SchedulerStatus, demo_service.SITE_ID)
        return None if row is None else (row.leader, row.ticks)


def test_one_leader_then_handover(ctx: ServiceContext, demo: list[demo_service.DemoUser]) -> None:
    loops = {
        name: SchedulerLoop(LiveScheduler(ctx, SimulatedExecutor(), name=name), interval_s=0.05)
        for name in ("a", "b")
    }
    stopped: set[str] = set()
    try:
        for loop in loops.values():
            loop.start()
        _until(lambda: any(loop.leading for loop in loops.values()))
        time.sleep(0.3)  # both have tried several times by now
        leaders = [name for name, loop in loops.items() if loop.leading]
        assert len(leaders) == 1
        [first] = leaders
        _until(lambda: (_leader(ctx) or ("", 0))[0] == first)
        ticks = (_leader(ctx) or ("", 0))[1]
        _until(lambda: (_leader(ctx) or ("", 0))[1] > ticks)  # it keeps deciding
        assert not loops[next(n for n in loops if n != first)].leading

        loops[first].stop()  # the leader goes away; the other takes over
        stopped.add(first)
        second = next(n for n in loops if n != first)
        _until(lambda: loops[second].leading)
        _until(lambda: (_leader(ctx) or ("", 0))[0] == second)
    finally:
        for name, loop in loops.items():
            if name not in stopped:
                loop.stop()


def test_the_loop_sequences_the_ledger(
    ctx: ServiceContext, demo: list[demo_service.DemoUser]
) -> None:
    """The scheduler process gives committed audit records their ledger positions (its
    sequencer thread, ``services.ledger_sequencer``) without anyone asking."""
    loop = SchedulerLoop(LiveScheduler(ctx, SimulatedExecutor(), name="a"), interval_s=0.05)
    loop.sign_heads = lambda: None  # type: ignore[assignment]
    loop.start()  # (signing a head sequences too: only the sequencer thread may, here)
    try:
        with ctx.db.transaction() as tx:
            audit.record(
                tx,
                at=ctx.now(),
                actor="test",
                action="thing.done",
                subject_type="thing",
                subject_id="thing-1",
            )
        with ctx.db.transaction(write=False) as tx:
            audit_id = max(tx.session.scalars(select(AuditRecord.id)))

        def placed() -> bool:
            with ctx.db.transaction(write=False) as tx:
                return ledger_store.entry_of(tx.session, audit_id) is not None

        _until(placed, timeout=30.0)
    finally:
        loop.stop()
    assert loop.sequencer.sequenced >= 1
