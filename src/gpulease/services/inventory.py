"""Sites, racks, nodes and GPUs: registering a site, its topology, node states.

A site is registered whole from a hardware preset (``gb200-nvl72``: racks of 18 trays x 4
GPUs). Each rack, tray and GPU gets a serial number; their chains of custody are recorded
through ``services.custody`` (checked and audited), as the demo does. The scheduler sees
the site as the core's :class:`~gpulease.inventory.topology.Cluster`, built here from the
rows (rack and node ``index`` columns are the core's dense indices).

Taking a node down requeues (or fails, if not requeueable) the jobs running on it, in the
same transaction; draining only stops new work landing there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gpulease.compliance.countries import country_code, site_timezone
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.domain.states import NODE_TRANSITIONS, JobState, NodeState, transition
from gpulease.inventory.hardware import hardware_preset
from gpulease.inventory.topology import Cluster
from gpulease.inventory.topology import Node as CoreNode
from gpulease.inventory.topology import Rack as CoreRack
from gpulease.persistence.tables import (
    Gpu,
    GpuAllocation,
    Job,
    MaintenanceWindow,
    Node,
    Rack,
    Site,
)
from gpulease.services import audit, runs
from gpulease.services.context import ServiceContext, new_id


@dataclass(frozen=True, slots=True)
class SiteTopology:
    """The core's view of a site plus the mapping between row ids and dense indices."""

    cluster: Cluster
    node_ids: tuple[str, ...]  # by core node index
    node_index: dict[str, int]


def register_site(
    ctx: ServiceContext,
    actor: Principal,
    *,
    site_id: str,
    name: str,
    country: str,
    city: str,
    hardware: str,
    racks: int,
    serial_prefix: str,
    timezone: str | None = None,
) -> Site:
    """A site in a country (its jurisdiction) and IANA ``timezone`` (default: the country's,
    ``compliance.countries.DEFAULT_TIMEZONES``), with every rack, node and GPU."""
    actor.scope(Action.SITE_REGISTER)
    preset = hardware_preset(hardware)
    if racks < 1:
        raise InvalidRequest("a site needs at least one rack", field="racks")
    code = country_code(country, field="country")
    zone = site_timezone(timezone, code)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        if tx.get(Site, site_id) is not None:
            raise Conflict(f"site {site_id!r} already exists", site_id=site_id)
        site = Site(
            id=site_id,
            name=name,
            country=code,
            city=city,
            hardware=preset.name,
            created_at=now,
            timezone=zone,
        )
        tx.add(site)
        tx.flush()
        rows: list[Rack | Node | Gpu] = []
        node_index = 0
        for r in range(racks):
            rack_id = f"{site_id}-r{r:02d}"
            rack_serial = f"{serial_prefix}-{r + 1:04d}"
            rows.append(
                Rack(id=rack_id, site_id=site_id, index=r, serial=rack_serial, model=preset.name)
            )
            for n in range(preset.nodes_per_rack):
                node_id = f"{rack_id}-n{n:02d}"
                rows.append(
                    Node(
                        id=node_id,
                        site_id=site_id,
                        rack_id=rack_id,
                        index=node_index,
                        serial=f"{rack_serial}-T{n + 1:02d}",
                        gpus=preset.gpus_per_node,
                        state=NodeState.UP.value,
                        state_reason="",
                    )
                )
                for g in range(preset.gpus_per_node):
                    gpu_number = node_index * preset.gpus_per_node + g
                    rows.append(
                        Gpu(
                            serial=f"{serial_prefix}-G{gpu_number:06d}",
                            node_id=node_id,
                            slot=g,
                            model=preset.gpu_model,
                        )
                    )
                node_index += 1
        # Parents first so foreign keys hold at every flush.
        for kind in (Rack, Node, Gpu):
            tx.add_all([row for row in rows if isinstance(row, kind)])
            tx.flush()
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="site.register",
            subject_type="site",
            subject_id=site_id,
            after={
                "name": name,
                "racks": racks,
                "hardware": preset.name,
                "gpus": racks * preset.gpus_per_rack,
                "country": code,
                "timezone": zone,
            },
        )
    for key in ("site_infos", "default_site"):  # a new site: the process's lists are stale
        ctx.cache.pop(key, None)
    return site


def placement_lock(site_id: str) -> str:
    """The lock that serialises the scheduler applying starts with node state changes."""
    return f"placement:{site_id}"


def site_topology(ctx: ServiceContext, site_id: str) -> SiteTopology:
    with ctx.db.transaction(write=False) as tx:
        site = tx.require(Site, site_id, "site")
        racks = tx.all(tx.select(Rack).where(Rack.site_id == site_id).order_by(Rack.index))
        nodes = tx.all(tx.select(Node).where(Node.site_id == site_id).order_by(Node.index))
    rack_index = {rack.id: rack.index for rack in racks}
    members: dict[int, list[int]] = {rack.index: [] for rack in racks}
    core_nodes = []
    for node in nodes:
        members[rack_index[node.rack_id]].append(node.index)
        core_nodes.append(CoreNode(node.index, node.id, rack_index[node.rack_id], node.gpus))
    core_racks = tuple(CoreRack(r.index, r.id, tuple(members[r.index])) for r in racks)
    cluster = Cluster(site.id, core_racks, tuple(core_nodes), site.hardware)
    ids = tuple(node.id for node in nodes)
    return SiteTopology(cluster, ids, {node_id: i for i, node_id in enumerate(ids)})


def cached_topology(ctx: ServiceContext, site_id: str) -> SiteTopology:
    """A site's topology, read once per process (a site's racks and nodes never change)."""
    key = f"topology:{site_id}"
    found = ctx.cache.get(key)
    if not isinstance(found, SiteTopology):
        found = site_topology(ctx, site_id)
        ctx.cache[key] = found
    return found


def list_sites(ctx: ServiceContext) -> list[Site]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(tx.select(Site).order_by(Site.id))


def default_site(ctx: ServiceContext) -> str:
    """Where a lease request that names no site goes: the largest site (most GPUs; ties:
    the first by id), the main site of an operator with regional ones. Cached once known.
    (A job that names no site is dispatched among them all: ``services.sites``.)"""
    found = ctx.cache.get("default_site")
    if isinstance(found, str):
        return found
    sites = list_sites(ctx)
    if not sites:
        raise InvalidRequest("no site is registered; run `gpulease init --demo`", field="site_id")
    size = {s.id: cached_topology(ctx, s.id).cluster.total_gpus for s in sites}
    chosen = min(sites, key=lambda s: (-size[s.id], s.id)).id
    ctx.cache["default_site"] = chosen
    return chosen


@dataclass(frozen=True, slots=True)
class NodeView:
    node: Node
    rack_index: int
    used_gpus: int
    tenants: tuple[str, ...]  # only filled for operators


def list_nodes(
    ctx: ServiceContext,
    actor: Principal,
    site_id: str | None = None,
    state: str | None = None,
    *,
    node_id: str | None = None,
) -> list[NodeView]:
    """Nodes with their use. Tenants see capacity and state, not who else uses a node."""
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(Node).order_by(Node.site_id, Node.index)
        if node_id is not None:
            query = query.where(Node.id == node_id)
        if site_id is not None:
            query = query.where(Node.site_id == site_id)
        if state is not None:
            query = query.where(Node.state == NodeState(state).value)
        nodes = tx.all(query)
        racks = {r.id: r.index for r in tx.all(tx.select(Rack))}
        open_rows = tx.all(tx.select(GpuAllocation).where(GpuAllocation.end.is_(None)))
    used: dict[str, int] = {}
    who: dict[str, set[str]] = {}
    for row in open_rows:
        used[row.node_id] = used.get(row.node_id, 0) + 1
        who.setdefault(row.node_id, set()).add(row.tenant_id)
    return [
        NodeView(
            node,
            racks[node.rack_id],
            used.get(node.id, 0),
            tuple(sorted(who.get(node.id, ()))) if actor.is_operator else (),
        )
        for node in nodes
    ]


def set_node_state(
    ctx: ServiceContext, actor: Principal, node_id: str, target: NodeState, reason: str
) -> tuple[Node, list[str]]:
    """Change a node's state; going DOWN requeues or fails its running jobs (returned)."""
    actor.scope(Action.NODE_CHANGE)
    if not reason.strip():
        raise InvalidRequest("say why the node changes state", field="reason")
    now = ctx.now()
    hit: list[str] = []
    with ctx.db.transaction() as tx:
        node = tx.require(Node, node_id, "node")
        # Serialise with the scheduler applying starts: the running jobs read below include
        # any start committed on this node just now, and no start lands on it after this.
        tx.lock(placement_lock(node.site_id))
        before = audit.fields_of(node, ("state", "state_reason"))
        node.state = transition(NODE_TRANSITIONS, NodeState(node.state), target, subject=node_id)
        node.state_reason = audit.clip(reason)
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="node.state",
            subject_type="node",
            subject_id=node_id,
            before=before,
            after=audit.fields_of(node, ("state", "state_reason")),
            reason=reason,
        )
        if target is NodeState.DOWN:
            rows = tx.all(
                tx.select(GpuAllocation).where(
                    GpuAllocation.node_id == node_id, GpuAllocation.end.is_(None)
                )
            )
            for job_id in sorted({row.job_id for row in rows}):
                job = tx.require(Job, job_id, "job")
                if job.state == JobState.RUNNING:
                    runs.requeue_or_fail(
                        tx,
                        job,
                        now,
                        reason=f"node {node_id} went down: {reason}",
                        actor=actor.user_id,
                    )
                    hit.append(job_id)
    return node, hit


def add_maintenance(
    ctx: ServiceContext,
    actor: Principal,
    node_id: str,
    start: datetime,
    end: datetime,
    reason: str,
) -> MaintenanceWindow:
    """Plan a node's maintenance: the lease calendar will not sell its GPUs over the window."""
    actor.scope(Action.NODE_MAINTAIN)
    if end <= start:
        raise InvalidRequest("end must be after start", field="end")
    now = ctx.now()
    with ctx.db.transaction() as tx:
        node = tx.require(Node, node_id, "node")
        window = MaintenanceWindow(
            id=new_id("maint"),
            site_id=node.site_id,
            node_id=node_id,
            start=start,
            end=end,
            reason=reason,
        )
        tx.add(window)
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="node.maintenance",
            subject_type="node",
            subject_id=node_id,
            after={"start": start.isoformat(), "end": end.isoformat()},
            reason=reason,
        )
    return window
