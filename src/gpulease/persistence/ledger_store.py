"""The ledger's SQL: appending audit records in their own transaction, and reading it back.

Append. Every audit row enters ``ledger_entries`` in the transaction that writes it, however
it is written:

* through the session (``Tx.add``, a flush): :func:`collect_flushed` (``after_flush``)
  notes the ``AuditRecord`` rows a flush inserted, their ids assigned;
* without the ORM (``Tx.insert_new``, ``bulk.insert_audit_rows``): the writer passes the ids
  the database returned, with the rows, to :func:`register`;
* the submission's single autocommit statement (``persistence.submission``): the position
  is taken in that statement (:func:`submission_ctes`).

At the end of the transaction (``before_commit`` of the outermost transaction,
:func:`append_on_commit`) the rows still alive (not undone by a rolled-back savepoint) are
sorted by id and appended in one statement: the counter row ``ledger_state`` is bumped by
their number (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, which locks the row) and
the entries inserted at the positions it gives, ``[size, size + n)``.

Why a counter row taken last. The row lock queues appenders and is held until commit, so
positions are handed out in commit order: a transaction that rolls back gives its positions
back (no gap), and a reader never sees position ``k + 1`` committed while ``k`` is not (a
signed head over the committed prefix is final). Taken at the end, after every other lock,
the lock lasts one statement and the commit, and cannot deadlock with the change's own
locks. (A transaction-level advisory lock would do the same with one statement more, to
read the size; a sequence would leave gaps on rollback.) PostgreSQL: one round trip
(a data-modifying ``WITH``); SQLite, whose writers are serialised anyway: two statements.

Invariants: positions are 0, 1, 2, ... without gaps or repeats (the primary key refuses a
repeat, the counter hands out each once); an audit row is in at most one entry (unique
``audit_id``); an entry's leaf hash is ``ledger.records.record_leaf`` of the row's values as
inserted; nothing here updates or deletes an entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, inspect, select, text, update
from sqlalchemy.orm import Session, SessionTransaction

from gpulease.ledger.records import FIELDS, record_leaf
from gpulease.persistence.tables import (
    AuditRecord,
    LedgerEntry,
    LedgerHead,
    LedgerKey,
    LedgerState,
)

STATE_ROW = 1
_FLUSHED = "gpulease_ledger_flushed"  # AuditRecord rows a flush inserted
_RAW = "gpulease_ledger_raw"  # (savepoint or None, audit id, leaf hash) of rows inserted raw
_UNDONE = "gpulease_ledger_undone"  # savepoints rolled back

_PG_APPEND = text(
    "WITH pos AS ("
    "INSERT INTO ledger_state (id, size) VALUES (1, :n) "
    "ON CONFLICT (id) DO UPDATE SET size = ledger_state.size + excluded.size "
    "RETURNING size - :n AS start) "
    "INSERT INTO ledger_entries (position, audit_id, leaf_hash) "
    "SELECT pos.start + x.n - 1, CAST(x.e ->> 0 AS BIGINT), decode(x.e ->> 1, 'hex') "
    "FROM pos, json_array_elements(CAST(:rows AS json)) WITH ORDINALITY AS x(e, n)"
)
_SQLITE_BUMP = text(
    "INSERT INTO ledger_state (id, size) VALUES (1, :n) "
    "ON CONFLICT (id) DO UPDATE SET size = size + excluded.size RETURNING size"
)


def audit_fields(row: AuditRecord) -> dict[str, Any]:
    return {name: getattr(row, name) for name in FIELDS}


# ------------------------------------------------------------------ the append (hooks)
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


def append_on_commit(session: Session) -> None:
    """``before_commit``: append this transaction's audit rows to the ledger, last."""
    if session.in_nested_transaction():
        return  # a savepoint released: the outer transaction appends
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
        entries.sort()
        append(session, entries)


def append(session: Session, entries: Sequence[tuple[int, bytes]]) -> int:
    """Append (audit id, leaf hash) pairs at the next positions; returns the first."""
    n = len(entries)
    if session.get_bind().dialect.name == "postgresql":
        rows = json.dumps([[audit_id, leaf.hex()] for audit_id, leaf in entries])
        session.execute(_PG_APPEND, {"n": n, "rows": rows})
        return -1  # not read back: one round trip
    size = int(session.execute(_SQLITE_BUMP, {"n": n}).scalar_one())
    start = size - n
    session.execute(
        insert(LedgerEntry),
        [
            {"position": start + i, "audit_id": audit_id, "leaf_hash": leaf}
            for i, (audit_id, leaf) in enumerate(entries)
        ],
    )
    return start


def submission_ctes(audit_cte: str, leaf_param: str) -> list[str]:
    """The ``WITH`` clauses that append the audit row a submission's single statement
    inserts (``audit_cte`` must say ``RETURNING id``): the position is taken only if the row
    was inserted, in the same statement, so the same rule holds (gapless, commit order)."""
    return [
        "ledger_pos AS (INSERT INTO ledger_state (id, size) "
        f"SELECT 1, 1 FROM {audit_cte} "
        "ON CONFLICT (id) DO UPDATE SET size = ledger_state.size + 1 "
        "RETURNING size - 1 AS position)",
        "ledger_new AS (INSERT INTO ledger_entries (position, audit_id, leaf_hash) "
        f"SELECT ledger_pos.position, {audit_cte}.id, {leaf_param} "
        f"FROM ledger_pos, {audit_cte})",
    ]


def install(sessions: Any) -> None:
    """Install the hooks on a ``sessionmaker`` (``persistence.db.Database`` does)."""
    from sqlalchemy import event

    event.listen(sessions, "after_flush", collect_flushed)
    event.listen(sessions, "after_soft_rollback", note_rollback)
    event.listen(sessions, "before_commit", append_on_commit)


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
    """Ids of audit rows no entry names (inserted behind the ledger's back), lowest first."""
    query = (
        select(AuditRecord.id)
        .outerjoin(LedgerEntry, LedgerEntry.audit_id == AuditRecord.id)
        .where(LedgerEntry.position.is_(None))
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
