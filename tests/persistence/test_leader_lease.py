"""Leadership as a lease with a heartbeat (``leader_leases``), on SQLite and PostgreSQL.

One holder at a time; a holder that stops renewing (stalled, even with its connection alive)
loses the lease after the TTL and another takes over with the next term; the stalled one
then fails its renew and its fence, so it can commit nothing. Release hands over at once.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from gpulease.domain.clock import ManualClock
from gpulease.persistence.db import Database
from gpulease.persistence.leader import LEASE_NAME, LeaderLock, current_lease, leader_lock
from gpulease.persistence.tables import LeaderLease

TTL = 15.0


def lease_row(db: Database) -> LeaderLease | None:
    with db.transaction(write=False) as tx:
        return current_lease(tx)


def test_one_holder_while_it_renews_then_a_takeover_when_it_stalls(
    db: Database, clock: ManualClock
) -> None:
    first = LeaderLock(db, clock, holder="first", ttl_s=TTL)
    second = leader_lock(db, clock, holder="second", ttl_s=TTL)
    assert first.acquire()
    assert first.still_held()
    assert not second.acquire()
    row = lease_row(db)
    assert row is not None
    assert (row.name, row.holder, row.term) == (LEASE_NAME, "first", 1)
    assert row.expires_at == clock.now() + timedelta(seconds=TTL)

    for _ in range(5):  # renewed every pass: the other never gets in
        clock.advance(10)
        assert first.acquire()
        assert not second.acquire()
        assert not second.still_held()

    clock.advance(TTL + 0.001)  # the holder stalls past its TTL, connection or not
    assert not first.still_held()
    assert second.acquire()
    assert second.term == 2
    row = lease_row(db)
    assert row is not None
    assert (row.holder, row.term) == ("second", 2)

    assert not first.acquire()  # its renew matches no row: it has lost leadership
    assert first.term is None
    assert not first.still_held()
    with db.transaction() as tx:
        assert not first.fence(tx)
    clock.advance(5)
    assert second.acquire()  # renewing, not taking again
    assert second.term == 2


def test_a_stalled_holder_that_was_not_replaced_takes_a_new_term(
    db: Database, clock: ManualClock
) -> None:
    lock = LeaderLock(db, clock, holder="only", ttl_s=TTL)
    assert lock.acquire()
    clock.advance(TTL * 2)
    assert not lock.acquire()  # the lapse is noticed: leadership was lost meanwhile
    assert lock.acquire()  # nobody took it: taken again, as a new term
    assert lock.term == 2


def test_the_fence_fails_a_transaction_of_a_replaced_holder(
    db: Database, clock: ManualClock
) -> None:
    first = LeaderLock(db, clock, holder="first", ttl_s=TTL)
    second = LeaderLock(db, clock, holder="second", ttl_s=TTL)
    assert first.acquire()
    with db.transaction() as tx:
        assert first.fence(tx)  # renews inside the pass's own transaction
    clock.advance(TTL - 1)
    assert not second.acquire()  # the fence extended the lease
    clock.advance(2)
    assert second.acquire()
    with db.transaction() as tx:
        assert not first.fence(tx)
    with db.transaction() as tx:
        assert second.fence(tx)


def test_release_hands_over_at_once(db: Database, clock: ManualClock) -> None:
    first = LeaderLock(db, clock, holder="first", ttl_s=TTL)
    second = LeaderLock(db, clock, holder="second", ttl_s=TTL)
    assert first.acquire()
    first.release()
    assert not first.still_held()
    assert second.acquire()
    assert second.term == 2
    first.release()  # not held: nothing happens
    assert lease_row(db) is not None
    assert second.acquire()


def _contend(barrier: threading.Barrier, lock: LeaderLock, won: list[bool], i: int) -> None:
    barrier.wait()
    won[i] = lock.acquire()


def test_contenders_racing_for_a_free_or_expired_lease_never_both_win(
    db: Database, clock: ManualClock
) -> None:
    contenders = 4
    databases = [Database(db.url) for _ in range(contenders)]
    try:
        for round_ in range(6):
            locks = [
                LeaderLock(d, clock, holder=f"c{i}", ttl_s=TTL) for i, d in enumerate(databases)
            ]
            barrier = threading.Barrier(contenders)
            won: list[bool] = [False] * contenders

            threads = [
                threading.Thread(target=_contend, args=(barrier, lock, won, i))
                for i, lock in enumerate(locks)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert sum(won) == 1, won
            row = lease_row(db)
            assert row is not None
            assert row.holder == f"c{won.index(True)}"
            assert row.term == round_ + 1
            clock.advance(TTL + 1)  # the winner stalls: the next round races a takeover
    finally:
        for d in databases:
            d.dispose()
