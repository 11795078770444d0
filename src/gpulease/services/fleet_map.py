"""The fleet as a map: every GPU of a site with its state and, where the reader may know it,
its tenant and job; and one GPU's panel.

Vocabulary. A GPU cell's :class:`CellState` follows from its node's state and whether a run
holds it now (an open ``GpuAllocation``): ``down`` (node down), ``allocated`` (held, on an
up or draining node), ``draining`` (idle on a draining node) or ``idle``.

Isolation (``domain.access``). Every signed-in role may read the inventory
(``NODE_READ``); who holds a GPU is a tenant's record (``JOB_READ``). Operator staff see
every holder. A tenant sees its own GPUs with their jobs (``mine``) and every other held
GPU as ``allocated`` with no tenant, no job and no name: the map's ``tenants`` then holds
its own tenant only. The cell list is the same length and order for every reader.

The site's GPUs (serial, node, slot) never change once registered, so their listing is kept
in the process (``ctx.cache``) like ``inventory.cached_topology``; node states and the
running jobs' allocations are read on every call (``persistence.fleet_rows``: column reads
bounded by the hardware and the running jobs, never by history).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import NotFound
from gpulease.domain.states import NodeState
from gpulease.persistence import fleet_rows
from gpulease.persistence.tables import Gpu, GpuAllocation, Job, Node, Rack, Tenant
from gpulease.services import names
from gpulease.services.context import ServiceContext
from gpulease.services.inventory import default_site

SERIAL_MAX = 64


class CellState(StrEnum):
    IDLE = "idle"
    ALLOCATED = "allocated"
    DRAINING = "draining"  # idle on a draining node: nothing new lands there
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class GpuCell:
    serial: str
    node_id: str
    slot: int
    state: CellState
    node_state: NodeState
    tenant_id: str | None  # the holder, if the reader may know it
    job_id: str | None  # the run holding it, if the reader may know it
    mine: bool  # held by the reader's own tenant


@dataclass(frozen=True, slots=True)
class RackCells:
    rack_id: str
    serial: str
    index: int
    cells: tuple[GpuCell, ...]

    @property
    def allocated(self) -> int:
        return sum(1 for c in self.cells if c.state is CellState.ALLOCATED)


@dataclass(frozen=True, slots=True)
class FleetMap:
    site_id: str
    racks: tuple[RackCells, ...]
    tenants: dict[str, str]  # the holders the reader may know: id -> name, by id
    counts: dict[CellState, int]

    @property
    def gpus(self) -> int:
        return sum(len(r.cells) for r in self.racks)


@dataclass(frozen=True, slots=True)
class _Layout:
    racks: tuple[tuple[str, str, int], ...]  # (id, serial, index) by index
    gpus: tuple[tuple[str, str, str, int], ...]  # (rack id, serial, node id, slot) in order


def _layout(ctx: ServiceContext, site_id: str) -> _Layout:
    key = f"fleet_layout:{site_id}"
    found = ctx.cache.get(key)
    if isinstance(found, _Layout):
        return found
    with ctx.db.transaction(write=False) as tx:
        rack_rows = fleet_rows.racks(tx.session, site_id)
        gpu_rows = fleet_rows.gpus(tx.session, site_id)
    if not rack_rows:
        raise NotFound(f"no site {site_id!r}", site_id=site_id)
    layout = _Layout(tuple(rack_rows), tuple(gpu_rows))
    ctx.cache[key] = layout
    return layout


def fleet_map(ctx: ServiceContext, actor: Principal, site_id: str | None = None) -> FleetMap:
    """Every GPU of the site (default: the first) as ``actor`` may see it (module doc)."""
    actor.scope(Action.NODE_READ)
    site = site_id or default_site(ctx)
    layout = _layout(ctx, site)
    with ctx.db.transaction(write=False) as tx:
        states = {n: NodeState(s) for n, s in fleet_rows.node_states(tx.session, site).items()}
        holder = fleet_rows.holders(tx.session, site)
    sees_all = actor.can(Action.JOB_READ) and actor.is_operator
    cells_by_rack: dict[str, list[GpuCell]] = {rack_id: [] for rack_id, _, _ in layout.racks}
    counts = dict.fromkeys(CellState, 0)
    shown_tenants: set[str] = set()
    for rack_id, serial, node_id, slot in layout.gpus:
        node_state = states.get(node_id, NodeState.DOWN)
        tenant_id, job_id = holder.get(serial, (None, None))
        state = _state(node_state, job_id is not None)
        mine = tenant_id is not None and tenant_id == actor.tenant_id
        visible = tenant_id is not None and (sees_all or mine)
        if visible and tenant_id is not None:
            shown_tenants.add(tenant_id)
        counts[state] += 1
        cells_by_rack[rack_id].append(
            GpuCell(
                serial=serial,
                node_id=node_id,
                slot=slot,
                state=state,
                node_state=node_state,
                tenant_id=tenant_id if visible else None,
                job_id=job_id if visible else None,
                mine=mine,
            )
        )
    racks = tuple(
        RackCells(rack_id, serial, index, tuple(cells_by_rack[rack_id]))
        for rack_id, serial, index in layout.racks
    )
    if not sees_all and actor.tenant_id is not None:
        shown_tenants = {actor.tenant_id}
    tenant_names = names.tenant_names(ctx, shown_tenants)
    return FleetMap(site, racks, dict(sorted(tenant_names.items())), counts)


def _state(node_state: NodeState, held: bool) -> CellState:
    if node_state is NodeState.DOWN:
        return CellState.DOWN
    if held:
        return CellState.ALLOCATED
    return CellState.DRAINING if node_state is NodeState.DRAINING else CellState.IDLE


@dataclass(frozen=True, slots=True)
class HeldBy:
    """The run holding a GPU, for a reader who may know it."""

    job_id: str
    job_name: str
    tenant_id: str
    tenant_name: str
    purpose: str
    since: datetime


@dataclass(frozen=True, slots=True)
class GpuPanel:
    serial: str
    model: str
    site_id: str
    rack_id: str
    rack_serial: str
    node_id: str
    node_serial: str
    slot: int
    node_state: NodeState
    node_state_reason: str  # staff only ("" for tenants: reasons may name other tenants)
    state: CellState
    held_by: HeldBy | None  # None: idle, or held by someone the reader may not know
    mine: bool


def gpu_panel(ctx: ServiceContext, actor: Principal, serial: str) -> GpuPanel:
    """One GPU: where it is, its state and, where ``actor`` may know it, who holds it.
    Custody is not here: it is staff's (``services.custody.story``)."""
    actor.scope(Action.NODE_READ)
    wanted = serial.strip()
    if not wanted or len(wanted) > SERIAL_MAX:
        raise NotFound(f"no GPU with serial {serial[:SERIAL_MAX]!r}", serial=serial[:SERIAL_MAX])
    with ctx.db.transaction(write=False) as tx:
        gpu = tx.get(Gpu, wanted)
        if gpu is None:
            raise NotFound(f"no GPU with serial {wanted!r}", serial=wanted)
        node = tx.require(Node, gpu.node_id, "node")
        rack = tx.require(Rack, node.rack_id, "rack")
        row = tx.first(
            tx.select(GpuAllocation).where(
                GpuAllocation.gpu_serial == gpu.serial, GpuAllocation.end.is_(None)
            )
        )
        job = tx.get(Job, row.job_id) if row is not None else None
        tenant = tx.get(Tenant, row.tenant_id) if row is not None else None
    node_state = NodeState(node.state)
    mine = row is not None and row.tenant_id == actor.tenant_id
    held_by = None
    if row is not None and (actor.is_operator or mine):
        held_by = HeldBy(
            job_id=row.job_id,
            job_name=job.name if job is not None else "",
            tenant_id=row.tenant_id,
            tenant_name=tenant.name
            if tenant is not None
            else names.tenant_name(ctx, row.tenant_id),
            purpose=row.purpose,
            since=row.start,
        )
    return GpuPanel(
        serial=gpu.serial,
        model=gpu.model,
        site_id=node.site_id,
        rack_id=rack.id,
        rack_serial=rack.serial,
        node_id=node.id,
        node_serial=node.serial,
        slot=gpu.slot,
        node_state=node_state,
        node_state_reason=node.state_reason if actor.is_operator else "",
        state=_state(node_state, row is not None),
        held_by=held_by,
        mine=mine,
    )
