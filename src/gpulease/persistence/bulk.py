"""Set-at-a-time reads and writes for the scheduler's pass: one statement per kind of row,
never one round trip per row.

Design. The scheduler applies hundreds of decisions per pass. Each helper here does for a
set of ids what the row-at-a-time ORM calls did for one: lock job rows (one ``SELECT ... FOR
UPDATE``), read tenants with a share lock (``FOR SHARE``: an officer's change waits for the
pass, a new job's foreign-key check does not), read open allocations and free GPU slots, and
write wait reasons and guarantee claims with one executemany. Ids go in chunks so a statement
stays within every database's parameter limit.

Invariants: the bookkeeping writes (:func:`set_wait_reasons`, :func:`set_claims`) touch only
rows still queued and do not bump the row version (they never contradict a user's change, so
they must not make the user's next versioned write stale).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, String, Table, any_, bindparam, cast, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import values as sa_values
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute

from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Gpu, GpuAllocation, Job, Node, Tenant

CHUNK = 900
T = TypeVar("T")


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def among(tx: Tx, column: InstrumentedAttribute[str], ids: list[str]) -> ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``column = ANY(:ids)``, one array parameter, so
    the statement's text (parsed by the driver, planned by the server) does not grow with
    the number of ids."""
    if tx.db.is_sqlite:
        return column.in_(ids)
    return column == any_(bindparam(None, ids, type_=ARRAY(String())))


def lock_jobs(tx: Tx, ids: Iterable[str]) -> dict[str, Job]:
    """The job rows, locked until commit, in one statement per chunk."""
    rows: dict[str, Job] = {}
    for part in chunks(sorted(set(ids))):
        for job in tx.session.scalars(
            select(Job).where(among(tx, Job.id, part)).order_by(Job.id).with_for_update()
        ):
            rows[job.id] = job
    return rows


def load_jobs(tx: Tx, ids: Iterable[str]) -> list[Job]:
    rows: list[Job] = []
    for part in chunks(sorted(set(ids))):
        rows.extend(tx.session.scalars(select(Job).where(among(tx, Job.id, part))))
    return rows


def share_tenants(tx: Tx, ids: Iterable[str]) -> dict[str, Tenant]:
    """The tenant rows under a share lock: standing cannot change before commit, and new
    jobs of those tenants are not blocked."""
    rows: dict[str, Tenant] = {}
    for part in chunks(sorted(set(ids))):
        query = select(Tenant).where(among(tx, Tenant.id, part)).with_for_update(read=True)
        for tenant in tx.session.scalars(query):
            rows[tenant.id] = tenant
    return rows


def nodes_by_id(tx: Tx, ids: Iterable[str]) -> dict[str, Node]:
    rows: dict[str, Node] = {}
    for part in chunks(sorted(set(ids))):
        for node in tx.session.scalars(select(Node).where(among(tx, Node.id, part))):
            rows[node.id] = node
    return rows


def open_allocations(tx: Tx, job_ids: Iterable[str]) -> dict[str, list[GpuAllocation]]:
    """Each job's open allocation rows (by node, then slot)."""
    found: dict[str, list[GpuAllocation]] = defaultdict(list)
    for part in chunks(sorted(set(job_ids))):
        query = (
            select(GpuAllocation)
            .where(among(tx, GpuAllocation.job_id, part), GpuAllocation.end.is_(None))
            .order_by(GpuAllocation.node_id, GpuAllocation.slot)
        )
        for row in tx.session.scalars(query):
            found[row.job_id].append(row)
    return found


def free_gpus(tx: Tx, node_ids: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
    """Each node's free GPUs as (slot, serial), lowest slot first."""
    held: dict[str, set[int]] = defaultdict(set)
    gpus: dict[str, list[tuple[int, str]]] = {node: [] for node in node_ids}
    for part in chunks(sorted(set(node_ids))):
        for node_id, slot in tx.session.execute(
            select(GpuAllocation.node_id, GpuAllocation.slot).where(
                among(tx, GpuAllocation.node_id, part), GpuAllocation.end.is_(None)
            )
        ):
            held[node_id].add(slot)
        for node_id, slot, serial in tx.session.execute(
            select(Gpu.node_id, Gpu.slot, Gpu.serial)
            .where(among(tx, Gpu.node_id, part))
            .order_by(Gpu.node_id, Gpu.slot)
        ):
            if slot not in held[node_id]:
                gpus[node_id].append((slot, serial))
    return gpus


def set_wait_reasons(tx: Tx, reasons: dict[str, str]) -> None:
    """Write queued jobs' wait reasons in one executemany (no version bump)."""
    _set_queued(tx, "wait_reason", reasons)


def set_claims(tx: Tx, claims: dict[str, datetime | None]) -> None:
    """Write queued jobs' ``guaranteed_since`` in one executemany (no version bump)."""
    _set_queued(tx, "guaranteed_since", claims)


def _set_queued(tx: Tx, column: str, values: Mapping[str, object]) -> None:
    """On PostgreSQL ``UPDATE jobs SET column = v.value FROM (VALUES ...) v WHERE id = v.id
    AND state = 'queued'``, one statement per chunk; on SQLite (in-process, no round trips,
    no column aliases on VALUES) one executemany."""
    if not values:
        return
    table = Job.__table__
    assert isinstance(table, Table)
    target = table.c[column]
    if tx.db.is_sqlite:
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.state == "queued")
            .values({column: bindparam("b_value", type_=target.type)})
        )
        tx.session.execute(statement, [{"b_id": k, "b_value": v} for k, v in values.items()])
        return
    for part in chunks(sorted(values)):
        rows = sa_values(
            sa_column("b_id", String()), sa_column("b_value", target.type), name="b_rows"
        ).data([(key, values[key]) for key in part])
        tx.session.execute(
            update(table)
            .where(table.c.id == rows.c.b_id, table.c.state == "queued")
            .values({column: cast(rows.c.b_value, target.type)})  # NULLs alone read as text
        )
