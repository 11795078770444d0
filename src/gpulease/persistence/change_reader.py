"""The leader's reader of the change feed (``persistence.change_feed`` writes it).

Design. A change names a row, never how it changed: the leader reloads the named rows, so
reading a change twice is harmless. Sequence numbers are allocated when a transaction writes
and become visible when it commits, so on PostgreSQL a lower number can appear after a
higher one was read. The reader keeps ``low`` (every number at or below it was read or given
up) and the numbers read above it; a missing number (a gap) is waited for ``gap_timeout_s``
(a transaction still running), then given up (it rolled back). On :meth:`ChangeFeed.reset`
(a new leader) it starts at the oldest row still kept, so a change committed just after the
rebuild's snapshot but numbered before it is still read.

One sequence numbers every site's changes, so each reader reads every site's rows for its
position (another site's number is not a gap) and returns its own. A gap is a range of
numbers, waited for as one, however long. A state rebuilt by the same leader keeps its
reader's position (:meth:`ChangeFeed.copy`), so a change in flight across the rebuild is
still read; only a new leader starts again from the oldest row kept.

Invariants: :meth:`ChangeFeed.read` returns each sequence number at most once between
resets; ``low`` only grows, past a missing number only after ``gap_timeout_s``; ``purge``
deletes only this site's rows ``lookback`` numbers behind ``low`` (and at most
``lookback + purge_every`` of them stay behind it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, cast

from sqlalchemy import delete, func, select

from gpulease.persistence.db import Tx
from gpulease.persistence.tables import SchedulerChange


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
    lookback: int = 2000  # rows kept behind the position for a new leader's reset
    max_reread: int = 100_000  # most a new leader reads again
    purge_every: int = 500  # numbers the position moves on between two purges
    purged: int = 0  # the number up to which the last purge deleted
    low: int = 0
    seen: set[int] = field(default_factory=set)  # numbers read above ``low``
    gaps: dict[int, float] = field(default_factory=dict)  # first missing number -> noticed

    def reset(self, tx: Tx) -> None:
        """Start afresh (a new leader): from the oldest row still kept (the last leader
        purged only ``lookback`` behind its position, which never passed a number still in
        flight), at most ``max_reread`` numbers back."""
        oldest, top = tx.session.execute(
            select(func.min(SchedulerChange.seq), func.max(SchedulerChange.seq))
        ).one()
        top = int(top or 0)
        self.low = max(0, int(oldest or 1) - 1, top - self.max_reread)
        self.seen.clear()
        self.gaps.clear()

    def copy(self) -> ChangeFeed:
        """The same position, for a state rebuilt by the same leader: what the old reader
        had not read yet (in-flight numbers included) is read after the rebuild too."""
        return replace(self, seen=set(self.seen), gaps=dict(self.gaps))

    def read(self, tx: Tx, clock: float | None = None) -> list[Change]:
        """This site's changes not read before, in number order. Every site's rows are
        read for the position (one sequence numbers them all: another site's number is no
        gap); a gap is a range of numbers, waited for as one."""
        return self.take(read_rows(tx, self.low), clock)

    def take(self, rows: Iterable[Row], clock: float | None = None) -> list[Change]:
        """As :meth:`read`, from rows already read (:func:`read_rows` from a position at or
        below this reader's: one read serves the readers of every site)."""
        mono = time.monotonic() if clock is None else clock
        seen = self.seen
        low = self.low
        mine: list[Change] = []
        for seq, site_id, kind, ref, origin in rows:
            if seq <= low or seq in seen:
                continue
            seen.add(seq)
            if site_id == self.site_id:
                mine.append(Change(seq, kind, ref, origin))
        # the gaps, as ranges keyed by their first number; a range that shrank from below
        # keeps the time its older part was noticed
        before = sorted(self.gaps.items())
        gaps: dict[int, float] = {}
        last = self.low
        for seq in sorted(seen):
            if seq > last + 1:
                start = last + 1
                older = [since for first, since in before if first <= start]
                gaps[start] = self.gaps.get(start, min(older, default=mono))
            last = seq
        self.gaps = gaps
        while True:
            while self.low + 1 in seen:
                self.low += 1
                seen.discard(self.low)
            start = self.low + 1
            if start in gaps and mono - gaps[start] >= self.gap_timeout_s:
                del gaps[start]  # rolled back: never coming
                self.low = min(seen) - 1
                continue
            return mine

    def purge(self, tx: Tx) -> int:
        """Delete this site's rows well behind the position (a new leader re-reads
        ``lookback``), once every ``purge_every`` numbers (not a statement every pass)."""
        upto = self.low - self.lookback
        if upto <= 0 or upto - self.purged < self.purge_every:
            return 0
        self.purged = upto
        result: Any = tx.session.execute(
            delete(SchedulerChange).where(
                SchedulerChange.site_id == self.site_id, SchedulerChange.seq <= upto
            )
        )
        return int(result.rowcount or 0)


Row = tuple[int, str, str, str, str]  # a change row: (seq, site_id, kind, ref, origin)


def read_rows(tx: Tx, low: int) -> list[Row]:
    """Every site's change rows numbered above ``low``, in number order."""
    query = (
        select(
            SchedulerChange.seq,
            SchedulerChange.site_id,
            SchedulerChange.kind,
            SchedulerChange.ref,
            SchedulerChange.origin,
        )
        .where(SchedulerChange.seq > low)
        .order_by(SchedulerChange.seq)
    )
    return cast("list[Row]", tx.session.execute(query).all())  # rows unpack as tuples
