"""The leader's kept state against a leader rebuilt from the database.

The differential property: after any sequence of submissions, cancellations, completions,
node failures and repairs, passes and time, the state the leader kept by deltas equals the
state rebuilt from the database, and both decide exactly alike. Then the consistency check:
a kept state corrupted in memory is found, logged and repaired.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock, to_seconds
from gpulease.domain.states import InvalidTransition, JobState, NodeState
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence import bulk
from gpulease.persistence.tables import SchedulerChange
from gpulease.scheduler.engine import Decisions
from gpulease.services import audit, inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.live_state import divergences
from gpulease.services.scheduling import LiveScheduler, PassReport
from live_support import SITE, job_of, kept_and_rebuilt

SIZES = (1, 2, 4, 8, 16, 36, 72, 144)

Op = tuple[str, int, int]
ops = st.lists(
    st.tuples(
        st.sampled_from(["submit", "submit", "submit", "cancel", "down", "up", "wait", "pass"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    min_size=4,
    max_size=18,
)


def decided(d: Decisions) -> dict[str, Any]:
    return {
        "starts": [(s.job_id, sorted(s.placement), s.borrowed) for s in d.starts],
        "notices": [(p.job_id, p.at) for p in d.notices],
        "requeues": [(p.job_id, p.at) for p in d.requeues],
        "timeouts": list(d.timeouts),
        "guaranteed": sorted(d.guaranteed_waiting),
        "codes": {job_id: reason.code for job_id, reason in d.waiting.items()},
    }


def apply_op(
    op: Op,
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    tenants: list[Principal],
    operator: Principal,
) -> None:
    kind, a, b = op
    if kind == "submit":
        who = tenants[a % len(tenants)]
        spec = jobs.JobSubmission(
            gpus=SIZES[b % len(SIZES)],
            purpose="financial AI",
            command="train",
            duration_s=float(30 + (a * 7 + b) % 600),
        )
        jobs.submit(ctx, who, spec)
        clock.advance(1)
    elif kind == "cancel":
        live = [
            j
            for j in jobs.list_jobs(ctx, operator, limit=1000)
            if j.state in (JobState.QUEUED, JobState.RUNNING)
        ]
        if live:
            job = live[a % len(live)]
            jobs.cancel(ctx, operator, job.id, "changed plans")
    elif kind in ("down", "up"):
        topology = inventory.cached_topology(ctx, SITE)
        node_id = topology.node_ids[a % len(topology.node_ids)]
        target = NodeState.DOWN if kind == "down" else NodeState.UP
        with contextlib.suppress(InvalidTransition):  # not a move the node allows from here
            inventory.set_node_state(ctx, operator, node_id, target, "test")
    elif kind == "wait":
        clock.advance(5 + a % 300)
    else:
        scheduler.tick()
        clock.advance(2)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],  # each example runs passes on a database
)
@given(script=ops)
def test_the_kept_state_decides_like_a_rebuilt_one(
    script: list[Op],
    ctx: ServiceContext,
    clock: ManualClock,
    operator: Principal,
    inftech: Principal,
    bank: Principal,
) -> None:
    scheduler = LiveScheduler(ctx, SimulatedExecutor(), name="differential")
    scheduler.tick()
    tenants = [inftech, bank]
    for op in script:
        apply_op(op, ctx, clock, scheduler, tenants, operator)
        kept, fresh = kept_and_rebuilt(scheduler, ctx, clock)
        assert divergences(kept.state, fresh.state) == []
        now = to_seconds(clock.now())
        mine = kept.scheduler.step(kept.state, now)
        theirs = fresh.scheduler.step(fresh.state, now)
        assert decided(mine) == decided(theirs)
        texts = {job_id: audit.clip(reason.message) for job_id, reason in mine.waiting.items()}
        [report] = scheduler.tick()
        assert report.rebuilt == "", report.rebuilt  # deltas only, after the first pass
        assert_reasons_stored(ctx, texts, report)
        clock.advance(3)


def assert_reasons_stored(ctx: ServiceContext, texts: dict[str, str], report: PassReport) -> None:
    """After a pass, every job it left waiting stores the text of its reason (written only
    where it changed: a job new to a set-aside run, or whose reason moved)."""
    if report.stale:
        return
    moved = {*report.started, *report.requeued, *report.timed_out, *report.failed}
    with ctx.db.transaction(write=False) as tx:
        rows = bulk.load_jobs(tx, list(texts))
    stored = {r.id: r.wait_reason for r in rows if r.state == JobState.QUEUED}
    expected = {job_id: texts[job_id] for job_id in stored if job_id not in moved}
    assert {job_id: stored[job_id] for job_id in expected} == expected


def test_a_steady_pass_reads_only_what_changed(
    ctx: ServiceContext, clock: ManualClock, scheduler: LiveScheduler, inftech: Principal
) -> None:
    for _ in range(5):
        jobs.submit(ctx, inftech, job_of(8, 600))
    [first] = scheduler.tick()
    assert first.rebuilt.startswith("no kept state")
    clock.advance(2)
    scheduler.tick()  # re-reads the feed's lookback once after a rebuild: no change found
    clock.advance(2)
    [quiet] = scheduler.tick()
    assert (quiet.rebuilt, quiet.changes) == ("", 0)
    jobs.submit(ctx, inftech, job_of(8, 600))
    clock.advance(2)
    [one] = scheduler.tick()
    assert (one.rebuilt, one.changes) == ("", 1)
    assert len(one.started) == 1


def test_the_leaders_own_changes_are_announced_with_its_name(
    ctx: ServiceContext, clock: ManualClock, scheduler: LiveScheduler, inftech: Principal
) -> None:
    job = jobs.submit(ctx, inftech, job_of(8, 120))
    scheduler.tick()
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(tx.select(SchedulerChange).where(SchedulerChange.ref == job.id))
    assert [(r.kind, r.origin) for r in rows] == [("job", ""), ("job", scheduler.name)]


@pytest.mark.parametrize("corruption", ["lost start", "phantom job", "node state"])
def test_the_consistency_check_finds_and_repairs_a_corrupted_state(
    corruption: str,
    ctx: ServiceContext,
    clock: ManualClock,
    scheduler: LiveScheduler,
    inftech: Principal,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = jobs.submit(ctx, inftech, job_of(8, 900))
    scheduler.tick()
    clock.advance(2)
    scheduler.tick()  # the feed's lookback after the first rebuild is read
    clock.advance(2)
    [kept] = scheduler._sites.values()
    state = kept.state
    if corruption == "lost start":  # memory forgets a run: its GPUs look free
        state.stop(running.id, to_seconds(clock.now()), JobState.QUEUED, "corrupted")
    elif corruption == "phantom job":  # memory holds a job the database never had
        spec = jobs.spec_of(jobs.get_job(ctx, inftech, running.id))
        state.submit(replace(spec, id="job-phantom"), domain="NVLink domain")
    else:
        state.set_node_state(0, NodeState.DRAINING, to_seconds(clock.now()))
    period = ctx.settings.consistency_check_s
    ctx.settings.consistency_check_s = 1e-9  # the next pass checks
    with caplog.at_level(logging.ERROR, logger="gpulease.scheduler"):
        [report] = scheduler.tick()
    ctx.settings.consistency_check_s = period
    assert report.rebuilt == "consistency check"
    assert report.divergences, "the corruption was not found"
    assert scheduler.divergences == 1
    assert "diverged from the database (repaired)" in caplog.text
    [repaired] = scheduler._sites.values()
    kept2, fresh = kept_and_rebuilt(scheduler, ctx, clock)
    assert repaired is not kept
    assert divergences(kept2.state, fresh.state) == []
    assert running.id in kept2.state.running
