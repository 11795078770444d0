"""The live scheduler on the test Slurm cluster: the demo site's nodes mapped onto its four
Slurm nodes (node ``index`` modulo 4), an executor over that map, and a pass loop."""

from __future__ import annotations

import time
from collections.abc import Callable

from gpulease.domain.clock import ManualClock
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.persistence.tables import Job, Node
from gpulease.services import demo as demo_service
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from support.slurm_cluster import SLURM_NODES, LocalSlurmCluster

SITE = demo_service.SITE_ID


def nodes_of(ctx: ServiceContext) -> list[Node]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(tx.select(Node).where(Node.site_id == SITE).order_by(Node.index))


def slurm_name(node: Node) -> str:
    return SLURM_NODES[node.index % len(SLURM_NODES)]


def node_map(ctx: ServiceContext) -> dict[str, str]:
    """gpulease node id -> the Slurm node it runs on."""
    return {n.id: slurm_name(n) for n in nodes_of(ctx)}


def executor_for(ctx: ServiceContext, slurm: LocalSlurmCluster) -> SlurmExecutor:
    site = SlurmSite(
        SITE,
        partition=slurm.partition,
        conf=slurm.conf_path,
        nodes=node_map(ctx),
        slot_type="s{slot}",  # the test cluster types each GPU: jobs get exactly gpulease's
    )
    return SlurmExecutor([site])


def job_row(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


def tick_until(
    scheduler: LiveScheduler, clock: ManualClock, done: Callable[[], bool], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the scheduler did not get there"
        time.sleep(0.2)
        clock.advance(1)
        scheduler.tick()
