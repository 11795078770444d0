"""The leader's kept state against a leader rebuilt from the database.

The differential property: after any sequence of submissions, cancellations, completions,
node failures and repairs, passes and time, the state the leader kept by deltas equals the
state rebuilt from the database, and both decide exactly alike. Then the consistency check:
a kept state corrupted in memory is found, logged and repaired, and passes go on while
the check builds its fresh state beside them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import replace
from datetime import datetime
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
from gpulease.scheduler.state import SchedulerState
from gpulease.services import audit, inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.live_state import divergences
from gpulease.services.scheduling import LiveScheduler, PassReport
from gpulease.services.snapshot import Pause, Snapshot
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
    period = ctx.settings.consistency_check_s
    ctx.settings.consistency_check_s = 1e-9  # the next pass begins a check
    [began] = scheduler.tick()
    ctx.settings.consistency_check_s = period
    assert (began.checked, began.rebuilt) == ("started", "")
    state = kept.state  # corrupted while the check is built beside the passes
    if corruption == "lost start":  # memory forgets a run: its GPUs look free
        state.stop(running.id, to_seconds(clock.now()), JobState.QUEUED, "corrupted")
    elif corruption == "phantom job":  # memory holds a job the database never had
        spec = jobs.spec_of(jobs.get_job(ctx, inftech, running.id))
        state.submit(replace(spec, id="job-phantom"), domain="NVLink domain")
    else:
        state.set_node_state(0, NodeState.DRAINING, to_seconds(clock.now()))
    assert scheduler.wait_for_checks(timeout=60)
    with caplog.at_level(logging.ERROR, logger="gpulease.scheduler"):
        [report] = scheduler.tick()  # the first pass after the check was built compares
    assert (report.checked, report.rebuilt) == ("diverged", "consistency check")
    assert report.divergences, "the corruption was not found"
    assert scheduler.divergences == 1
    assert "diverged from the database (repaired)" in caplog.text
    [repaired] = scheduler._sites.values()
    kept2, fresh = kept_and_rebuilt(scheduler, ctx, clock)
    assert repaired is not kept
    assert divergences(kept2.state, fresh.state) == []
    assert running.id in kept2.state.running


class HeldCheck(LiveScheduler):
    """A leader whose consistency check, once its snapshot's first rows are read, waits
    for the test to let it go on (``release``): passes run while it is under way."""

    def __init__(self, ctx: ServiceContext) -> None:
        super().__init__(ctx, SimulatedExecutor(), name="held-check")
        self.reading = threading.Event()
        self.release = threading.Event()

    def _build_beside(
        self,
        site_id: str,
        topology: inventory.SiteTopology,
        now: datetime,
        held: frozenset[str],
        pause: Pause,
    ) -> tuple[Snapshot, SchedulerState]:
        def held_pause() -> None:
            self.reading.set()
            self.release.wait(60)
            pause()

        return super()._build_beside(site_id, topology, now, held, held_pause)


def begin_check(scheduler: LiveScheduler, ctx: ServiceContext) -> PassReport:
    period = ctx.settings.consistency_check_s
    ctx.settings.consistency_check_s = 1e-9  # the next pass begins a check
    try:
        [began] = scheduler.tick()
    finally:
        ctx.settings.consistency_check_s = period
    assert (began.checked, began.rebuilt) == ("started", "")
    return began


def test_passes_go_on_while_a_consistency_check_is_built(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, bank: Principal
) -> None:
    scheduler = HeldCheck(ctx)
    first = jobs.submit(ctx, inftech, job_of(8, 900))
    doomed = jobs.submit(ctx, bank, job_of(4, 900))
    scheduler.tick()
    clock.advance(2)
    scheduler.tick()  # the feed's lookback after the first rebuild is read
    clock.advance(2)
    [kept] = scheduler._sites.values()
    begin_check(scheduler, ctx)
    assert scheduler.reading.wait(60), "the check never read its snapshot"
    # while the check waits, midway through its snapshot: submissions, a cancel, passes
    late = [jobs.submit(ctx, who, job_of(16, 600)) for who in (inftech, bank)]
    jobs.cancel(ctx, bank, doomed.id, "changed plans")
    for _ in range(3):
        clock.advance(2)
        [report] = scheduler.tick()
        assert (report.rebuilt, report.checked) == ("", "")
    assert not scheduler.wait_for_checks(timeout=0), "the check did not wait"
    [same] = scheduler._sites.values()
    assert same is kept  # the passes went on with the kept state, deltas only
    assert {first.id, *(j.id for j in late)} <= set(kept.state.running)
    assert doomed.id not in kept.state.jobs
    scheduler.release.set()
    assert scheduler.wait_for_checks(timeout=60)
    clock.advance(2)
    [verdict] = scheduler.tick()
    assert (verdict.checked, verdict.divergences, verdict.rebuilt) == ("equal", [], "")
    assert scheduler.divergences == 0
    [after] = scheduler._sites.values()
    assert after is kept
    clock.advance(2)
    [quiet] = scheduler.tick()
    assert quiet.checked == ""  # the next check is due a period later


def test_a_divergence_found_beside_the_passes_is_repaired(
    ctx: ServiceContext,
    clock: ManualClock,
    inftech: Principal,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The kept state goes wrong while a check is built (memory forgets a run, through
    no change on the feed): the pass that reads the check finds it and rebuilds."""
    scheduler = HeldCheck(ctx)
    running = jobs.submit(ctx, inftech, job_of(8, 900))
    scheduler.tick()
    clock.advance(2)
    scheduler.tick()
    clock.advance(2)
    [kept] = scheduler._sites.values()
    begin_check(scheduler, ctx)
    assert scheduler.reading.wait(60)
    kept.state.set_node_state(3, NodeState.DOWN, to_seconds(clock.now()))
    kept.state.stop(running.id, to_seconds(clock.now()), JobState.QUEUED, "corrupted")
    kept.state.withdraw(running.id)  # nor queued: the kept state lost the job
    scheduler.release.set()
    assert scheduler.wait_for_checks(timeout=60)
    with caplog.at_level(logging.ERROR, logger="gpulease.scheduler"):
        [report] = scheduler.tick()
    assert (report.checked, report.rebuilt) == ("diverged", "consistency check")
    assert any(running.id in text for text in report.divergences)
    assert any("node" in text for text in report.divergences)
    assert "diverged from the database (repaired)" in caplog.text
    [repaired] = scheduler._sites.values()
    assert repaired is not kept
    assert running.id in repaired.state.running
    assert report.started == []  # the job was never started twice
    kept2, fresh = kept_and_rebuilt(scheduler, ctx, clock)
    assert divergences(kept2.state, fresh.state) == []
