"""The scheduler's change feed: which jobs and nodes changed, written with the change.

Design. A session hook (:func:`record_changes`, installed on every session by
``persistence.db.Database``) adds one ``scheduler_changes`` row per job or node a flush
inserts or changes, in the same transaction, so no service can forget to tell the scheduler
and a rolled-back change is never announced. (The scheduler's bookkeeping, wait reasons and
guarantee claims written set at a time by ``persistence.bulk``, bypasses the hook and keeps
the row version: it changes nothing the scheduler must reload.) Writes made under
:func:`writing_as` carry that origin: the leader skips its own changes, which it has already
applied to its state.

The leader reads the feed with ``persistence.change_reader.ChangeFeed`` (one per site). A
change row carries only what changed, never how: the reader reloads the named rows, so
reading a change twice is harmless. Sequence numbers are allocated when a transaction writes
and become visible when it commits, so on PostgreSQL a lower number can appear after a
higher one was read; the reader waits for gaps a while (module ``change_reader``). The
periodic consistency check catches anything else.

Invariants: the hook adds rows only for jobs and nodes (``kind`` "job" / "node"), at most one
per row per transaction and origin (again after a savepoint rolls back); rows inserted
without a flush (``Tx.insert_new``, ``bulk.update_jobs``) get theirs from
:func:`announcements` (or :func:`announcement_values`), in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from gpulease.persistence.tables import Job, Node, SchedulerChange

_ORIGIN: ContextVar[str] = ContextVar("gpulease_change_origin", default="")
# Columns whose change alone is not news (the version moves with every other change).
_QUIET = frozenset({"version"})
_SESSION_KEY = "gpulease_announced"


@contextmanager
def writing_as(origin: str) -> Iterator[None]:
    """Changes written inside carry ``origin`` (the leader marks its own writes)."""
    token = _ORIGIN.set(origin)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def _changed(obj: Any, quiet: frozenset[str]) -> bool:
    """Whether a loaded row has pending changes beyond ``quiet`` columns. Reads the keys the
    ORM recorded when attributes were set (``committed_state``), no history per column: a
    value set back to what it was still counts (announcing it is harmless)."""
    return any(key not in quiet for key in inspect(obj).committed_state)


def record_changes(session: Session, _flush_context: Any, _instances: Any) -> None:
    """``before_flush`` hook: announce the jobs and nodes this flush inserts or changes."""
    announced: set[tuple[str, str]] = session.info.setdefault(_SESSION_KEY, set())
    origin = _ORIGIN.get()
    rows: list[SchedulerChange] = []
    for obj in session.new:
        if isinstance(obj, Job | Node):
            rows.extend(_announce(obj, announced, origin))
    for obj in session.dirty:
        if isinstance(obj, Job | Node) and _changed(obj, _QUIET):
            rows.extend(_announce(obj, announced, origin))
    if rows:
        session.add_all(rows)


def announcements(session: Session, rows: Iterable[object]) -> list[SchedulerChange]:
    """The change rows for new rows inserted without the ORM's flush (``Tx.insert_new``
    writes them in the same statement)."""
    announced: set[tuple[str, str]] = session.info.setdefault(_SESSION_KEY, set())
    origin = _ORIGIN.get()
    found: list[SchedulerChange] = []
    for row in rows:
        if isinstance(row, Job | Node):
            found.extend(_announce(row, announced, origin))
    return found


def announcement_values(session: Session, rows: Iterable[object]) -> list[dict[str, str]]:
    """As :func:`announcements`, as column values for a set-at-a-time insert (no ORM
    objects to flush: ``persistence.bulk.update_jobs``; none are made either)."""
    announced: set[tuple[str, str]] = session.info.setdefault(_SESSION_KEY, set())
    origin = _ORIGIN.get()
    found: list[dict[str, str]] = []
    for row in rows:
        if not isinstance(row, Job | Node):
            continue
        kind = "job" if isinstance(row, Job) else "node"
        key = (kind, row.id)
        if key in announced or row.site_id is None:
            continue
        announced.add(key)
        found.append({"site_id": row.site_id, "kind": kind, "ref": row.id, "origin": origin})
    return found


def _announce(
    obj: Job | Node, announced: set[tuple[str, str]], origin: str
) -> list[SchedulerChange]:
    kind = "job" if isinstance(obj, Job) else "node"
    key = (kind, obj.id)
    if key in announced or obj.site_id is None:
        return []
    announced.add(key)
    return [SchedulerChange(site_id=obj.site_id, kind=kind, ref=obj.id, origin=origin)]


def forget_announced(session: Session, _previous: Any = None) -> None:
    """``after_soft_rollback`` hook: what a rolled-back savepoint announced is gone, so the
    next change to those rows is announced again (twice is harmless)."""
    session.info.pop(_SESSION_KEY, None)
