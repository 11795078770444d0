"""The scheduler's change feed: which jobs and nodes changed, written with the change.

Design. A session hook (:func:`record_changes`, installed on every session by
``persistence.db.Database``) adds one ``scheduler_changes`` row per job or node a flush
inserts or changes, in the same transaction, so no service can forget to tell the scheduler
and a rolled-back change is never announced. (The scheduler's bookkeeping, wait reasons and
guarantee claims written set at a time by ``persistence.bulk``, bypasses the hook and keeps
the row version: it changes nothing the scheduler must reload.) Writes made under
:func:`writing_as` carry that origin: the leader skips its own changes, which it has already
applied to its state.

:class:`ChangeFeed` is the leader's reader, one per site. A change row carries only what
changed, never how: the reader reloads the named rows, so reading a change twice is harmless.
Sequence numbers are allocated when a transaction writes and become visible when it commits,
so on PostgreSQL a lower number can appear after a higher one was read. The reader therefore
keeps ``low`` (every number at or below it was read or given up) and the numbers read above
it; a missing number (a gap) is waited for ``gap_timeout_s`` (a transaction still running),
then given up (it rolled back). On :meth:`ChangeFeed.reset` (a full rebuild) the reader starts
``lookback`` numbers back, so a change committed just after the rebuild's snapshot but
numbered before it is still read. The periodic consistency check catches anything else.

Invariants: the hook adds rows only for jobs and nodes (``kind`` "job" / "node"), at most one
per row per transaction and origin; :meth:`ChangeFeed.read` returns each sequence number at
most once between resets.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, inspect, select
from sqlalchemy.orm import Session

from gpulease.persistence.tables import Job, Node, SchedulerChange

if TYPE_CHECKING:
    from gpulease.persistence.db import Tx

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


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str
    ref: str
    origin: str


@dataclass
class ChangeFeed:
    """One site's reader (the module docstring gives the rules)."""

    site_id: str
    gap_timeout_s: float = 30.0
    lookback: int = 2000
    max_gap: int = 100_000  # a jump this large is not waited for (the next check repairs)
    low: int = 0
    seen: set[int] = field(default_factory=set)
    gaps: dict[int, float] = field(default_factory=dict)  # missing number -> first noticed

    def reset(self, tx: Tx) -> None:
        """Start over at a full rebuild: re-read the last ``lookback`` numbers."""
        top = self._top(tx)
        self.low = max(0, top - self.lookback)
        self.seen.clear()
        self.gaps.clear()

    def read(self, tx: Tx, clock: float | None = None) -> list[Change]:
        """Changes not read before, in number order."""
        mono = time.monotonic() if clock is None else clock
        rows = tx.session.execute(
            select(
                SchedulerChange.seq,
                SchedulerChange.kind,
                SchedulerChange.ref,
                SchedulerChange.origin,
            )
            .where(SchedulerChange.site_id == self.site_id, SchedulerChange.seq > self.low)
            .order_by(SchedulerChange.seq)
        ).all()
        fresh = [Change(*row) for row in rows if row[0] not in self.seen]
        self.seen.update(c.seq for c in fresh)
        for change in fresh:
            self.gaps.pop(change.seq, None)
        top = max(self.seen, default=self.low)
        if top - self.low > self.max_gap:
            self.low, self.seen, self.gaps = top, set(), {}
            return fresh
        for seq in range(self.low + 1, top):
            if seq not in self.seen:
                self.gaps.setdefault(seq, mono)
        for seq, since in list(self.gaps.items()):
            if mono - since >= self.gap_timeout_s:  # rolled back: never coming
                del self.gaps[seq]
                self.seen.add(seq)
        while self.low + 1 in self.seen:
            self.low += 1
            self.seen.discard(self.low)
        return fresh

    def purge(self, tx: Tx) -> int:
        """Delete rows well behind the position (a successor re-reads ``lookback``)."""
        upto = self.low - self.lookback
        if upto <= 0:
            return 0
        result: Any = tx.session.execute(
            delete(SchedulerChange).where(
                SchedulerChange.site_id == self.site_id, SchedulerChange.seq <= upto
            )
        )
        return int(result.rowcount or 0)

    def _top(self, tx: Tx) -> int:
        value = tx.session.execute(
            select(func.max(SchedulerChange.seq)).where(SchedulerChange.site_id == self.site_id)
        ).scalar()
        return int(value or 0)
