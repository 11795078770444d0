"""The fleet's figures for a metrics scrape, in a few aggregate reads (``services.metrics``).

Each read is bounded by the live part of the site, never by its history: nodes (hardware,
``nodes.gpus`` rather than a row per GPU), running and queued jobs (``jobs.state`` is
indexed), their open allocations (by ``gpu_allocations.job_id``, indexed), active leases
(``leases.state``, indexed) and one ``scheduler_status`` row per site. Finished jobs, closed
allocations and ended leases are never read, so a site with years of history scrapes as
cheaply as a new one.

Invariant: read-only, one transaction, figures as of one moment of the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpulease.domain.states import JobState, LeaseState
from gpulease.persistence.db import Database
from gpulease.persistence.tables import (
    Gpu,
    GpuAllocation,
    Job,
    Lease,
    Node,
    Rack,
    SchedulerStatus,
)


@dataclass(frozen=True, slots=True)
class QueueFigures:
    site_id: str
    tenant_id: str
    jobs: int
    gpus: int
    oldest: datetime  # submitted_at of the longest-waiting queued job


@dataclass(frozen=True, slots=True)
class LeaseFigures:
    lease_id: str
    site_id: str
    tenant_id: str
    gpus: int  # leased
    used: int  # GPUs of the lease's running jobs


@dataclass(frozen=True, slots=True)
class SchedulerFigures:
    site_id: str
    ticks: int
    failed_passes: int
    last_tick_at: datetime


@dataclass
class FleetFigures:
    # (site, rack, node state) -> GPUs of the rack's nodes in that state
    gpus_by_state: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (site, rack, tenant) -> GPUs allocated to the tenant's running jobs
    allocated: dict[tuple[str, str, str], int] = field(default_factory=dict)
    queues: list[QueueFigures] = field(default_factory=list)
    leases: list[LeaseFigures] = field(default_factory=list)
    schedulers: list[SchedulerFigures] = field(default_factory=list)


def read_fleet(db: Database) -> FleetFigures:
    """The fleet as of now (see the module docstring for what is read)."""
    figures = FleetFigures()
    running = JobState.RUNNING.value
    with db.transaction(write=False) as tx:
        session = tx.session
        by_state = session.execute(
            select(Rack.site_id, Rack.id, Node.state, func.sum(Node.gpus))
            .join(Node, Node.rack_id == Rack.id)
            .group_by(Rack.site_id, Rack.id, Node.state)
        )
        for site_id, rack_id, state, gpus in by_state:
            figures.gpus_by_state[(site_id, rack_id, state)] = int(gpus or 0)
        allocated = session.execute(
            select(Rack.site_id, Rack.id, GpuAllocation.tenant_id, func.count())
            .select_from(Job)
            .join(GpuAllocation, GpuAllocation.job_id == Job.id)
            .join(Node, Node.id == GpuAllocation.node_id)
            .join(Rack, Rack.id == Node.rack_id)
            .where(Job.state == running, GpuAllocation.end.is_(None))
            .group_by(Rack.site_id, Rack.id, GpuAllocation.tenant_id)
        )
        for site_id, rack_id, tenant_id, count in allocated:
            figures.allocated[(site_id, rack_id, tenant_id)] = int(count)
        queued = session.execute(
            select(
                Job.site_id,
                Job.tenant_id,
                func.count(),
                func.sum(Job.gpus),
                func.min(Job.submitted_at),
            )
            .where(Job.state == JobState.QUEUED.value)
            .group_by(Job.site_id, Job.tenant_id)
        )
        figures.queues = [
            QueueFigures(site_id, tenant_id, int(n), int(gpus or 0), oldest)
            for site_id, tenant_id, n, gpus, oldest in queued
        ]
        used: dict[str, int] = {
            str(lease_id): int(gpus or 0)
            for lease_id, gpus in session.execute(
                select(Job.lease_id, func.sum(Job.gpus))
                .where(Job.state == running, Job.lease_id.is_not(None))
                .group_by(Job.lease_id)
            )
        }
        leases = session.execute(
            select(Lease.id, Lease.site_id, Lease.tenant_id, Lease.gpus).where(
                Lease.state == LeaseState.ACTIVE.value
            )
        )
        figures.leases = [
            LeaseFigures(lease_id, site_id, tenant_id, gpus, used.get(lease_id, 0))
            for lease_id, site_id, tenant_id, gpus in leases
        ]
        figures.schedulers = [
            SchedulerFigures(row.site_id, row.ticks, row.failed_passes, row.last_tick_at)
            for row in session.scalars(select(SchedulerStatus))
        ]
    return figures


def gpu_models_by_site(session: Session) -> dict[str, set[str]]:
    """The GPU models each site's nodes hold (one aggregate read over the hardware)."""
    query = select(Node.site_id, Gpu.model).join(Gpu, Gpu.node_id == Node.id).distinct()
    found: dict[str, set[str]] = {}
    for site_id, model in session.execute(query):
        found.setdefault(site_id, set()).add(model)
    return found
