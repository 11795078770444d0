"""A job submission's statements on PostgreSQL, run on the event loop (psycopg async).

Design. The API's submission route (``services.lean_submit.submit_lean``) needs one read and one
write. Through SQLAlchemy's session in a worker thread they cost more CPU than the rest of
the request (the thread hop, the session, the unit of work, the compiled-statement cache);
here they are fixed statements sent by psycopg's ``AsyncConnection`` on the server's own
event loop, with PostgreSQL's ``$n`` placeholders on a raw cursor (psycopg rewrites its
``%(name)s`` form at every execution past 50 parameters), each prepared by the server after
its first uses (``prepare_threshold``):

* :meth:`LeanSubmissions.facts`: the authentication epoch, the tenant's row (its standing)
  and the user's ``Idempotency-Key`` record, the statement of
  ``persistence.auth.submission_facts``, plus the digest of the tenant's row;
* :meth:`LeanSubmissions.insert`: the job, its audit record, its idempotency record and its
  change-feed row (:func:`announcement`: the row ``persistence.change_feed`` announces a new
  job with) in one ``INSERT`` with data-modifying ``WITH`` clauses, as ``Tx.insert_new``
  writes them; the rows are given as column values, no ORM instance is built; the audit
  record is queued for the ledger's sequencer in the same statement
  (``ledger_store.submission_ctes``: only if the record was inserted);
* :meth:`LeanSubmissions.site_loads`: every site's row and the sums a dispatch reads
  (``persistence.site_load``) with their digest, for a submission that names no site;
  kept per tenant (:meth:`LeanSubmissions.kept_loads`), so that a later one is decided on
  them and inserted by :meth:`LeanSubmissions.insert_if` only while they still read so;
* :meth:`LeanSubmissions.insert_if`: both in one statement, once the tenant's row is kept
  (:meth:`LeanSubmissions.kept`, the row the last read returned and its digest): the
  caller decides on the kept row, and the rows are inserted only if the statement reads
  the same facts (the credential's epoch, the row's digest, no record of the key); else
  it returns what it read, nothing written, and the caller decides again on that.

They run on autocommit connections, so none needs ``BEGIN`` nor ``COMMIT``: one or two
round trips instead of four. That is safe because nothing is decided on a lock: at READ
COMMITTED (the isolation ``persistence.db`` uses) a read followed by a write in one
transaction sees nothing the same read and write made apart would not, and each
statement is atomic on its own (every row, or none; the conditional one reads and writes
in one snapshot). A racing request with the same key loses on the unique index and
nothing of it is written.

Connections. A small pool per event loop (a test client runs its own loop; the served app
one), sized to the route's concurrency; a connection whose statement failed other than by
the rows' values is dropped, and an idle one the server ended meanwhile (a restart, a
failover, an idle timeout) is closed before a statement is sent on it.
:meth:`LeanSubmissions.close` closes the running loop's pool (the app's lifespan calls it).

Invariants: only PostgreSQL (:func:`for_url` gives None for SQLite, whose submissions take
the session path); a kept row is only ever a guess that the database confirms in the
statement that writes; a statement's failure is reported as :class:`RowsRefused` when it
wrote nothing because of the rows (the caller then takes the session path, which decides
and reports it as it always has) and as ``DatabaseUnavailable`` otherwise.
"""

from __future__ import annotations

import asyncio
import select as io_select
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Json
from sqlalchemy import JSON, Table, and_, bindparam, func, literal_column, select
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from gpulease.ledger.records import record_leaf
from gpulease.persistence import ledger_store, site_load
from gpulease.persistence.auth import SubmissionFacts
from gpulease.persistence.db import DatabaseUnavailable
from gpulease.persistence.site_load import KeptLoads
from gpulease.persistence.tables import (
    AuditRecord,
    AuthEpoch,
    Base,
    IdempotencyRecord,
    Job,
    SchedulerChange,
    Tenant,
)

KEPT_TENANTS = 1024  # tenant rows kept as read (per process); more empties the memo
_DIALECT = make_url("postgresql+psycopg://").get_dialect()()
# PostgreSQL's $1 placeholders: psycopg's raw cursor sends them as they are (its usual
# %(name)s are rewritten per execution, and not cached past 50 parameters)
_NUMBERED = make_url("postgresql+psycopg://").get_dialect()(paramstyle="numeric_dollar")  # type: ignore[call-arg]


class RowsRefused(Exception):
    """The insert wrote nothing because of the rows (a key taken, a value refused)."""


@dataclass(frozen=True, slots=True)
class _Columns:
    """How a table's columns are written and read: (key, to database, from database)."""

    names: tuple[str, ...]
    to_db: dict[str, Callable[[Any], Any]]
    from_db: dict[str, Callable[[Any], Any]]


def _columns(table: Table) -> _Columns:
    to_db: dict[str, Callable[[Any], Any]] = {}
    from_db: dict[str, Callable[[Any], Any]] = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, TypeDecorator):
            to_db[column.key], from_db[column.key] = _decorated(kind)
        elif isinstance(kind, JSON):
            to_db[column.key] = _json
    return _Columns(tuple(c.key for c in table.columns), to_db, from_db)


def _decorated(
    kind: TypeDecorator[Any],
) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """A column type's own conversions (``UtcDateTime``: aware UTC in, aware UTC out)."""

    def to_db(value: Any) -> Any:
        return kind.process_bind_param(value, _DIALECT)

    def from_db(value: Any) -> Any:
        return kind.process_result_value(value, _DIALECT)

    return to_db, from_db


def _json(value: Any) -> Any:
    return None if value is None else Json(value)


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_TENANTS = _table(Tenant)
_KEYS = _table(IdempotencyRecord)
_JOBS = _table(Job)
_AUDIT = _table(AuditRecord)
_CHANGES = _table(SchedulerChange)
_WRITERS = {table.name: _columns(table).to_db for table in (_JOBS, _AUDIT, _KEYS, _CHANGES)}
_EPOCH_ROW = 1  # persistence.auth.EPOCH_ROW


def _facts_sql() -> str:
    """``persistence.auth``'s keyed facts statement, compiled once with PostgreSQL's own
    placeholders (``$1`` the tenant, ``$2`` the user, ``$3`` the key), with the digest of
    the tenant's row (``md5`` of its text: any change of any column changes it)."""
    epoch_row: ColumnElement[int] = literal_column(str(_EPOCH_ROW))
    epoch = select(AuthEpoch.epoch).where(AuthEpoch.id == epoch_row).scalar_subquery()
    query = (
        select(func.coalesce(epoch, literal_column("0")).label("epoch"), *_TENANTS.c)
        .add_columns(_KEYS.c.fingerprint, _KEYS.c.response)
        .add_columns(literal_column(f"md5(CAST({_TENANTS.name} AS TEXT))").label("digest"))
        .select_from(_TENANTS)
        .outerjoin(
            _KEYS,
            and_(_KEYS.c.user_id == bindparam("user_id"), _KEYS.c.key == bindparam("key")),
        )
        .where(_TENANTS.c.id == bindparam("tenant_id"))
    )
    compiled = query.compile(dialect=_NUMBERED)
    sql = str(compiled)
    order = list(compiled.positiontup or [])
    for name, number in (("tenant_id", 1), ("user_id", 2), ("key", 3)):
        sql = sql.replace(f"${order.index(name) + 1}", f"$__{number}")
    return sql.replace("$__", "$")


_FACT_PARAMS = 3  # $1 to $3 in the facts statement


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Kept:
    """A tenant's row as this process last read it, and its digest."""

    tenant: Tenant
    digest: str


_Shape = tuple[tuple[str, tuple[str, ...]], ...]


class LeanSubmissions:
    """The statements of a submission, on pools of async connections (one per loop)."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo = conninfo
        self.size = size
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = (
            weakref.WeakKeyDictionary()
        )
        self._facts = _facts_sql()
        self._tenant_columns = _columns(_TENANTS)
        self._kept: dict[str, Kept] = {}
        self.sent = 0  # statements sent so far (what a submission costs the database)
        self._inserts: dict[tuple[str, _Shape], str] = {}
        self._loads: dict[str, KeptLoads] = {}

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = _Pool(self.conninfo, self.size)
        return pool

    async def close(self) -> None:
        """Close the running loop's connections (the app's lifespan ends)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    def kept(self, tenant_id: str) -> Kept | None:
        """The tenant's row as last read here (by :meth:`facts` or :meth:`insert_if`)."""
        return self._kept.get(tenant_id)

    async def facts(
        self, tenant_id: str, user_id: str, idempotency_key: str | None
    ) -> SubmissionFacts | None:
        """What a submission reads before it writes (None: no such tenant); the same as
        ``persistence.auth.submission_facts``. The tenant's row is kept (:meth:`kept`)."""
        row = await self._execute(self._facts, [tenant_id, user_id, idempotency_key])
        return None if row is None else self._read(row)

    def _read(self, row: Sequence[Any]) -> SubmissionFacts:
        """The facts of a row of the facts statement; the tenant's row kept, as the same
        transient, read-only ``Tenant`` (never added to a session) while its digest holds:
        building an ORM instance cost more than the rest of the read."""
        epoch, *tenant, fingerprint, response, digest = row
        kept = self._kept.get(tenant[0])
        if kept is None or kept.digest != digest:
            columns = self._tenant_columns
            values = dict(zip(columns.names, tenant, strict=True))
            for name, convert in columns.from_db.items():
                values[name] = convert(values[name])
            if len(self._kept) >= KEPT_TENANTS:
                self._kept.clear()
            kept = self._kept[tenant[0]] = Kept(Tenant(**values), digest)
        return SubmissionFacts(int(epoch), kept.tenant, fingerprint, response)

    async def insert(
        self, job: dict[str, Any], trail: dict[str, Any], key: dict[str, Any] | None
    ) -> None:
        """Insert a new job (its column values), its audit record, its ``Idempotency-Key``
        record (if any) and its change-feed row in one statement. :class:`RowsRefused`:
        nothing was written because of the rows."""
        sql, params = self._statement("insert", job, trail, key)
        await self._execute(sql, params, rows=False)

    async def insert_if(
        self,
        job: dict[str, Any],
        trail: dict[str, Any],
        key: dict[str, Any] | None,
        *,
        user_id: str,
        epoch: int,
        kept: Kept,
        loads: KeptLoads | None = None,
    ) -> tuple[bool, SubmissionFacts | None]:
        """:meth:`insert`, in the same statement as :meth:`facts`' read and only if what it
        reads is what the caller decided on: the authentication epoch ``epoch``, the
        tenant's row as ``kept`` (its digest), no record of the key and, with ``loads``,
        every site's row and sums as kept (their digest: a job dispatched on them). One
        round trip instead of two. Returns whether the rows were inserted and the facts
        read (None: no such tenant); when they were not, the caller decides again."""
        kind = "if" if loads is None else "if-loads"
        sql, values = self._statement(kind, job, trail, key)
        facts = [job["tenant_id"], user_id, None if key is None else key["key"]]
        if loads is not None:
            values.append(loads.digest)  # the statement's last $n
        row = await self._execute(sql, [*facts, epoch, kept.digest, *values])
        if row is None:
            return False, None
        *found, inserted = row
        return bool(inserted), self._read(found)

    def _statement(
        self,
        kind: str,
        job: dict[str, Any],
        trail: dict[str, Any],
        key: dict[str, Any] | None,
    ) -> tuple[str, list[Any]]:
        """The insert's text and its values, in placeholder order."""
        rows = [(_JOBS, {**job, "version": job.get("version") or 1}), (_AUDIT, trail)]
        if key is not None:
            rows.append((_KEYS, key))
        rows.append((_CHANGES, announcement(job["site_id"], job["id"])))
        shape = tuple((table.name, tuple(values)) for table, values in rows)
        sql = self._inserts.get((kind, shape))
        if sql is None:
            if kind == "insert":
                made = _insert_sql(shape)
            else:
                made = _conditional_sql(self._facts, shape, loads=kind == "if-loads")
            sql = self._inserts[(kind, shape)] = made
        params: list[Any] = []
        for table, values in rows:
            writers = _WRITERS[table.name]
            for name, value in values.items():
                convert = writers.get(name)
                params.append(value if convert is None else convert(value))
        params.append(record_leaf(trail))  # the ledger's leaf hash: the statement's last $n
        return sql, params

    async def site_loads(self, tenant_id: str) -> KeptLoads:
        """Every site's row and its sums for ``tenant_id`` and their digest
        (``persistence.site_load``: the statement a dispatch reads through the session,
        here on the event loop), kept for the tenant (:meth:`kept_loads`)."""
        self.sent += 1
        try:
            async with self._pool().connection() as conn:
                cursor = await conn.execute(site_load.ALL_SITES_DIGEST_SQL, [tenant_id])
                rows = await cursor.fetchall()
        except (psycopg.IntegrityError, psycopg.DataError) as error:
            raise RowsRefused(str(error)) from error
        read = KeptLoads(
            tuple(site_load.row_of(row[:-1]) for row in rows), rows[0][-1] if rows else ""
        )
        if len(self._loads) >= KEPT_TENANTS:
            self._loads.clear()
        self._loads[tenant_id] = read
        return read

    def kept_loads(self, tenant_id: str) -> KeptLoads | None:
        """The sites' rows and sums as :meth:`site_loads` last read them for the tenant."""
        return self._loads.get(tenant_id)

    async def _execute(
        self, sql: str, params: list[Any], *, rows: bool = True
    ) -> tuple[Any, ...] | None:
        self.sent += 1
        try:
            async with self._pool().connection() as conn:
                cursor = await conn.execute(sql, params)
                return await cursor.fetchone() if rows else None
        except (psycopg.IntegrityError, psycopg.DataError) as error:
            raise RowsRefused(str(error)) from error


def announcement(site_id: str, job_id: str) -> dict[str, Any]:
    """The change-feed row of a new job, as ``persistence.change_feed`` announces a job a
    request inserts (kind "job", the job's id; a request writes with no origin: only the
    scheduler leader writes under ``change_feed.writing_as``)."""
    return {"site_id": site_id, "kind": "job", "ref": job_id, "origin": ""}


def _inserts(shape: _Shape, first: int, source: str) -> list[str]:
    """One ``INSERT`` per row of ``shape``, its values ``$first`` onwards, in order;
    ``source``: ``VALUES`` or ``SELECT ... FROM ok`` (inserted only if ``ok`` has a row)."""
    made = []
    number = first
    for table, keys in shape:
        columns = ", ".join(_quoted(key) for key in keys)
        values = ", ".join(f"${n}" for n in range(number, number + len(keys)))
        number += len(keys)
        rows = f"VALUES ({values})" if source == "values" else f"SELECT {values} FROM ok"
        returning = " RETURNING id" if table == _AUDIT.name else ""  # the ledger's entry
        made.append(f"INSERT INTO {_quoted(table)} ({columns}) {rows}{returning}")
    return made


def _ledger(shape: _Shape, first: int) -> list[str]:
    """The ledger's ``WITH`` clauses for the audit row of ``shape`` (``ledger_store``): its
    leaf hash is the parameter after the rows' values, which start at ``$first``."""
    audit = next(n for n, (table, _keys) in enumerate(shape) if table == _AUDIT.name)
    leaf = first + sum(len(keys) for _table, keys in shape)
    return ledger_store.submission_ctes(f"new_{audit}", f"${leaf}")


def _insert_sql(shape: _Shape) -> str:
    """One ``INSERT`` of every row of ``shape``, each but the last in a ``WITH`` clause."""
    parts = _inserts(shape, 1, "values")
    ctes = [f"new_{n} AS ({sql})" for n, sql in enumerate(parts[:-1])] + _ledger(shape, 1)
    return f"WITH {', '.join(ctes)} " + parts[-1]


def _conditional_sql(facts: str, shape: _Shape, *, loads: bool = False) -> str:
    """The facts read, and the rows of ``shape`` inserted only if the facts are as
    expected (epoch ``$4``, digest ``$5``, no key record; with ``loads``, the digest of
    every site's row and sums, ``persistence.site_load``, as the parameter after the
    ledger's leaf hash), in one statement (all of its clauses see one snapshot); it
    returns the facts and how many times it inserted."""
    first = _FACT_PARAMS + 3
    parts = _inserts(shape, first, "select")
    inserts = ", ".join(
        [f"new_{n} AS ({sql})" for n, sql in enumerate(parts)] + _ledger(shape, first)
    )
    sites = ""
    same_sites = ""
    if loads:  # the tenant is $1 in both statements
        digest = first + sum(len(keys) for _table, keys in shape) + 1
        sites = f"loads AS ({site_load.ALL_SITES_SQL}), "
        same_sites = f" AND {site_load.digest_sql('loads')} = ${digest}"
    return (
        f"WITH facts AS ({facts}), {sites}"
        f"ok AS (SELECT 1 FROM facts WHERE facts.epoch = ${_FACT_PARAMS + 1} "
        f"AND facts.digest = ${_FACT_PARAMS + 2} AND facts.fingerprint IS NULL{same_sites}), "
        f"{inserts} SELECT facts.*, (SELECT count(*) FROM ok) FROM facts"
    )


class _Pool:
    """Autocommit connections of one event loop, at most ``size`` in use at once."""

    def __init__(self, conninfo: str, size: int) -> None:
        self.conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            conn = await self._reusable()
            if conn is None:
                try:
                    conn = await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, cursor_factory=psycopg.AsyncRawCursor
                    )
                except psycopg.OperationalError as error:
                    raise DatabaseUnavailable(f"database error: {_first_line(error)}") from error
            try:
                yield conn
            except (psycopg.IntegrityError, psycopg.DataError):
                self._keep(conn)
                raise
            except psycopg.Error as error:  # as the session path says it (persistence.db)
                await conn.close()
                raise DatabaseUnavailable(f"database error: {_first_line(error)}") from error
            except BaseException:
                await conn.close()  # cancelled mid-statement: its state is unknown
                raise
            self._keep(conn)

    async def _reusable(self) -> psycopg.AsyncConnection[Any] | None:
        """An idle connection the server has not ended. An idle autocommit connection has
        nothing to read unless the server ended it (its last message, or the socket closed:
        a restart, a failover, ``pg_terminate_backend``, an idle timeout); one that has is
        closed here, before a statement is sent on it, and the next one tried (the session
        path pings a connection that lay idle for the same reason)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and not _ended(conn):
                return conn
            await conn.close()
        return None

    def _keep(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE:
            self._idle.append(conn)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


def _ended(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server sent something to an idle connection (it ended it), without
    waiting: one ``poll`` of its socket (``select`` refuses descriptors past 1023, which a
    busy server has)."""
    try:
        poller = io_select.poll()
        poller.register(conn.fileno(), io_select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.OperationalError):
        return True


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or ["database error"])[0][:300]


def for_url(url: str, size: int) -> LeanSubmissions | None:
    """The lean statements for the database at ``url`` (None: not PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    return LeanSubmissions(conninfo, size)
