"""Engine, transactions and the few database-specific moves (locks) the services need.

Design. :class:`Database` wraps one SQLAlchemy engine. Services open work with
``with db.transaction() as tx:``: everything inside commits together or not at all, and a
database error comes out as a :class:`~gpulease.domain.errors.DomainError` (a unique key
clash is a ``conflict``; a row changed under a versioned update is a ``conflict``), never
as a driver exception (a value the database refuses, such as text longer than its column,
is an ``invalid_request``).

SQLite (the embedded default) runs in WAL mode with foreign keys on, and a write
transaction starts with ``BEGIN IMMEDIATE`` so two writers serialise at the start instead
of failing at commit. PostgreSQL runs at READ COMMITTED; where a check-then-write must not
race (admitting a lease against the calendar) the service takes ``tx.lock(name)``, a
transaction-scoped advisory lock there and a no-op on SQLite, whose writers are already
serialised. A read transaction (``write=False``) on PostgreSQL runs at REPEATABLE READ, so
that its queries see one snapshot, as on SQLite (the scheduler's snapshot relies on it). A
row read ``for_update`` is locked ``FOR NO KEY UPDATE``: writers of that row wait, inserts
of rows that reference it (foreign keys) do not.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Insert, Table, bindparam, create_engine, event, func, insert, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import Executable, Select

from gpulease.domain.errors import Conflict, DomainError, InvalidRequest, NotFound
from gpulease.persistence import ledger_store
from gpulease.persistence.change_feed import announcements, forget_announced, record_changes
from gpulease.persistence.tables import AuditRecord, Base

T = TypeVar("T", bound=Base)
_WRITE: ContextVar[bool] = ContextVar("gpulease_write_tx", default=True)


class DatabaseUnavailable(DomainError):
    code = "database_unavailable"


class DuplicateRecord(Conflict):
    """A unique key clashed: another transaction inserted the same record first."""


# An UPDATE matched no row at the version read: a concurrent writer changed it.
StaleRow = StaleDataError


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` says the database (not the rows being written) is the trouble.
    Every driver error is one, except a value the database refuses or a clash of keys:
    those concern the rows written, so the record they belong to."""
    if isinstance(error, DBAPIError):
        return not isinstance(error, DataError | IntegrityError)
    return isinstance(error, DatabaseUnavailable | DisconnectionError | PoolTimeout)


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and mean psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database, or SQLite in memory)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL advisory locks."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


DEFAULT_POOL_SIZE = 10
DEFAULT_MAX_OVERFLOW = 10
# A pooled connection is pinged when it is checked out after lying idle this long: one that
# is in constant use (a busy API process) is not pinged before every transaction.
PING_IDLE_S = 1.0


class Database:
    """One engine and its pool. ``pool_size`` connections are kept open; up to
    ``max_overflow`` more are opened under a burst and closed again when returned, so the
    pool should hold as many connections as the process has threads that use the database
    at once (``Settings.pool_size_for``)."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
        pre_ping: bool = True,
        ping_idle_s: float = PING_IDLE_S,
    ) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.pool_size, self.max_overflow = pool_size, max_overflow
        if self.is_sqlite:
            # A file database keeps a pool of connections (the PRAGMAs run once per
            # connection); an in-memory one would be private to each connection.
            self.engine: Engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=pool_size,
                max_overflow=max_overflow,
            )
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_size=pool_size, max_overflow=max_overflow
            )
            if pre_ping:
                # A connection the server dropped (a restart, an idle timeout) is found by a
                # ping at checkout and replaced, instead of failing a transaction. Only after
                # ``ping_idle_s`` idle: a ping is a round trip, a fifth of a job submission's.
                # A connection dropped within that time of its last use fails one
                # transaction (database_unavailable), and the pool renews every connection
                # older than the failure.
                _ping_when_idle(self.engine, ping_idle_s)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        # every job and node change is announced to the scheduler in its own transaction
        event.listen(self._sessions, "before_flush", record_changes)
        event.listen(self._sessions, "after_soft_rollback", forget_announced)
        # every audit record enters the ledger in its own transaction, at its end
        ledger_store.install(self._sessions)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        token = _WRITE.set(write)
        session = self._sessions()
        try:
            with session.begin():
                if not write and not self.is_sqlite:
                    # a read transaction sees one snapshot (SQLite's deferred BEGIN does):
                    # at READ COMMITTED each statement would see its own
                    session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
                yield Tx(session, self)
        except IntegrityError as error:
            raise DuplicateRecord(f"conflicting record: {_first_line(error)}") from error
        except DataError as error:
            raise InvalidRequest(f"a value does not fit its field: {_first_line(error)}") from error
        except StaleDataError as error:
            raise Conflict("the record changed concurrently; retry the request") from error
        except DBAPIError as error:  # any other driver error is an outage (is_outage)
            raise DatabaseUnavailable(f"database error: {_first_line(error)}") from error
        finally:
            session.close()
            _WRITE.reset(token)

    def scalar_now(self, query: Select[Any]) -> Any:
        """The first column of the first row of ``query``, read outside any transaction: one
        statement (PostgreSQL runs it in autocommit; SQLite in a deferred read)."""
        token = _WRITE.set(False)
        try:
            with self.engine.connect() as conn:
                if not self.is_sqlite:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                return conn.execute(query).scalar()
        except OperationalError as error:
            raise DatabaseUnavailable(f"database error: {_first_line(error)}") from error
        finally:
            _WRITE.reset(token)

    def dispose(self) -> None:
        self.engine.dispose()

    def connect(self) -> Connection:
        return self.engine.connect()

    def create_all(self) -> None:
        """Create the tables directly (tests of cores only; the service uses migrations)."""
        Base.metadata.create_all(self.engine)


# A row locked to be changed is locked ``FOR NO KEY UPDATE`` (what an UPDATE of non-key
# columns takes itself): it excludes other writers and lockers of the row until commit, but
# not the key-share lock a foreign-key check takes, so inserting a row that references it (a
# job of a tenant whose row the scheduler holds) does not wait. No service changes a key.
_ROW_LOCK = {"key_share": True}


class Tx:
    """One transaction: typed get/add/query helpers over a session."""

    def __init__(self, session: Session, db: Database) -> None:
        self.session = session
        self.db = db

    def get(self, model: type[T], key: Any, *, for_update: bool = False) -> T | None:
        return self.session.get(model, key, with_for_update=_ROW_LOCK if for_update else None)

    def require(self, model: type[T], key: Any, kind: str, *, for_update: bool = False) -> T:
        """The row, or NotFound; ``for_update`` locks it until commit (PostgreSQL). The
        answer is worded as ``Principal.check_visible`` words a record out of sight (``no kyc
        case 'kyc-...'``, ``details.kyc_case_id``): missing and foreign are one answer."""
        row = self.session.get(model, key, with_for_update=_ROW_LOCK if for_update else None)
        if row is None:
            raise NotFound(f"no {kind} {key!r}", **{f"{kind.replace(' ', '_')}_id": key})
        return row

    def add(self, row: Base) -> None:
        self.session.add(row)

    def add_all(self, rows: Sequence[Base]) -> None:
        self.session.add_all(rows)

    def insert_new(self, rows: Sequence[Base]) -> None:
        """Insert new rows (which must not reference one another) now. On PostgreSQL in one
        statement, each row but the last in a data-modifying ``WITH``; elsewhere through the
        session. The rows are not tracked afterwards: they keep the values they were given
        (a versioned row starts at version 1), and a key the database assigns is not read
        back, but an audit row's, which the ledger is told (``ledger_store.register``)."""
        if self.db.is_sqlite or len(rows) < 2:
            self.session.add_all(rows)
            self.session.flush()
            return
        rows = [*rows, *announcements(self.session, rows)]  # the change feed, same statement
        trails: list[Base] = [row for row in rows if isinstance(row, AuditRecord)]
        if len(trails) > 1:  # the ledger needs each one's id: let the flush assign them
            self.session.add_all(rows)
            self.session.flush()
            return
        # an audit row goes last, its id returned, for the ledger (ledger_store.register)
        rows = [row for row in rows if row not in trails] + trails
        given = [_new_values(row) for row in rows]
        shape = tuple((type(row), tuple(values)) for row, values in zip(rows, given, strict=True))
        statement = _INSERTS.get(shape)
        if statement is None:
            statement = _insert_with(shape)
            if len(_INSERTS) < 256:
                _INSERTS[shape] = statement
        params = {
            f"p{n}_{key}": value for n, values in enumerate(given) for key, value in values.items()
        }
        result = self.session.execute(statement, params)
        if trails:
            ledger_store.register(self.session, [result.scalar_one()], trails)

    def flush(self) -> None:
        self.session.flush()

    def all(self, query: Select[T]) -> list[T]:
        return list(self.session.scalars(query))

    def first(self, query: Select[T]) -> T | None:
        return self.session.scalars(query.limit(1)).first()

    def select(self, model: type[T]) -> Select[T]:
        return select(model)

    def count_by(self, key: InstrumentedAttribute[Any], among: Sequence[Any]) -> dict[Any, int]:
        """How many rows hold each of ``among`` in the column ``key`` (absent: none)."""
        query = select(key, func.count()).where(key.in_(among)).group_by(key)
        return {value: int(n) for value, n in self.session.execute(query)}

    def lock(self, name: str) -> None:
        """Serialise this transaction with others taking the same lock, until commit."""
        if not self.db.is_sqlite:
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(name)}
            )


# One compiled INSERT ... WITH per shape (tables and columns given): built once, cached by
# SQLAlchemy's compiled cache, executed with fresh parameters.
_Shape = tuple[tuple[type[Base], tuple[str, ...]], ...]
_INSERTS: dict[_Shape, Executable] = {}


def _insert_with(shape: _Shape) -> Executable:
    def one(n: int, model: type[Base], keys: tuple[str, ...]) -> Insert:
        table = model.__table__
        assert isinstance(table, Table)
        return insert(table).values({key: bindparam(f"p{n}_{key}") for key in keys})

    ctes = [one(n, model, keys).cte(f"new_{n}") for n, (model, keys) in enumerate(shape[:-1])]
    last_model, last_keys = shape[-1]
    last = one(len(shape) - 1, last_model, last_keys)
    if last_model is AuditRecord:  # its id, for the ledger
        return last.returning(AuditRecord.id).add_cte(*ctes)
    return last.add_cte(*ctes)


def _new_values(row: Base) -> dict[str, Any]:
    """The column values given to a new row (its Python defaults apply to the rest)."""
    mapper = sa_inspect(type(row))
    given = row.__dict__
    values = {
        column.key: given[prop.key]
        for prop in mapper.column_attrs
        for column in prop.columns
        if prop.key in given
    }
    if mapper.version_id_col is not None:
        version = mapper.get_property_by_column(mapper.version_id_col).key
        if values.get(version) is None:
            values[version] = 1
            setattr(row, version, 1)
    return values


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Ping a connection at checkout when it has lain idle ``idle_s`` (SQLAlchemy's
    ``pool_pre_ping`` pings at every checkout); raising ``DisconnectionError`` there makes
    the pool discard it and check out another (PoolEvents.checkout)."""

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_s:
            return  # new (just connected), or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as error:  # unusable, whatever the reason: the pool replaces it
            raise DisconnectionError(_first_line(error)) from error


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", error)).strip().splitlines()[0][:300]


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE" if _WRITE.get() else "BEGIN")
