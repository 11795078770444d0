"""The ledger's SQL: queueing audit records in their own transaction, sequencing them, and
reading the ledger back.

Queue. Every audit row enters ``ledger_pending`` (its leaf hash, no position) in the
transaction that writes it, however it is written:

* through the session (``Tx.add``, a flush): :func:`collect_flushed` (``after_flush``)
  notes the ``AuditRecord`` rows a flush inserted, their ids assigned;
* without the ORM (``Tx.insert_new``, ``bulk.insert_audit_rows``): the writer passes the ids
  the database returned, with the rows, to :func:`register`;
* the submission's single autocommit statement (``persistence.submission``): one more
  ``WITH`` clause (:func:`submission_ctes`).

At the end of the transaction (``before_commit`` of the outermost transaction,
:func:`queue_on_commit`) the rows still alive (not undone by a rolled-back savepoint) are
queued in one statement, stamped with the database's clock (``queued_at``, seconds since the
epoch: the moment just before the commit). No lock is taken: concurrent writers commit side
by side (PostgreSQL's group commit), and a transaction that rolls back leaves nothing.

Sequence (:func:`sequence`, in a short transaction of its own, Certificate Transparency's
"sequencer"): lock the counter row ``ledger_state`` (``SELECT ... FOR UPDATE``; SQLite's
``BEGIN IMMEDIATE`` serialises it with every writer), then, in statements that see every
transaction committed before the lock was granted (READ COMMITTED: a snapshot per
statement), take the committed pending rows in audit id order (the insertion order, a proxy
of the commit order), insert them into ``ledger_entries`` at ``[size, size + n)``, delete
them from the queue and set the counter to ``size + n`` (PostgreSQL: all of that in one
statement after the lock; SQLite: four). One sequencer at a time; any number may try (the
scheduler's thread, and any process on demand).

Why nothing is skipped. The queue is scanned whole, not from "the highest id sequenced so
far": PostgreSQL hands out ids before commit, so a long transaction can commit an id below
one already sequenced; its row is simply still in the queue at the next pass and takes the
next position. A row leaves the queue only in the transaction that gives it a position.

Why the leaf hash is fixed by the writer, not by the sequencer: the hash is of the row as
its own transaction wrote it, so an audit row edited in SQL between its commit and its
sequencing is caught by ``verify`` like any other edit (a sequencer reading it back would
seal the edit).

Invariants: positions are 0, 1, 2, ... without gaps or repeats (the primary key refuses a
repeat, the counter row is locked by the one sequencer that extends it); an audit row is in
at most one entry (unique ``audit_id``; a queued row whose audit id already holds a position
is never sequenced and ``verify`` reports it); an entry's leaf hash is
``ledger.records.record_leaf`` of the row's values as inserted; nothing here updates or
deletes an entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    delete,
    exists,
    func,
    insert,
    inspect,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.elements import ColumnElement

from gpulease.ledger.records import FIELDS, record_leaf
from gpulease.persistence.tables import (
    AuditRecord,
    LedgerEntry,
    LedgerHead,
    LedgerKey,
    LedgerPending,
    LedgerState,
)

STATE_ROW = 1
SEQUENCE_BATCH = 5000  # positions a sequencer transaction hands out at most
_FLUSHED = "gpulease_ledger_flushed"  # AuditRecord rows a flush inserted
_RAW = "gpulease_ledger_raw"  # (savepoint or None, audit id, leaf hash) of rows inserted raw
_UNDONE = "gpulease_ledger_undone"  # savepoints rolled back

# the database's clock, in seconds since the epoch (a queued row's stamp, and its age)
PG_NOW = "CAST(extract(epoch FROM clock_timestamp()) AS double precision)"
SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"

_PG_QUEUE = text(
    "INSERT INTO ledger_pending (audit_id, leaf_hash, queued_at) "
    f"SELECT CAST(x.e ->> 0 AS BIGINT), decode(x.e ->> 1, 'hex'), {PG_NOW} "
    "FROM json_array_elements(CAST(:rows AS json)) AS x(e)"
)
_SQLITE_QUEUE = text(
    "INSERT INTO ledger_pending (audit_id, leaf_hash, queued_at) "
    f"VALUES (:audit_id, :leaf_hash, {SQLITE_NOW})"
)


def _now(session: Session) -> ColumnElement[float]:
    """The database's clock in seconds since the epoch, as a column expression."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    return literal_column(PG_NOW if postgresql else SQLITE_NOW, Float)


def audit_fields(row: AuditRecord) -> dict[str, Any]:
    return {name: getattr(row, name) for name in FIELDS}


# ------------------------------------------------------------------ the queue (hooks)
def collect_flushed(session: Session, _flush_context: Any) -> None:
    """``after_flush``: note the audit rows this flush inserted (their ids are assigned)."""
    rows = [obj for obj in session.new if isinstance(obj, AuditRecord)]
    if rows:
        session.info.setdefault(_FLUSHED, []).extend(rows)


def register(session: Session, ids: Sequence[int], rows: Sequence[Any]) -> None:
    """Audit rows inserted without the session's flush: their ids (as the database
    assigned them) and their column values (mappings, or ``AuditRecord`` objects)."""
    if len(ids) != len(rows):
        raise AssertionError(f"{len(ids)} audit ids returned for {len(rows)} rows")
    savepoint = session.get_nested_transaction()
    raw: list[tuple[SessionTransaction | None, int, bytes]] = session.info.setdefault(_RAW, [])
    for audit_id, row in zip(ids, rows, strict=True):
        fields = audit_fields(row) if isinstance(row, AuditRecord) else row
        raw.append((savepoint, int(audit_id), record_leaf(fields)))


def note_rollback(session: Session, previous: SessionTransaction) -> None:
    """``after_soft_rollback``: rows a rolled-back savepoint registered are gone."""
    if previous.nested:
        session.info.setdefault(_UNDONE, set()).add(previous)


def _alive(savepoint: SessionTransaction | None, undone: set[SessionTransaction]) -> bool:
    while savepoint is not None:
        if savepoint in undone:
            return False
        savepoint = savepoint.parent
    return True


def queue_on_commit(session: Session) -> None:
    """``before_commit``: queue this transaction's audit rows for the sequencer, last."""
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction queues
    if not session.info.get(_FLUSHED) and not session.info.get(_RAW) and not session.new:
        return
    session.flush()  # rows still pending are inserted now, and noted
    entries: list[tuple[int, bytes]] = []
    for row in session.info.pop(_FLUSHED, []):
        if inspect(row).persistent:  # not undone by a rolled-back savepoint
            entries.append((row.id, record_leaf(audit_fields(row))))
    undone: set[SessionTransaction] = session.info.pop(_UNDONE, set())
    for savepoint, audit_id, leaf in session.info.pop(_RAW, []):
        if _alive(savepoint, undone):
            entries.append((audit_id, leaf))
    if entries:
        queue(session, entries)


def queue(session: Session, entries: Sequence[tuple[int, bytes]]) -> None:
    """Queue (audit id, leaf hash) pairs for the sequencer, in one statement."""
    if session.get_bind().dialect.name == "postgresql":
        rows = json.dumps([[audit_id, leaf.hex()] for audit_id, leaf in entries])
        session.execute(_PG_QUEUE, {"rows": rows})
        return
    session.execute(
        _SQLITE_QUEUE, [{"audit_id": audit_id, "leaf_hash": leaf} for audit_id, leaf in entries]
    )


def submission_ctes(audit_cte: str, leaf_param: str) -> list[str]:
    """The ``WITH`` clause that queues the audit row a submission's single statement
    inserts (``audit_cte`` must say ``RETURNING id``): queued only if the row was inserted."""
    return [
        "ledger_new AS (INSERT INTO ledger_pending (audit_id, leaf_hash, queued_at) "
        f"SELECT {audit_cte}.id, {leaf_param}, {PG_NOW} FROM {audit_cte})",
    ]


def install(sessions: Any) -> None:
    """Install the hooks on a ``sessionmaker`` (``persistence.db.Database`` does)."""
    from sqlalchemy import event

    event.listen(sessions, "after_flush", collect_flushed)
    event.listen(sessions, "after_soft_rollback", note_rollback)
    event.listen(sessions, "before_commit", queue_on_commit)


# ------------------------------------------------------------------ the sequencer
@dataclass(frozen=True, slots=True)
class Sequenced:
    """What one sequencer transaction did: positions ``[start, start + count)``."""

    start: int
    count: int


# ("WHERE true": SQLite's upsert after a SELECT needs it to parse)
_MAKE_STATE = text(
    f"INSERT INTO ledger_state (id, size) SELECT {STATE_ROW}, count(*) FROM ledger_entries "
    "WHERE true ON CONFLICT (id) DO NOTHING"
)
# PostgreSQL: the rest of a pass in one statement (all of it sees the snapshot taken after
# the lock was granted): the rows taken leave the queue, enter the ledger, move the counter
_PG_SEQUENCE = text(
    "WITH taken AS (DELETE FROM ledger_pending WHERE audit_id IN ("
    "SELECT q.audit_id FROM ledger_pending q WHERE NOT EXISTS "
    "(SELECT 1 FROM ledger_entries e WHERE e.audit_id = q.audit_id) "
    "ORDER BY q.audit_id LIMIT :batch) RETURNING audit_id, leaf_hash), "
    "placed AS (INSERT INTO ledger_entries (position, audit_id, leaf_hash) "
    "SELECT :start + row_number() OVER (ORDER BY audit_id) - 1, audit_id, leaf_hash "
    "FROM taken RETURNING 1), "
    "moved AS (UPDATE ledger_state SET size = :start + (SELECT count(*) FROM placed) "
    f"WHERE id = {STATE_ROW}) "
    "SELECT count(*) FROM placed"
)
ANY_PENDING = select(exists().where(LedgerPending.audit_id.is_not(None)))


def sequence(session: Session, *, batch: int = SEQUENCE_BATCH) -> Sequenced:
    """Give the next positions to up to ``batch`` committed queued rows, in audit id order
    (call in a write transaction of its own; the module docstring gives the rules)."""
    lock = select(LedgerState.size).where(LedgerState.id == STATE_ROW).with_for_update()
    size = session.execute(lock).scalar_one_or_none()
    if size is None:  # the first sequencer: make the counter row (one of them), then lock it
        session.execute(_MAKE_STATE)
        size = session.execute(lock).scalar_one()
    start = int(size)
    if session.get_bind().dialect.name == "postgresql":
        done = session.execute(_PG_SEQUENCE, {"start": start, "batch": batch}).scalar_one()
        return Sequenced(start, int(done))
    placed = exists().where(LedgerEntry.audit_id == LedgerPending.audit_id)
    taken = session.execute(
        select(LedgerPending.audit_id, LedgerPending.leaf_hash)
        .where(~placed)
        .order_by(LedgerPending.audit_id)
        .limit(batch)
    ).all()
    if not taken:
        return Sequenced(start, 0)
    session.execute(
        insert(LedgerEntry),
        [
            {"position": start + n, "audit_id": int(audit_id), "leaf_hash": bytes(leaf)}
            for n, (audit_id, leaf) in enumerate(taken)
        ],
    )
    ids = [int(audit_id) for audit_id, _leaf in taken]
    for first in range(0, len(ids), 900):
        session.execute(
            delete(LedgerPending).where(LedgerPending.audit_id.in_(ids[first : first + 900]))
        )
    session.execute(
        update(LedgerState).where(LedgerState.id == STATE_ROW).values(size=start + len(ids))
    )
    return Sequenced(start, len(ids))


@dataclass(frozen=True, slots=True)
class Waiting:
    """A queued audit record: its age (seconds, by the database's clock) and, when its
    audit id already holds a position (a row queued twice), that position."""

    audit_id: int
    age_s: float
    placed_at: int | None


def waiting(session: Session, *, older_than_s: float = 0.0, limit: int = 100) -> list[Waiting]:
    """Queued rows at least ``older_than_s`` old, oldest first (at most ``limit``)."""
    age = _now(session) - LedgerPending.queued_at
    query = (
        select(LedgerPending.audit_id, age.label("age"), LedgerEntry.position)
        .outerjoin(LedgerEntry, LedgerEntry.audit_id == LedgerPending.audit_id)
        .where(age >= older_than_s)
        .order_by(LedgerPending.queued_at, LedgerPending.audit_id)
        .limit(limit)
    )
    return [
        Waiting(int(audit_id), float(seconds), None if at is None else int(at))
        for audit_id, seconds, at in session.execute(query)
    ]


def waiting_count(session: Session, *, older_than_s: float = 0.0) -> int:
    """How many rows are queued, at least ``older_than_s`` old."""
    age = _now(session) - LedgerPending.queued_at
    query = select(func.count()).select_from(LedgerPending).where(age >= older_than_s)
    return int(session.execute(query).scalar_one())


def queued(session: Session, audit_id: int) -> dict[str, Any] | None:
    """The audit row of a record still waiting for its position (None: not queued)."""
    a = AuditRecord
    row = session.execute(
        select(*(getattr(a, name) for name in FIELDS))
        .join(LedgerPending, LedgerPending.audit_id == a.id)
        .where(a.id == audit_id)
    ).first()
    return None if row is None else dict(zip(FIELDS, row, strict=True))


# ------------------------------------------------------------------ reading
@dataclass(frozen=True, slots=True)
class Entry:
    """One position of the ledger as stored, and the audit row it names (None: gone)."""

    position: int
    audit_id: int
    leaf_hash: bytes
    fields: dict[str, Any] | None


def size(session: Session) -> int:
    """The number of entries committed (the counter)."""
    found = session.execute(
        select(LedgerState.size).where(LedgerState.id == STATE_ROW)
    ).scalar_one_or_none()
    return int(found or 0)


def entries(session: Session, *, start: int = 0, batch: int = 5000) -> Iterator[Entry]:
    """Every entry from ``start`` on, in position order, with its audit row (streamed)."""
    a = AuditRecord
    query = (
        select(
            LedgerEntry.position,
            LedgerEntry.audit_id,
            LedgerEntry.leaf_hash,
            a.id,
            *(getattr(a, name) for name in FIELDS),
        )
        .outerjoin(a, a.id == LedgerEntry.audit_id)
        .where(LedgerEntry.position >= start)
        .order_by(LedgerEntry.position)
        .execution_options(yield_per=batch)
    )
    for position, audit_id, leaf, found, *values in session.execute(query):
        fields = None if found is None else dict(zip(FIELDS, values, strict=True))
        yield Entry(int(position), int(audit_id), bytes(leaf), fields)


def leaf_hashes(session: Session, upto: int | None = None) -> list[bytes]:
    """The stored leaf hashes of positions ``[0, upto)`` (all when None), in order."""
    query = select(LedgerEntry.leaf_hash).order_by(LedgerEntry.position)
    if upto is not None:
        query = query.where(LedgerEntry.position < upto)
    return [
        bytes(leaf) for leaf in session.execute(query.execution_options(yield_per=20000)).scalars()
    ]


def outside(session: Session, limit: int = 100) -> list[int]:
    """Ids of audit rows neither at a position nor queued for one (inserted behind the
    ledger's back), lowest first."""
    query = (
        select(AuditRecord.id)
        .outerjoin(LedgerEntry, LedgerEntry.audit_id == AuditRecord.id)
        .outerjoin(LedgerPending, LedgerPending.audit_id == AuditRecord.id)
        .where(LedgerEntry.position.is_(None), LedgerPending.audit_id.is_(None))
        .order_by(AuditRecord.id)
        .limit(limit)
    )
    return [int(audit_id) for audit_id in session.execute(query).scalars()]


def entry_of(session: Session, audit_id: int) -> Entry | None:
    """The entry of one audit row, with the row."""
    position = session.execute(
        select(LedgerEntry.position).where(LedgerEntry.audit_id == audit_id)
    ).scalar_one_or_none()
    if position is None:
        return None
    return next(entries(session, start=int(position), batch=1), None)


def entries_of(session: Session, audit_ids: Sequence[int]) -> dict[int, Entry]:
    """The entries of these audit rows (with the rows), by audit id; absent: not in it."""
    a = AuditRecord
    found: dict[int, Entry] = {}
    ids = sorted(set(audit_ids))
    for start in range(0, len(ids), 900):
        query = (
            select(
                LedgerEntry.position,
                LedgerEntry.audit_id,
                LedgerEntry.leaf_hash,
                *(getattr(a, name) for name in FIELDS),
            )
            .join(a, a.id == LedgerEntry.audit_id)
            .where(LedgerEntry.audit_id.in_(ids[start : start + 900]))
        )
        for position, audit_id, leaf, *values in session.execute(query):
            fields = dict(zip(FIELDS, values, strict=True))
            found[int(audit_id)] = Entry(int(position), int(audit_id), bytes(leaf), fields)
    return found


def entry_at(session: Session, position: int) -> Entry | None:
    found = next(entries(session, start=position, batch=1), None)
    return found if found is not None and found.position == position else None


def count(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one())


# ------------------------------------------------------------------ heads and keys
def heads(session: Session, *, after: int = -1, limit: int | None = None) -> list[LedgerHead]:
    """Signed heads of sizes above ``after``, smallest first (at most ``limit``)."""
    query = select(LedgerHead).where(LedgerHead.tree_size > after).order_by(LedgerHead.tree_size)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def head(session: Session, tree_size: int | None = None) -> LedgerHead | None:
    """The head of ``tree_size`` (None: the latest)."""
    query = select(LedgerHead)
    if tree_size is None:
        query = query.order_by(LedgerHead.tree_size.desc()).limit(1)
    else:
        query = query.where(LedgerHead.tree_size == tree_size)
    return session.scalars(query).first()


def head_covering(session: Session, position: int) -> LedgerHead | None:
    """The smallest head whose tree holds ``position``."""
    query = (
        select(LedgerHead)
        .where(LedgerHead.tree_size > position)
        .order_by(LedgerHead.tree_size)
        .limit(1)
    )
    return session.scalars(query).first()


def add_head(
    session: Session,
    *,
    tree_size: int,
    root_hash: bytes,
    signed_at: datetime,
    key_id: str,
    signature: bytes,
) -> LedgerHead:
    row = LedgerHead(
        tree_size=tree_size,
        root_hash=root_hash,
        signed_at=signed_at,
        key_id=key_id,
        signature=signature,
    )
    session.add(row)
    session.flush()
    return row


def keys(session: Session) -> list[LedgerKey]:
    return list(session.scalars(select(LedgerKey).order_by(LedgerKey.valid_from)))


def current_key(session: Session, *, lock: bool = False) -> LedgerKey | None:
    query = select(LedgerKey).where(LedgerKey.valid_until.is_(None))
    if lock:
        query = query.with_for_update()
    return session.scalars(query.order_by(LedgerKey.valid_from.desc()).limit(1)).first()


def add_key(session: Session, *, key_id: str, public_key: bytes, valid_from: datetime) -> None:
    session.add(LedgerKey(key_id=key_id, public_key=public_key, valid_from=valid_from))
    session.flush()


def end_key(session: Session, key_id: str, valid_until: datetime) -> None:
    session.execute(
        update(LedgerKey).where(LedgerKey.key_id == key_id).values(valid_until=valid_until)
    )
