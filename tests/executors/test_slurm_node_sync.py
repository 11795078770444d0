"""Node sync both ways between Slurm and gpulease (``services.node_sync``).

The pure plan (which side moves, never a flap) is checked without Slurm; the live scheduler
is then run against the real Slurm test cluster, the demo site's nodes mapped onto its four
nodes (gpulease node ``i`` by index -> Slurm node ``i mod 4``, as in ``test_slurm_live``):
a drain in Slurm reaches gpulease (audited, nothing new placed there) and its resume brings
the nodes back; an operator's maintenance in gpulease reaches Slurm and its end resumes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.states import JobState, NodeState
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.persistence.tables import AuditRecord, GpuAllocation
from gpulease.services import demo as demo_service
from gpulease.services import inventory, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.node_sync import ACTOR, FROM_SLURM, Move, plan
from gpulease.services.scheduling import LiveScheduler
from support.slurm_cluster import LocalSlurmCluster
from support.slurm_live import executor_for, job_row, nodes_of, slurm_name, tick_until

SITE = demo_service.SITE_ID
UP, DRAINING, DOWN = NodeState.UP, NodeState.DRAINING, NodeState.DOWN


@pytest.fixture
def db_backend() -> str:
    """PostgreSQL only: these tests are about Slurm; the database's behaviour under the live
    scheduler is tested on both backends in tests/services (a real Slurm test costs seconds)."""
    return "postgresql"


# ------------------------------------------------------------------ the plan, no Slurm
@pytest.mark.parametrize(
    ("ours", "our_reason", "theirs", "their_reason", "expected"),
    [
        # agreeing sides: nothing
        (UP, "", UP, "", None),
        (DRAINING, "slurm-sync: Slurm reports draining: x", DRAINING, "x", None),
        (DRAINING, "fan swap", DRAINING, "gpulease: n1: draining: fan swap", None),
        (DOWN, "psu", DRAINING, "gpulease: n1: down: psu", None),
        # Slurm's own states are pulled
        (
            UP,
            "",
            DRAINING,
            "disk",
            Move("n1", True, DRAINING, f"{FROM_SLURM}Slurm reports draining: disk"),
        ),
        (UP, "", DOWN, "", Move("n1", True, DOWN, f"{FROM_SLURM}Slurm reports down: no reason")),
        (
            DRAINING,
            f"{FROM_SLURM}x",
            DOWN,
            "dead",
            Move("n1", True, DOWN, f"{FROM_SLURM}Slurm reports down: dead"),
        ),
        (
            DRAINING,
            f"{FROM_SLURM}x",
            UP,
            "",
            Move("n1", True, UP, f"{FROM_SLURM}Slurm reports the node up"),
        ),
        (
            DOWN,
            f"{FROM_SLURM}x",
            UP,
            "",
            Move("n1", True, UP, f"{FROM_SLURM}Slurm reports the node up"),
        ),
        (DOWN, f"{FROM_SLURM}x", DRAINING, "booting", None),  # down -> draining: no such move
        # gpulease's maintenance is pushed, and its end resumes Slurm's node
        (DRAINING, "fan swap", UP, "", Move("n1", False, DRAINING, "n1: draining: fan swap")),
        (
            DOWN,
            "psu",
            DRAINING,
            "gpulease: n1: draining: fan swap",
            Move("n1", False, DOWN, "n1: down: psu"),
        ),
        (
            UP,
            "fixed",
            DRAINING,
            "gpulease: n1: fan swap",
            Move("n1", False, UP, "back up in gpulease"),
        ),
        # never flap: gpulease's maintenance wins over Slurm's states; our pushes stay ours
        (DRAINING, "fan swap", DRAINING, "slurm's own", None),
        (DRAINING, "fan swap", DOWN, "not responding", None),
        (UP, "", DRAINING, "gpulease: n7: another node on the same Slurm node", None),
        (DRAINING, "fan swap", DOWN, "gpulease: n7: another node's push", None),
        (DRAINING, f"{FROM_SLURM}x", DRAINING, "gpulease: n7: y", None),
    ],
)
def test_the_plan_of_one_node(
    ours: NodeState, our_reason: str, theirs: NodeState, their_reason: str, expected: Move | None
) -> None:
    assert plan("n1", ours, our_reason, theirs, their_reason) == expected


def test_a_node_just_resumed_is_not_pulled_while_it_settles() -> None:
    """Slurm has a node it resumes not responding, without a reason, until its next ping."""
    assert plan("n1", UP, "repaired", DRAINING, "", settling=True) is None
    assert plan("n1", UP, "", DRAINING, "disk", settling=True) == Move(
        "n1", True, DRAINING, f"{FROM_SLURM}Slurm reports draining: disk"
    )
    assert plan("n1", UP, "", DOWN, "", settling=False) is not None


def test_executors_without_node_states_are_left_alone(ctx: ServiceContext) -> None:
    scheduler = LiveScheduler(ctx, SimulatedExecutor(), name="sim")
    assert scheduler.node_sync.nodes is None
    assert scheduler.node_sync.tick(ctx.now()) == []


# ------------------------------------------------------------------ on a real Slurm
def slurm_of(ctx: ServiceContext, node_id: str) -> str:
    return next(slurm_name(n) for n in nodes_of(ctx) if n.id == node_id)


def on_slurm_node(ctx: ServiceContext, name: str) -> dict[str, tuple[str, str]]:
    """gpulease node id -> (state, reason) of every node mapped onto Slurm node ``name``."""
    return {n.id: (n.state, n.state_reason) for n in nodes_of(ctx) if slurm_name(n) == name}


def sinfo(slurm: LocalSlurmCluster, name: str) -> tuple[str, str]:
    out = slurm.run(["sinfo", "-h", "-N", "-n", name, "-o", "%t|%E"]).stdout.strip()
    state, _, reason = out.partition("|")
    return state, reason


def nodes_of_job(ctx: ServiceContext, job_id: str) -> set[str]:
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(tx.select(GpuAllocation).where(GpuAllocation.job_id == job_id))
    return {row.node_id for row in rows}


def sync_audit(ctx: ServiceContext, node_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            tx.select(AuditRecord)
            .where(AuditRecord.subject_id == node_id, AuditRecord.actor == ACTOR)
            .order_by(AuditRecord.id)
        )


def two_gpus(command: str) -> jobs.JobSubmission:
    return jobs.JobSubmission(gpus=2, purpose="financial AI", command=command)


def next_sync(scheduler: LiveScheduler, ctx: ServiceContext, clock: ManualClock) -> None:
    clock.advance(ctx.settings.node_sync_s)
    scheduler.tick()


def sync_until(
    scheduler: LiveScheduler,
    ctx: ServiceContext,
    clock: ManualClock,
    done: Callable[[], bool],
    *,
    grace: bool = True,
) -> None:
    """Syncs until ``done``; unless ``grace``, every gpulease node must stay up meanwhile."""
    deadline = time.monotonic() + 60
    while True:
        next_sync(scheduler, ctx, clock)
        if not grace:
            assert all(n.state == "up" for n in nodes_of(ctx))
        if done():
            return
        assert time.monotonic() < deadline, "the node sync did not get there"
        time.sleep(0.5)


@pytest.mark.slow
def test_a_drain_in_slurm_reaches_gpulease_and_its_resume_brings_the_nodes_back(
    ctx: ServiceContext,
    inftech: Principal,
    clock: ManualClock,
    slurm: LocalSlurmCluster,
    tmp_path: Path,
) -> None:
    scheduler = LiveScheduler(ctx, executor_for(ctx, slurm), name="sync")
    go = tmp_path / "go"
    first = jobs.submit(ctx, inftech, two_gpus(f"while [ ! -e {go} ]; do sleep 0.1; done"))
    scheduler.tick()  # the first sync (both sides up: no move), then the placement
    assert job_row(ctx, first.id).state == JobState.RUNNING
    (node,) = nodes_of_job(ctx, first.id)
    name = slurm_of(ctx, node)
    slurm.run(["scontrol", "update", f"nodename={name}", "state=drain", "reason=disk check"])
    try:
        clock.advance(1)
        scheduler.tick()  # no sync due yet: gpulease still has the node up
        assert on_slurm_node(ctx, name)[node][0] == "up"
        next_sync(scheduler, ctx, clock)
        hit = on_slurm_node(ctx, name)
        expected = ("draining", f"{FROM_SLURM}Slurm reports draining: disk check")
        assert set(hit.values()) == {expected}  # every gpulease node on that Slurm node
        assert all(n.state == "up" for n in nodes_of(ctx) if n.id not in hit)
        [record] = sync_audit(ctx, node)
        assert (record.before, record.after) == (
            {"state": "up", "state_reason": ""},
            {"state": "draining", "state_reason": expected[1]},
        )
        assert job_row(ctx, first.id).state == JobState.RUNNING  # draining: work goes on
        # nothing new lands there: the same shape, which would have gone beside the first
        second = jobs.submit(ctx, inftech, two_gpus("exit 0"))
        clock.advance(1)
        scheduler.tick()
        assert job_row(ctx, second.id).state == JobState.RUNNING
        assert nodes_of_job(ctx, second.id).isdisjoint(hit)
        next_sync(scheduler, ctx, clock)  # a sync of agreeing sides moves nothing
        assert len(sync_audit(ctx, node)) == 1
    finally:
        go.touch()
        slurm.run(["scontrol", "update", f"nodename={name}", "state=resume"])
    # a resumed node is "idle*" (not responding: draining to gpulease) until its next ping
    sync_until(scheduler, ctx, clock, lambda: on_slurm_node(ctx, name)[node][0] == "up")
    assert set(on_slurm_node(ctx, name).values()) == {
        ("up", f"{FROM_SLURM}Slurm reports the node up")
    }
    assert [r.after for r in sync_audit(ctx, node)][-1] == {
        "state": "up",
        "state_reason": f"{FROM_SLURM}Slurm reports the node up",
    }
    tick_until(scheduler, clock, lambda: job_row(ctx, first.id).state != JobState.RUNNING)
    assert job_row(ctx, first.id).state == JobState.SUCCEEDED


@pytest.mark.slow
def test_an_operators_maintenance_reaches_slurm_and_its_end_resumes_the_node(
    ctx: ServiceContext, operator: Principal, clock: ManualClock, slurm: LocalSlurmCluster
) -> None:
    scheduler = LiveScheduler(ctx, executor_for(ctx, slurm), name="sync")
    scheduler.tick()
    node = nodes_of(ctx)[1].id
    name = slurm_of(ctx, node)
    inventory.set_node_state(ctx, operator, node, DRAINING, "fan swap")
    next_sync(scheduler, ctx, clock)
    assert sinfo(slurm, name) == ("drain", f"gpulease: {node}: draining: fan swap")
    # the push is not pulled back: the other gpulease nodes on that Slurm node stay up
    others = {n: s for n, s in on_slurm_node(ctx, name).items() if n != node}
    assert others
    assert all(state == "up" for state, _ in others.values())
    next_sync(scheduler, ctx, clock)
    assert sinfo(slurm, name) == ("drain", f"gpulease: {node}: draining: fan swap")
    assert on_slurm_node(ctx, name)[node] == ("draining", "fan swap")
    assert sync_audit(ctx, node) == []

    inventory.set_node_state(ctx, operator, node, DOWN, "power supply")
    next_sync(scheduler, ctx, clock)
    # Slurm shows a drained node it is told is down as "drain"; its record says DOWN+DRAIN
    assert sinfo(slurm, name)[1] == f"gpulease: {node}: down: power supply"
    record = slurm.run(["scontrol", "-o", "show", "node", name]).stdout
    assert " State=DOWN+DRAIN " in record
    assert on_slurm_node(ctx, name)[node] == ("down", "power supply")  # Slurm's down: ours

    inventory.set_node_state(ctx, operator, node, UP, "repaired")
    next_sync(scheduler, ctx, clock)
    assert sinfo(slurm, name)[0] in ("idle", "idle*")  # "*": until Slurm's next ping
    # no flap while Slurm has it not responding: the operator's "up" stands
    sync_until(scheduler, ctx, clock, lambda: sinfo(slurm, name)[0] == "idle", grace=False)
    next_sync(scheduler, ctx, clock)
    assert sinfo(slurm, name)[0] == "idle"
    assert all(state == "up" for state, _ in on_slurm_node(ctx, name).values())
    assert sync_audit(ctx, node) == []


def test_a_failing_sinfo_is_logged_and_the_pass_goes_on(
    ctx: ServiceContext, demo: object, tmp_path: Path
) -> None:
    """``sinfo`` that cannot reach its controller (the other Slurm commands absent too)."""
    sinfo_bin = tmp_path / "sinfo"
    sinfo_bin.write_text("#!/bin/sh\necho 'Unable to contact slurm controller' >&2\nexit 1\n")
    sinfo_bin.chmod(0o755)
    broken = SlurmSite(SITE, bin_dir=tmp_path)
    scheduler = LiveScheduler(ctx, SlurmExecutor([broken]), name="broken")
    reports = scheduler.tick()
    assert [r.site_id for r in reports] == [SITE]
    assert scheduler.node_sync.failures == 1
    assert scheduler.failed_passes == 0
    assert nodes_of(ctx)
    assert all(n.state == "up" for n in nodes_of(ctx))
    scheduler.tick()  # not due again yet: no second try within node_sync_s
    assert scheduler.node_sync.failures == 1


@pytest.mark.slow
def test_a_node_slurm_puts_down_goes_down_in_gpulease_and_its_job_is_requeued(
    ctx: ServiceContext,
    inftech: Principal,
    clock: ManualClock,
    slurm: LocalSlurmCluster,
    tmp_path: Path,
) -> None:
    scheduler = LiveScheduler(ctx, executor_for(ctx, slurm), name="sync")
    go = tmp_path / "go"
    job = jobs.submit(ctx, inftech, two_gpus(f"while [ ! -e {go} ]; do sleep 0.1; done"))
    scheduler.tick()
    assert job_row(ctx, job.id).state == JobState.RUNNING
    (node,) = nodes_of_job(ctx, job.id)
    name = slurm_of(ctx, node)
    try:
        slurm.run(["scontrol", "update", f"nodename={name}", "state=down", "reason=psu dead"])
        next_sync(scheduler, ctx, clock)
        assert on_slurm_node(ctx, name)[node] == (
            "down",
            f"{FROM_SLURM}Slurm reports down: psu dead",
        )
        requeued = job_row(ctx, job.id)
        assert (requeued.starts, requeued.state) in ((1, JobState.QUEUED), (2, JobState.RUNNING))
        [record] = sync_audit(ctx, node)
        assert record.after == {
            "state": "down",
            "state_reason": f"{FROM_SLURM}Slurm reports down: psu dead",
        }
    finally:
        go.touch()

    # Slurm refuses to resume a down node while its killed job completes: retried meanwhile
    def back_up() -> bool:
        slurm.run(["scontrol", "update", f"nodename={name}", "state=resume"], check=False)
        return on_slurm_node(ctx, name)[node][0] == "up"

    sync_until(scheduler, ctx, clock, back_up)
