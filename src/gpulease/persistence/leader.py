"""Leader election for the scheduler: a lease with a heartbeat, in ``leader_leases``.

Design. One row per lease name (``scheduler``): who holds it (``holder``), the ``term`` of
that holding, and until when (``expires_at``). Times come from the service clock, so tests
drive expiry with a ManualClock.

* **acquire**: insert the row (term 1), or take over a row whose ``expires_at`` has passed
  with a compare-and-swap on the term it read (``UPDATE ... SET term = t + 1 WHERE term = t
  AND expires_at <= now``). Two contenders never both win: the loser's insert clashes on the
  primary key, or its update matches no row (PostgreSQL re-checks the WHERE clause on the row
  the winner committed; SQLite serialises writers with ``BEGIN IMMEDIATE``).
* **renew** (every pass, and ``fence`` inside every write transaction of a pass): extend
  ``expires_at`` by the TTL with ``UPDATE ... WHERE holder = me AND term = mine AND
  expires_at > now``. No row matched: leadership is lost (another process took over, or this
  one stalled past its TTL); the holder forgets its term and must not apply anything.
  Inside a write transaction the renew also locks the row until commit, so a takeover waits
  for that commit and then finds the lease extended: a pass's writes commit only while its
  process leads.
* **release** (shutdown): expire the row now, so another process takes over at once.

Invariants: at most one holder has an unexpired lease for a given term; a holder that did not
renew within ``ttl_s`` (stalled, partitioned, dead) loses leadership whether or not its
database connection lives. No advisory lock or ``flock`` is kept: either would be held by a
stalled-but-connected process and hide it, which is the failure this design removes. A dead
leader's successor waits at most ``ttl_s``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import update

from gpulease.domain.clock import Clock
from gpulease.domain.errors import DomainError
from gpulease.persistence.db import Database, DuplicateRecord, Tx
from gpulease.persistence.tables import LeaderLease

LEASE_NAME = "scheduler"
log = logging.getLogger("gpulease.leader")


class Leadership(Protocol):
    """What the scheduler loop needs from leader election."""

    def acquire(self) -> bool:
        """Take the lease, or renew it if held; True while this process leads."""
        ...

    def still_held(self) -> bool:
        """Whether this process's lease is unexpired by its own clock (no database call)."""
        ...

    def fence(self, tx: Tx) -> bool:
        """Inside a write transaction: renew the lease; False if leadership is lost."""
        ...

    def release(self) -> None: ...

    @property
    def term(self) -> int | None:
        """The term this process holds (a new term: state kept under another is stale)."""
        ...


class LeaderLock:
    """The scheduler's leadership as a lease renewed on every pass (see the module doc)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        holder: str,
        ttl_s: float,
        name: str = LEASE_NAME,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("the leader lease's TTL must be > 0")
        self._db = db
        self._clock = clock
        self.holder = holder[:200]
        self.name = name
        self.ttl = timedelta(seconds=ttl_s)
        self.term: int | None = None  # the term this process holds, if it leads
        self.expires_at: datetime | None = None  # as last committed by acquire/renew

    # ---------------------------------------------------------------- the protocol
    def acquire(self) -> bool:
        now = self._clock.now()
        if self.term is not None:
            return self._renew(now)
        try:
            with self._db.transaction() as tx:
                term = self._take(tx, now)
        except DuplicateRecord:
            return False  # another process inserted the lease first
        except DomainError as error:  # database unavailable: we do not lead
            log.warning("leader lease: cannot acquire: %s", error)
            return False
        if term is None:
            return False
        self.term, self.expires_at = term, now + self.ttl
        log.info("leader lease %s taken by %s (term %d)", self.name, self.holder, term)
        return True

    def still_held(self) -> bool:
        return (
            self.term is not None
            and self.expires_at is not None
            and self._clock.now() < self.expires_at
        )

    def fence(self, tx: Tx) -> bool:
        if self.term is None:
            return False
        if self._extend(tx, self._clock.now()):
            return True
        self._lost()
        return False

    def release(self) -> None:
        if self.term is None:
            return
        term, now = self.term, self._clock.now()
        self.term = self.expires_at = None
        try:
            with self._db.transaction() as tx:
                tx.session.connection().execute(
                    update(LeaderLease)
                    .where(
                        LeaderLease.name == self.name,
                        LeaderLease.holder == self.holder,
                        LeaderLease.term == term,
                        LeaderLease.expires_at > now,
                    )
                    .values(expires_at=now)
                )
        except DomainError as error:  # it expires on its own after the TTL
            log.warning("leader lease: cannot release: %s", error)

    # ---------------------------------------------------------------- the moves
    def _take(self, tx: Tx, now: datetime) -> int | None:
        """The term this process now holds, or None if the lease is someone's."""
        row = tx.get(LeaderLease, self.name)
        if row is None:
            tx.add(
                LeaderLease(
                    name=self.name,
                    holder=self.holder,
                    term=1,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=now + self.ttl,
                )
            )
            tx.flush()  # a concurrent insert clashes here (DuplicateRecord)
            return 1
        if row.expires_at > now:
            return None
        seen = row.term
        taken = tx.session.connection().execute(
            update(LeaderLease)
            .where(
                LeaderLease.name == self.name,
                LeaderLease.term == seen,
                LeaderLease.expires_at <= now,
            )
            .values(
                holder=self.holder,
                term=seen + 1,
                acquired_at=now,
                renewed_at=now,
                expires_at=now + self.ttl,
            )
        )
        return seen + 1 if taken.rowcount == 1 else None

    def _renew(self, now: datetime) -> bool:
        try:
            with self._db.transaction() as tx:
                renewed = self._extend(tx, now)
        except DomainError as error:  # keep the term: the next renew may still succeed
            log.warning("leader lease: cannot renew: %s", error)
            return False
        if not renewed:
            self._lost()
            return False
        self.expires_at = now + self.ttl
        return True

    def _extend(self, tx: Tx, now: datetime) -> bool:
        extended = tx.session.connection().execute(
            update(LeaderLease)
            .where(
                LeaderLease.name == self.name,
                LeaderLease.holder == self.holder,
                LeaderLease.term == self.term,
                LeaderLease.expires_at > now,
            )
            .values(renewed_at=now, expires_at=now + self.ttl)
        )
        return extended.rowcount == 1

    def _lost(self) -> None:
        log.warning(
            "leader lease %s lost by %s (term %s): not renewed in time or taken over",
            self.name,
            self.holder,
            self.term,
        )
        self.term = self.expires_at = None


def current_lease(tx: Tx, name: str = LEASE_NAME) -> LeaderLease | None:
    """The lease row (holder, term, expiry), if any process ever led."""
    return tx.get(LeaderLease, name)


def leader_lock(db: Database, clock: Clock, *, holder: str, ttl_s: float) -> LeaderLock:
    return LeaderLock(db, clock, holder=holder, ttl_s=ttl_s)
