"""Every audit record is queued for the ledger in its own transaction on every write path
(the session, ``Tx.insert_new``, the pass's set-at-a-time rows, the submission's single
statement), and only if the transaction commits; the sequencer then gives it the next
position: positions stay 0, 1, 2, ... without gaps, also under concurrent writers on
PostgreSQL (``test_ledger_sequencer.py``: the sequencer's own rules)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.records import record_leaf
from gpulease.persistence import bulk, ledger_store
from gpulease.persistence.db import Database
from gpulease.persistence.tables import AuditRecord, LedgerEntry
from gpulease.services import audit, ledger_sequencer
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Api = Callable[[str | None], TestClient]
JOB = {"gpus": 4, "purpose": "financial AI", "command": "train", "name": "nightly"}


def assert_whole(db: Database) -> int:
    """Once the queue is sequenced: every audit row at exactly one position, positions
    0..n-1, each leaf the hash of the row as stored, the counter at n, nothing queued.
    Returns n."""
    ledger_sequencer.sequence(ServiceContext(db))
    with db.transaction(write=False) as tx:
        entries = tx.all(select(LedgerEntry).order_by(LedgerEntry.position))
        rows = {row.id: row for row in tx.all(select(AuditRecord))}
        size = ledger_store.size(tx.session)
        assert ledger_store.waiting_count(tx.session) == 0
    assert [e.position for e in entries] == list(range(len(entries)))
    assert sorted(e.audit_id for e in entries) == sorted(rows)
    for entry in entries:
        assert entry.leaf_hash == record_leaf(ledger_store.audit_fields(rows[entry.audit_id]))
    assert size == len(entries)
    return len(entries)


def _say(tx: object, clock: ManualClock, what: str, **extra: object) -> None:
    audit.record(
        tx,  # type: ignore[arg-type]
        at=clock.now(),
        actor="test",
        action=what,
        subject_type="thing",
        subject_id="thing-1",
        after={"n": 1, "big": 2**60, "tuple": (1, 2), **extra},
    )


def test_session_rows_enter_in_commit_order_and_rollbacks_leave_no_gap(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    with ctx.db.transaction() as tx:
        _say(tx, clock, "one")
        _say(tx, clock, "two")

    def rolled_back() -> None:
        with ctx.db.transaction() as tx:
            _say(tx, clock, "rolled back")
            tx.flush()
            raise InvalidRequest("no")

    with pytest.raises(InvalidRequest):
        rolled_back()
    with ctx.db.transaction() as tx:
        _say(tx, clock, "three")
        try:
            with tx.session.begin_nested():
                _say(tx, clock, "undone by its savepoint")
                tx.flush()
                raise RuntimeError("savepoint")
        except RuntimeError:
            pass
        with tx.session.begin_nested():
            _say(tx, clock, "kept in a savepoint")
    assert assert_whole(ctx.db) == 4
    with ctx.db.transaction(write=False) as tx:
        order = tx.session.execute(
            select(AuditRecord.action)
            .join(LedgerEntry, LedgerEntry.audit_id == AuditRecord.id)
            .order_by(LedgerEntry.position)
        ).scalars()
        assert list(order) == ["one", "two", "three", "kept in a savepoint"]


def test_rows_written_set_at_a_time_enter_too(ctx: ServiceContext, clock: ManualClock) -> None:
    values = [
        audit.values(
            at=clock.now() + timedelta(seconds=n),
            actor="scheduler",
            action="job.start",
            subject_type="job",
            subject_id=f"job-{n}",
            after={"n": n},
        )
        for n in range(5)
    ]
    with ctx.db.transaction() as tx:
        _say(tx, clock, "before")
        tx.flush()
        bulk.insert_audit_rows(tx, values)
        try:
            with tx.session.begin_nested():
                bulk.insert_audit_rows(tx, values[:2])
                raise RuntimeError("savepoint")
        except RuntimeError:
            pass
    assert assert_whole(ctx.db) == 6


def test_submissions_enter_on_every_path(
    ctx: ServiceContext, api: Api, demo: list[DemoUser], db_backend: str
) -> None:
    """The demo's own records, then jobs submitted through the API (on PostgreSQL the
    event-loop statement: facts then insert, then the conditional insert) and a refused
    submission (nothing written, no position taken)."""
    before = assert_whole(ctx.db)
    assert before > 0  # the demo's records are in the ledger
    admin = next(u for u in demo if u.email == "admin@inftech.example")
    client = api(admin.token)
    for n in range(3):
        made = client.post("/jobs", json=JOB, headers={"Idempotency-Key": f"k-{n}"})
        assert made.status_code == 201, made.text
    again = client.post("/jobs", json=JOB, headers={"Idempotency-Key": "k-0"})  # a replay
    assert again.status_code in (200, 201)
    refused = client.post("/jobs", json={**JOB, "gpus": 0})
    assert refused.status_code == 422
    assert assert_whole(ctx.db) == before + 3


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_concurrent_writers_never_leave_a_gap(db: Database, clock: ManualClock) -> None:
    """Eight threads, each committing and rolling back transactions of one to three records:
    the positions are exactly the committed records, 0..n-1."""
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for n in range(15):
                try:
                    with db.transaction() as tx:
                        for _ in range(1 + (w + n) % 3):
                            _say(tx, clock, f"w{w}-{n}")
                        if n % 4 == 3:
                            tx.flush()
                            raise InvalidRequest("rolled back")
                except InvalidRequest:
                    pass
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert assert_whole(db) > 100
