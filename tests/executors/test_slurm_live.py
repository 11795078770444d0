"""End to end: the LiveScheduler places jobs of the demo site (Jakarta) and the Slurm
executor runs them on a real Slurm cluster whose four nodes the site's nodes map onto.

Each gpulease node ``i`` (by index) maps to Slurm node ``i mod 4``, so every placement
gpulease makes has a Slurm node; the tests check that the job ran on the Slurm node mapped
from the node gpulease chose, that its exit code and output reach gpulease, and that a new
leader (a fresh scheduler and executor) adopts the running job instead of requeueing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.states import JobState
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.persistence.tables import GpuAllocation, Job, Node
from gpulease.services import demo as demo_service
from gpulease.services import job_logs, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from support.slurm_cluster import SLURM_NODES, LocalSlurmCluster

pytestmark = pytest.mark.slow
SITE = demo_service.SITE_ID


def node_map(ctx: ServiceContext) -> dict[str, str]:
    with ctx.db.transaction(write=False) as tx:
        nodes = tx.all(tx.select(Node).where(Node.site_id == SITE))
    return {n.id: SLURM_NODES[n.index % len(SLURM_NODES)] for n in nodes}


def executor_for(ctx: ServiceContext, slurm: LocalSlurmCluster) -> SlurmExecutor:
    site = SlurmSite(SITE, partition=slurm.partition, conf=slurm.conf_path, nodes=node_map(ctx))
    return SlurmExecutor([site])


def job_row(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


def chosen_nodes(ctx: ServiceContext, job_id: str) -> set[str]:
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(tx.select(GpuAllocation).where(GpuAllocation.job_id == job_id))
    return {r.node_id for r in rows}


def tick_until(
    scheduler: LiveScheduler, clock: ManualClock, done: Callable[[], bool], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the scheduler did not get there"
        time.sleep(0.2)
        clock.advance(1)
        scheduler.tick()


def test_live_scheduler_runs_a_job_on_slurm_where_gpulease_placed_it(
    ctx: ServiceContext, inftech: Principal, clock: ManualClock, slurm: LocalSlurmCluster
) -> None:
    executor = executor_for(ctx, slurm)
    scheduler = LiveScheduler(ctx, executor, name="slurm-live")
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(
            gpus=4,
            purpose="financial AI",
            command="echo ran-on $SLURMD_NODENAME $GPULEASE_TENANT; exit 3",
        ),
    )
    scheduler.tick()
    assert job_row(ctx, job.id).state == JobState.RUNNING
    slurm_id = executor.slurm_id(job.id)
    assert slurm_id is not None
    (node,) = chosen_nodes(ctx, job.id)
    tick_until(scheduler, clock, lambda: job_row(ctx, job.id).state != JobState.RUNNING)
    done = job_row(ctx, job.id)
    assert (done.state, done.exit_code) == (JobState.FAILED, 3)
    expected = node_map(ctx)[node]
    record = slurm.run(["scontrol", "-o", "show", "job", str(slurm_id)]).stdout
    assert f" NodeList={expected} " in record
    assert f"ran-on {expected} {job.tenant_id}" in job_logs.text(ctx, inftech, job.id)


def test_a_new_leader_adopts_the_running_slurm_job(
    ctx: ServiceContext,
    inftech: Principal,
    clock: ManualClock,
    slurm: LocalSlurmCluster,
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(
            gpus=4,
            purpose="financial AI",
            command=f"while [ ! -e {go} ]; do sleep 0.1; done; echo finished",
        ),
    )
    LiveScheduler(ctx, executor_for(ctx, slurm), name="old").tick()  # then the leader dies
    assert job_row(ctx, job.id).state == JobState.RUNNING

    new = LiveScheduler(ctx, executor_for(ctx, slurm), name="new")
    [report] = new.tick()
    assert report.requeued == []
    assert job_row(ctx, job.id).starts == 1
    go.touch()
    tick_until(new, clock, lambda: job_row(ctx, job.id).state != JobState.RUNNING)
    done = job_row(ctx, job.id)
    assert (done.state, done.exit_code, done.starts) == (JobState.SUCCEEDED, 0, 1)
    assert "finished" in job_logs.text(ctx, inftech, job.id)
