"""End to end: the LiveScheduler places jobs of the demo site (Jakarta) and the Slurm
executor runs them on a real Slurm cluster whose four nodes the site's nodes map onto, each
GPU a GRES type of its own (``s0``..``s3``).

Each gpulease node ``i`` (by index) maps to Slurm node ``i mod 4``, so every placement
gpulease makes has a Slurm node; the tests check that the job ran on the Slurm node mapped
from the node gpulease chose and on the very GPUs it chose, that its exit code and output
reach gpulease, and that a new leader (a fresh scheduler and executor) adopts the running
job instead of requeueing it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.states import JobState
from gpulease.persistence.tables import GpuAllocation
from gpulease.services import demo as demo_service
from gpulease.services import job_logs, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from support.slurm_cluster import LocalSlurmCluster
from support.slurm_live import executor_for, job_row, node_map, tick_until

pytestmark = pytest.mark.slow
SITE = demo_service.SITE_ID


@pytest.fixture
def db_backend() -> str:
    """PostgreSQL only: these tests are about Slurm; the database's behaviour under the live
    scheduler is tested on both backends in tests/services (a real Slurm test costs seconds)."""
    return "postgresql"


def chosen_gpus(ctx: ServiceContext, job_id: str) -> dict[str, list[int]]:
    """Node -> GPU slots gpulease allocated to the job."""
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(tx.select(GpuAllocation).where(GpuAllocation.job_id == job_id))
    found: dict[str, list[int]] = {}
    for row in rows:
        found.setdefault(row.node_id, []).append(row.slot)
    return {node: sorted(slots) for node, slots in found.items()}


def test_live_scheduler_runs_a_job_on_slurm_where_gpulease_placed_it(
    ctx: ServiceContext, inftech: Principal, clock: ManualClock, slurm: LocalSlurmCluster
) -> None:
    executor = executor_for(ctx, slurm)
    scheduler = LiveScheduler(ctx, executor, name="slurm-live")
    job = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(
            gpus=2,
            purpose="financial AI",
            command="echo ran-on $SLURMD_NODENAME $GPULEASE_TENANT $CUDA_VISIBLE_DEVICES; exit 3",
        ),
    )
    scheduler.tick()
    assert job_row(ctx, job.id).state == JobState.RUNNING
    slurm_id = executor.slurm_id(job.id)
    assert slurm_id is not None
    ((node, slots),) = chosen_gpus(ctx, job.id).items()
    tick_until(scheduler, clock, lambda: job_row(ctx, job.id).state != JobState.RUNNING)
    done = job_row(ctx, job.id)
    assert (done.state, done.exit_code) == (JobState.FAILED, 3)
    expected = node_map(ctx)[node]
    record = slurm.run(["scontrol", "-o", "show", "job", str(slurm_id)]).stdout
    assert f" NodeList={expected} " in record
    gpus = ",".join(map(str, slots))  # the very GPUs gpulease chose, bound by Slurm
    assert f"ran-on {expected} {job.tenant_id} {gpus}" in job_logs.text(ctx, inftech, job.id)


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


def test_cancel_in_gpulease_reaches_slurm_and_a_slurm_cancel_reaches_gpulease(
    ctx: ServiceContext, inftech: Principal, clock: ManualClock, slurm: LocalSlurmCluster
) -> None:
    executor = executor_for(ctx, slurm)
    scheduler = LiveScheduler(ctx, executor, name="slurm-live")
    submission = jobs.JobSubmission(gpus=1, purpose="financial AI", command="sleep 300")
    ours, theirs = jobs.submit(ctx, inftech, submission), jobs.submit(ctx, inftech, submission)
    scheduler.tick()
    slurm_ids = {job.id: executor.slurm_id(job.id) for job in (ours, theirs)}
    assert None not in slurm_ids.values()

    def slurm_state(job_id: str) -> str:
        out = slurm.run(["scontrol", "-o", "show", "job", str(slurm_ids[job_id])]).stdout
        found = re.search(r"JobState=(\S+)", out)
        return found.group(1) if found else ""

    jobs.cancel(ctx, inftech, ours.id, "not needed")  # gpulease's cancel: Slurm's job ends
    slurm.run(["scancel", str(slurm_ids[theirs.id])])  # behind gpulease's back
    tick_until(
        scheduler,
        clock,
        lambda: (
            slurm_state(ours.id) == "CANCELLED"
            and job_row(ctx, theirs.id).state != JobState.RUNNING
        ),
    )
    assert job_row(ctx, ours.id).state == JobState.CANCELLED
    lost = job_row(ctx, theirs.id)
    assert (lost.state, lost.exit_code) == (JobState.FAILED, 143)
    assert executor.active() == set()
