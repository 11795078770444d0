"""Set-at-a-time reads and writes for the scheduler's pass: one statement per kind of row,
never one round trip per row.

Design. The scheduler applies hundreds of decisions per pass. Each helper here does for a
set of ids what the row-at-a-time ORM calls did for one: lock job rows (one ``SELECT ... FOR
UPDATE``), read tenants with a share lock (``FOR SHARE``: an officer's change waits for the
pass, a new job's foreign-key check does not), read open allocations and free GPU slots,
write wait reasons and guarantee claims, and insert the rows a pass adds without the ORM
(:class:`RowBatch`: allocation rows, audit records; closing runs' allocations). Reads pass
their ids in chunks so a statement stays within every database's parameter limit.

On PostgreSQL the writes send all their rows as one JSON text (an array of rows, each an
array of the columns' values) unpacked by the server (``json_array_elements``, each value
cast to its column's type, in the order given): one statement whose text does not depend on
the number of rows, so the driver parses it once and the server plans it once. JSON is
encoded in C (``json.dumps``); the driver's array parameters it replaces were encoded in
Python, value by value (about 13 times the CPU for a pass's audit records). On SQLite
(in-process, no round trips) they are plain executemany.

Invariants: the bookkeeping writes (:func:`set_wait_reasons`, :func:`set_claims`) touch only
rows still queued and do not bump the row version (they never contradict a user's change, so
they must not make the user's next versioned write stale). Nothing here writes a job or node
row's columns the scheduler must reload, so nothing here needs a change-feed row (the jobs a
:class:`RowBatch` belongs to are updated through the session, which announces them).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    String,
    Table,
    TextClause,
    any_,
    bindparam,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, defer
from sqlalchemy.types import TypeDecorator

from gpulease.persistence import ledger_store
from gpulease.persistence.change_feed import announcement_values
from gpulease.persistence.db import StaleRow, Tx
from gpulease.persistence.tables import (
    AuditRecord,
    Base,
    Gpu,
    GpuAllocation,
    Job,
    Node,
    SchedulerChange,
    SchedulerStatus,
    Tenant,
)

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
    """The job rows, locked until commit, in one statement per chunk (without the dispatch
    record, a JSON document the scheduler never reads: loaded only if asked for)."""
    rows: dict[str, Job] = {}
    for part in chunks(sorted(set(ids))):
        for job in tx.session.scalars(
            select(Job)
            .options(defer(Job.dispatch))
            .where(among(tx, Job.id, part))
            .order_by(Job.id)
            .with_for_update()
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


def open_slots(tx: Tx, job_ids: Iterable[str]) -> dict[str, list[HeldGpu]]:
    """Each job's open allocations as (node, slot, serial), by node then slot: what a
    stopping run gives back, without loading the rows."""
    found: dict[str, list[HeldGpu]] = defaultdict(list)
    a = GpuAllocation
    for part in chunks(sorted(set(job_ids))):
        query = (
            select(a.job_id, a.node_id, a.slot, a.gpu_serial)
            .where(among(tx, a.job_id, part), a.end.is_(None))
            .order_by(a.node_id, a.slot)
        )
        for job_id, node_id, slot, serial in tx.session.execute(query):
            found[job_id].append(HeldGpu(node_id, slot, serial))
    return found


class HeldGpu(NamedTuple):
    """One GPU a run holds: what a launch or a give-back needs of its allocation row."""

    node_id: str
    slot: int
    gpu_serial: str


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
    """``UPDATE jobs SET column = value WHERE id = key AND state = 'queued'`` for every
    (key, value): on PostgreSQL one statement (``FROM unnest``), on SQLite one executemany."""
    if not values:
        return
    table = _table(Job)
    if tx.db.is_sqlite:
        update_each = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.state == "queued")
            .values({column: bindparam("b_value", type_=table.c[column].type)})
        )
        tx.session.execute(update_each, [{"b_id": k, "b_value": v} for k, v in values.items()])
        return
    statement = _statement(
        ("queued", column),
        lambda: text(
            f"UPDATE jobs SET {column} = u.value FROM {_unnest(table, ['id', column])} "
            "AS u(id, value) WHERE jobs.id = u.id AND jobs.state = 'queued'"
        ),
    )
    keys = sorted(values)  # rows locked in one order: two writers never wait on each other
    tx.session.execute(statement, _rows(table, ["id", column], [(k, values[k]) for k in keys]))


def close_allocations(tx: Tx, ends: Mapping[str, datetime]) -> None:
    """Close every open allocation row of each job at its end time (job id -> end)."""
    if not ends:
        return
    table = _table(GpuAllocation)
    if tx.db.is_sqlite:
        close_each = (
            update(table)
            .where(table.c.job_id == bindparam("b_job"), table.c.end.is_(None))
            .values(end=bindparam("b_end", type_=table.c.end.type))
        )
        tx.session.execute(close_each, [{"b_job": k, "b_end": v} for k, v in ends.items()])
        return
    statement = _statement(
        ("close",),
        lambda: text(
            f'UPDATE gpu_allocations SET "end" = u.ended FROM '
            f"{_unnest(table, ['job_id', 'end'])} AS u(job_id, ended) "
            'WHERE gpu_allocations.job_id = u.job_id AND gpu_allocations."end" IS NULL'
        ),
    )
    keys = sorted(ends)
    tx.session.execute(statement, _rows(table, ["job_id", "end"], [(k, ends[k]) for k in keys]))


def insert_rows(tx: Tx, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new rows (each a mapping of the same columns to values) in one statement, in
    order (a key the database assigns follows the order given). Rows inserted here are not
    announced on the change feed: not for jobs or nodes."""
    if not rows:
        return
    assert model not in (Job, Node), "jobs and nodes go through the session (change feed)"
    assert model is not AuditRecord, "audit records go through insert_audit_rows (ledger)"
    table = _table(model)
    names = list(rows[0])
    if tx.db.is_sqlite:
        tx.session.execute(insert(table), list(rows))
        return
    statement = _statement(
        ("insert", table.name, *names),
        lambda: text(
            f"INSERT INTO {table.name} ({', '.join(_quoted(n) for n in names)}) "
            f"SELECT * FROM {_unnest(table, names)} AS u"
        ),
    )
    tx.session.execute(statement, _rows(table, names, [tuple(r[n] for n in names) for r in rows]))


def insert_audit_rows(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert audit records (``services.audit.values``) in one statement, as
    :func:`insert_rows`, and tell the ledger their ids (``ledger_store.register``): they
    enter it at the end of the transaction, like the rows the session writes."""
    if not rows:
        return
    table = _table(AuditRecord)
    names = list(rows[0])
    if tx.db.is_sqlite:
        statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        ids = list(tx.session.execute(statement, list(rows)).scalars())
    else:
        returning = _statement(
            ("insert-audit", *names),
            lambda: text(
                f"INSERT INTO {table.name} ({', '.join(_quoted(n) for n in names)}) "
                f"SELECT * FROM {_unnest(table, names)} AS u RETURNING id"
            ),
        )
        values = _rows(table, names, [tuple(r[n] for n in names) for r in rows])
        # ids follow the order given (the SELECT's ORDER BY): sorted, they pair with the rows
        ids = sorted(tx.session.execute(returning, values).scalars())
    ledger_store.register(tx.session, ids, rows)


# The job columns a run's start or end changes (``services.runs``): what update_jobs writes.
RUN_COLUMNS = (
    "state",
    "wait_reason",
    "end_reason",
    "exit_code",
    "started_at",
    "ended_at",
    "preempt_at",
    "preempt_reason",
    "guaranteed_since",
    "attained_gpu_s",
    "run_s",
    "starts",
    "preemptions",
    "borrowed",
)
_RUN_KEYS = frozenset(RUN_COLUMNS)


def update_jobs(tx: Tx, rows: Iterable[Job]) -> int:
    """Write the pending changes of loaded job rows in one statement instead of one
    versioned UPDATE per row at the session's flush (PostgreSQL; elsewhere, and for a row
    with a change outside :data:`RUN_COLUMNS`, the flush writes them as usual).

    Each row is written only at the version it was read (a row changed meanwhile raises
    ``StaleRow``, as the flush would) and its version moves on by one; each is announced on
    the change feed with the writer's origin, as the flush's hook would; the rows leave the
    session (detached, they keep the values written). Returns how many were written."""
    if tx.db.is_sqlite:
        return 0
    session = tx.session
    taken: list[Job] = []
    for row in rows:
        state = inspect(row)
        changed = state.committed_state
        if state.session is session and changed and _RUN_KEYS.issuperset(changed):
            taken.append(row)
    if not taken:
        return 0
    taken.sort(key=lambda row: row.id)
    table = _table(Job)
    names = ["id", "version", *RUN_COLUMNS]
    statement = _statement(
        ("jobs",),
        lambda: text(
            f"UPDATE jobs SET {', '.join(f'{_quoted(c)} = u.{_quoted(c)}' for c in RUN_COLUMNS)},"
            f" version = u.version + 1 FROM {_unnest(table, names)} "
            f"AS u({', '.join(_quoted(n) for n in names)}) "
            "WHERE jobs.id = u.id AND jobs.version = u.version RETURNING jobs.id"
        ),
    )
    values = [tuple(getattr(row, name) for name in names) for row in taken]
    with session.no_autoflush:  # the session must not write these rows first
        written = set(session.execute(statement, _rows(table, names, values)).scalars())
    if len(written) != len(taken):
        raise StaleRow(
            f"UPDATE statement on table 'jobs' expected to update {len(taken)} row(s); "
            f"{len(written)} were matched."
        )
    changes = announcement_values(session, taken)
    for row in taken:
        session.expunge(row)
        row.version += 1  # as the flush would (detached: nothing more is written)
    insert_rows(tx, SchedulerChange, changes)  # after: its statement may autoflush
    return len(taken)


def heartbeat(tx: Tx, site_id: str, leader: str, at: datetime, failed_passes: int) -> None:
    """The site's scheduler status row: this leader passed at ``at`` (one more tick), in one
    statement (an upsert: no read of the row first)."""
    table = _table(SchedulerStatus)
    dialect = sqlite if tx.db.is_sqlite else postgresql
    statement = dialect.insert(table).values(
        site_id=site_id, leader=leader, last_tick_at=at, ticks=1, failed_passes=failed_passes
    )
    tx.session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.site_id],
            set_={
                "leader": statement.excluded.leader,
                "last_tick_at": statement.excluded.last_tick_at,
                "ticks": table.c.ticks + 1,
                "failed_passes": statement.excluded.failed_passes,
            },
        )
    )


@dataclass
class RowBatch:
    """Rows a pass writes set at a time instead of through the session (``services.runs``
    fills it): allocation rows to add, runs whose open allocations close (job id -> end),
    audit records. :meth:`write` sends them, in that transaction, then empties it."""

    allocations: list[dict[str, Any]] = field(default_factory=list)
    closes: dict[str, datetime] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)

    def write(self, tx: Tx) -> None:
        close_allocations(tx, self.closes)  # first: a row added below stays open
        insert_rows(tx, GpuAllocation, self.allocations)
        insert_audit_rows(tx, self.audit)
        self.allocations, self.closes, self.audit = [], {}, []


# ----------------------------------------------------------- PostgreSQL arrays
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_STATEMENTS: dict[tuple[str, ...], TextClause] = {}


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _quoted(name: str) -> str:
    return str(_PG.identifier_preparer.quote(name))


def _statement(key: tuple[str, ...], build: Callable[[], TextClause]) -> TextClause:
    """One statement per key, built once (its text never depends on the rows)."""
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = build()
    return statement


def _unnest(table: Table, names: Sequence[str]) -> str:
    """The rows of :func:`_rows`' one parameter as a subquery, one column per name, each
    value cast to its column's type, in the order given (alias it ``AS u(...)``)."""
    values = []
    for n, name in enumerate(names):
        kind = table.c[name].type.compile(dialect=_PG)
        values.append(f"CAST(x.e ->> {n} AS {kind})")
    return (
        f"(SELECT {', '.join(values)} FROM json_array_elements(CAST(:rows AS json)) "
        "WITH ORDINALITY AS x(e, n) ORDER BY x.n)"
    )


def _rows(table: Table, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, str]:
    """The one parameter of :func:`_unnest`: the rows as a JSON array of arrays, each value
    as the column's type binds it (UTC datetimes checked, JSON serialised as the ORM stores
    it, then carried as a string); datetimes in ISO 8601 with their offset."""
    binders = [_binder(table.c[name]) for name in names]
    if any(bind is not None for bind in binders):
        rows = [
            [
                value if bind is None else bind(value)
                for bind, value in zip(binders, row, strict=True)
            ]
            for row in rows
        ]
    return {"rows": json.dumps(rows, default=_iso, allow_nan=False, separators=(",", ":"))}


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a value a bulk write carries")


def _binder(column: Column[Any]) -> Callable[[Any], Any] | None:
    kind = column.type
    if isinstance(kind, JSON):
        # JSON columns store Python None as JSON null unless ``none_as_null``, as the ORM
        keep_null = kind.none_as_null
        return lambda v: None if v is None and keep_null else json.dumps(v)
    if isinstance(kind, TypeDecorator):
        return lambda v: kind.process_bind_param(v, _PG)
    return None
