"""The metering's reads: allocation rows, node state changes and restarts, by key and in
pages (``services.metering``, ``services.sla_evidence``, ``services.metrics``).

Every read that may grow with history is keyset-paged (``id > after ORDER BY id LIMIT n``)
and selects columns, never mapped objects, so a page costs its rows and nothing stays in
the session's identity map; lists of ids are given in chunks of :data:`CHUNK`.

Invariant: read-only, in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import aliased

from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AuditRecord, GpuAllocation, Job, Lease, Node

CHUNK = 500  # ids in one IN list

ALLOCATION_COLUMNS = (
    GpuAllocation.id,
    GpuAllocation.tenant_id,
    GpuAllocation.job_id,
    GpuAllocation.gpu_serial,
    GpuAllocation.start,
    GpuAllocation.end,
    GpuAllocation.capacity,
    GpuAllocation.lease_id,
    GpuAllocation.lender_lease_id,
    GpuAllocation.lender_tenant,
)


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    given = sorted(set(ids))
    for i in range(0, len(given), CHUNK):
        yield given[i : i + CHUNK]


def _overlapping(table: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(table.start < end, or_(table.end.is_(None), table.end > start))


def _theirs(table: Any, tenants: Sequence[str]) -> ColumnElement[bool]:
    return or_(table.tenant_id.in_(tenants), table.lender_tenant.in_(tenants))


def allocation_scope(
    start: datetime, end: datetime, tenants: Sequence[str] | None
) -> ColumnElement[bool]:
    """Allocation rows overlapping ``[start, end)``: all (``tenants`` None), or those on the
    GPUs the tenants' rows (theirs or lent by them) held then, other tenants' included."""
    overlap = _overlapping(GpuAllocation, start, end)
    if tenants is None:
        return overlap
    other = aliased(GpuAllocation)
    serials = select(other.gpu_serial).where(
        _overlapping(other, start, end), _theirs(other, list(tenants))
    )
    return and_(overlap, GpuAllocation.gpu_serial.in_(serials))


def allocation_page(tx: Tx, scope: ColumnElement[bool], after: int, limit: int) -> list[Any]:
    """The next ``limit`` rows of ``scope`` by id after ``after`` (:data:`ALLOCATION_COLUMNS`)."""
    query = (
        select(*ALLOCATION_COLUMNS)
        .where(scope, GpuAllocation.id > after)
        .order_by(GpuAllocation.id)
        .limit(limit)
    )
    return list(tx.session.execute(query).all())


def allocation_tenants(
    tx: Tx, start: datetime, end: datetime, tenants: Sequence[str] | None
) -> set[str]:
    """The tenants of the rows overlapping ``[start, end)`` (of ``tenants`` or lent by them)."""
    query = select(GpuAllocation.tenant_id).distinct()
    query = query.where(_overlapping(GpuAllocation, start, end))
    if tenants is not None:
        query = query.where(_theirs(GpuAllocation, list(tenants)))
    return set(tx.session.scalars(query))


def lease_windows(tx: Tx, lease_ids: Iterable[str]) -> dict[str, tuple[datetime, datetime]]:
    """Each named lease's ``[start, end)``."""
    out: dict[str, tuple[datetime, datetime]] = {}
    for chunk in _chunks(lease_ids):
        query = select(Lease.id, Lease.start, Lease.end).where(Lease.id.in_(chunk))
        for lease_id, lo, hi in tx.session.execute(query):
            out[lease_id] = (lo, hi)
    return out


def not_preemptible(tx: Tx, job_ids: Iterable[str]) -> set[str]:
    """Those of ``job_ids`` submitted not preemptible."""
    out: set[str] = set()
    for chunk in _chunks(job_ids):
        query = select(Job.id).where(Job.id.in_(chunk), Job.preemptible.is_(False))
        out.update(tx.session.scalars(query))
    return out


def claimed_page(
    tx: Tx,
    start: datetime,
    end: datetime,
    tenants: Sequence[str] | None,
    capacity: str,
    after: int,
    limit: int,
) -> list[Any]:
    """Rows (id, job_id, start, claimed_at, lease_id) of runs of ``capacity`` that started
    in ``(start, ...)`` after a claim made before ``end``, by id after ``after``."""
    query = select(
        GpuAllocation.id,
        GpuAllocation.job_id,
        GpuAllocation.start,
        GpuAllocation.claimed_at,
        GpuAllocation.lease_id,
    ).where(
        GpuAllocation.claimed_at.is_not(None),
        GpuAllocation.claimed_at < end,
        GpuAllocation.start > start,
        GpuAllocation.capacity == capacity,
        GpuAllocation.id > after,
    )
    if tenants is not None:
        query = query.where(GpuAllocation.tenant_id.in_(list(tenants)))
    return list(tx.session.execute(query.order_by(GpuAllocation.id).limit(limit)).all())


def billed_leases(tx: Tx, start: datetime, end: datetime, states: Iterable[str]) -> list[Any]:
    """(id, tenant_id, site_id, gpus, start, end) of the leases in ``states`` overlapping
    ``[start, end)``, by id."""
    query = (
        select(Lease.id, Lease.tenant_id, Lease.site_id, Lease.gpus, Lease.start, Lease.end)
        .where(Lease.state.in_(sorted(states)), Lease.start < end, Lease.end > start)
        .order_by(Lease.id)
    )
    return list(tx.session.execute(query).all())


def site_nodes(tx: Tx, site_ids: Sequence[str]) -> list[Any]:
    """(id, site_id, gpus, state) of the sites' nodes, by id."""
    query = (
        select(Node.id, Node.site_id, Node.gpus, Node.state)
        .where(Node.site_id.in_(list(site_ids)))
        .order_by(Node.id)
    )
    return list(tx.session.execute(query).all())


NODE_STATE = "node.state"  # the audit action of a node state change (services.inventory)


def node_change_page(
    tx: Tx, node_ids: Sequence[str], before: datetime, after: int, limit: int
) -> list[Any]:
    """(id, subject_id, at, before, after) of the nodes' state changes at times before
    ``before``, by id after ``after`` (at most :data:`CHUNK` nodes)."""
    query = (
        select(
            AuditRecord.id,
            AuditRecord.subject_id,
            AuditRecord.at,
            AuditRecord.before,
            AuditRecord.after,
        )
        .where(
            AuditRecord.subject_type == "node",
            AuditRecord.action == NODE_STATE,
            AuditRecord.subject_id.in_(list(node_ids)),
            AuditRecord.at < before,
            AuditRecord.id > after,
        )
        .order_by(AuditRecord.id)
        .limit(limit)
    )
    return list(tx.session.execute(query).all())


def first_node_states(tx: Tx, node_ids: Iterable[str]) -> dict[str, Any]:
    """The ``before`` of each node's first state change (nodes that have one)."""
    out: dict[str, Any] = {}
    for chunk in _chunks(node_ids):
        firsts = (
            select(func.min(AuditRecord.id))
            .where(
                AuditRecord.subject_type == "node",
                AuditRecord.action == NODE_STATE,
                AuditRecord.subject_id.in_(chunk),
            )
            .group_by(AuditRecord.subject_id)
        )
        query = select(AuditRecord.subject_id, AuditRecord.before).where(AuditRecord.id.in_(firsts))
        for node_id, state in tx.session.execute(query):
            out[node_id] = state
    return out


def last_run_ends(tx: Tx, job_ids: Iterable[str]) -> dict[str, datetime | None]:
    """Each job's latest end of a closed allocation row (its previous run's end)."""
    out: dict[str, datetime | None] = {}
    for chunk in _chunks(job_ids):
        query = (
            select(GpuAllocation.job_id, func.max(GpuAllocation.end))
            .where(GpuAllocation.job_id.in_(chunk), GpuAllocation.end.is_not(None))
            .group_by(GpuAllocation.job_id)
        )
        for job_id, end in tx.session.execute(query):
            out[job_id] = end
    return out
