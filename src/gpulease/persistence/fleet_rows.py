"""The rows a fleet map is drawn from (``services.fleet_map``), as plain tuples.

Column reads, not ORM entities: a site of 2,304 GPUs is drawn on every refresh of every
open dashboard, and hydrating an object per GPU, node and allocation costs ten times the
read. Each read is bounded by the site's hardware or its running jobs, never by history:
open allocations are found through running jobs (``jobs.state`` and
``gpu_allocations.job_id`` are indexed), not by scanning every allocation ever made.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpulease.domain.states import JobState
from gpulease.persistence.tables import Gpu, GpuAllocation, Job, Node, Rack


def racks(session: Session, site_id: str) -> list[tuple[str, str, int]]:
    """``(rack id, serial, index)`` of the site's racks, by index."""
    query = (
        select(Rack.id, Rack.serial, Rack.index).where(Rack.site_id == site_id).order_by(Rack.index)
    )
    return [(r[0], r[1], r[2]) for r in session.execute(query)]


def gpus(session: Session, site_id: str) -> list[tuple[str, str, str, int]]:
    """``(rack id, GPU serial, node id, slot)`` of every GPU of the site, by node index then
    slot (the map's order)."""
    query = (
        select(Node.rack_id, Gpu.serial, Gpu.node_id, Gpu.slot)
        .join(Node, Node.id == Gpu.node_id)
        .where(Node.site_id == site_id)
        .order_by(Node.index, Gpu.slot)
    )
    return [(r[0], r[1], r[2], r[3]) for r in session.execute(query)]


def node_states(session: Session, site_id: str) -> dict[str, str]:
    """Each node of the site: its state."""
    query = select(Node.id, Node.state).where(Node.site_id == site_id)
    return {r[0]: r[1] for r in session.execute(query)}


def holders(session: Session, site_id: str) -> dict[str, tuple[str, str]]:
    """GPU serial -> ``(tenant id, job id)`` of the run holding it now, at the site."""
    query = (
        select(GpuAllocation.gpu_serial, GpuAllocation.tenant_id, GpuAllocation.job_id)
        .join(Job, Job.id == GpuAllocation.job_id)
        .where(
            Job.state == JobState.RUNNING.value,
            Job.site_id == site_id,
            GpuAllocation.end.is_(None),
        )
    )
    return {r[0]: (r[1], r[2]) for r in session.execute(query)}
