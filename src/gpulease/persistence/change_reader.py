"""The leader's reader of the change feed (``persistence.change_feed`` writes it).

Design. A change names a row, never how it changed: the leader reloads the named rows, so
reading a change twice is harmless. Sequence numbers are allocated when a transaction writes
and become visible when it commits, so on PostgreSQL a lower number can appear after a
higher one was read. The reader keeps ``low`` (every number at or below it was read or given
up) and the numbers read above it; a missing number (a gap) is waited for ``gap_timeout_s``
(a transaction still running), then given up (it rolled back). On :meth:`ChangeFeed.reset`
(a full rebuild) it starts ``lookback`` numbers back, so a change committed just after the
rebuild's snapshot but numbered before it is still read.

Invariants: :meth:`ChangeFeed.read` returns each sequence number at most once between
resets; ``purge`` deletes only rows ``lookback`` numbers behind ``low``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

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
