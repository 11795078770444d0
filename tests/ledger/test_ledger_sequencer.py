"""The ledger's sequencer (``services.ledger_sequencer``, ``ledger_store.sequence``): a
committed audit record waits in the queue without a position until a sequencer gives it the
next one; positions stay 0, 1, 2, ... without gaps or repeats under concurrent writers and
several sequencers on PostgreSQL; a record whose transaction commits after a later record
was sequenced still gets the next position; a head covers only sequenced records; ``verify``
reports a record queued longer than the maximum merge delay, and one queued again behind
the ledger's back; a proof of a queued record says so."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, InvalidRequest, NotFound
from gpulease.persistence import ledger_store
from gpulease.persistence.db import Database, Tx
from gpulease.persistence.tables import AuditRecord, LedgerEntry
from gpulease.services import audit, ledger, ledger_proofs, ledger_sequencer
from gpulease.services.context import ServiceContext

STAFF = Principal("admin", Role.OPERATOR_ADMIN, None)
SRC = Path(__file__).resolve().parents[2] / "src"


def _say(tx: Tx, clock: ManualClock, what: str, *, tenant: str = "thing-1") -> None:
    audit.record(
        tx,
        at=clock.now(),
        actor="test",
        action=what,
        subject_type="tenant",
        subject_id=tenant,
        after={"what": what},
    )


def _positions(db: Database) -> dict[int, int]:
    """Audit id -> position."""
    with db.transaction(write=False) as tx:
        rows = tx.session.execute(select(LedgerEntry.audit_id, LedgerEntry.position))
        return {int(a): int(p) for a, p in rows}


def _queued(db: Database) -> int:
    with db.transaction(write=False) as tx:
        return ledger_store.waiting_count(tx.session)


def _audit_ids(db: Database) -> list[int]:
    with db.transaction(write=False) as tx:
        return sorted(int(i) for i in tx.session.execute(select(AuditRecord.id)).scalars())


def _sql(db: Database, statement: str) -> None:
    with db.connect() as conn:
        conn.execute(text(statement))
        conn.commit()


def test_a_committed_record_waits_without_a_position_until_sequenced(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    with ctx.db.transaction() as tx:
        _say(tx, clock, "one")
        _say(tx, clock, "two")
    with ctx.db.transaction() as tx:
        _say(tx, clock, "three")
    assert _positions(ctx.db) == {}
    assert _queued(ctx.db) == 3
    assert ledger_sequencer.sequence(ctx) == 3
    ids = _audit_ids(ctx.db)
    assert _positions(ctx.db) == {audit_id: n for n, audit_id in enumerate(ids)}
    assert _queued(ctx.db) == 0
    assert ledger_sequencer.sequence(ctx) == 0  # an empty queue: nothing to do
    with ctx.db.transaction(write=False) as tx:
        assert ledger_store.size(tx.session) == 3


def test_batches_continue_where_the_last_one_stopped(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    for n in range(7):
        with ctx.db.transaction() as tx:
            _say(tx, clock, f"r{n}")
    assert ledger_sequencer.sequence(ctx, batch=3) == 7  # three transactions: 3, 3, 1
    ids = _audit_ids(ctx.db)
    assert _positions(ctx.db) == {audit_id: n for n, audit_id in enumerate(ids)}


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_a_record_committed_after_a_later_one_was_sequenced_gets_the_next_position(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    """A long transaction holds the lowest audit id; a later record commits and is
    sequenced (and signed) first; the long one, once committed, takes the next position:
    nothing is skipped, nothing is signed before it is sequenced."""
    ledger.ensure_key(ctx)
    ledger_sequencer.sequence(ctx)  # the key's own record: position 0
    with ctx.db.transaction() as slow:
        _say(slow, clock, "slow")
        slow.flush()
        ledger_store.queue_on_commit(slow.session)  # its queue row written, as at its end
        with ctx.db.transaction() as fast:
            _say(fast, clock, "fast")  # a higher id, committed first
        assert ledger_sequencer.sequence(ctx) == 1  # the slow row is not committed yet
        signed = ledger.sign_head(ctx)
        assert signed is not None
        assert signed.head.tree_size == 2  # the key's record and "fast": what is sequenced
    key_record, slow_id, fast_id = _audit_ids(ctx.db)
    assert slow_id < fast_id
    assert _positions(ctx.db) == {key_record: 0, fast_id: 1}
    assert ledger_sequencer.sequence(ctx) == 1
    assert _positions(ctx.db) == {key_record: 0, fast_id: 1, slow_id: 2}
    verdict = ledger.verify(ctx)
    assert verdict.ok, verdict.problems
    assert verdict.size == 3


@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_concurrent_writers_and_sequencers_never_leave_a_gap_or_a_repeat(
    db: Database, clock: ManualClock
) -> None:
    """Eight writer threads (transactions of one to three records, every fourth rolled
    back) and three sequencer threads racing them, each with its own connection: every
    committed record at exactly one position, 0..n-1, in no more transactions than it took."""
    ctx = ServiceContext(db)
    errors: list[BaseException] = []
    writing = threading.Event()
    writing.set()
    placed = [0, 0, 0]

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

    def sequencer(s: int) -> None:
        try:
            while writing.is_set():
                placed[s] += ledger_sequencer.sequence(ctx, batch=7)
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    sequencers = [threading.Thread(target=sequencer, args=(s,)) for s in range(3)]
    for thread in sequencers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    for thread in sequencers:
        thread.join()
    assert not errors
    last = ledger_sequencer.sequence(ctx)
    positions = _positions(db)
    ids = _audit_ids(db)
    assert sorted(positions) == ids  # every committed record, once
    assert sorted(positions.values()) == list(range(len(ids)))  # 0..n-1
    assert sum(placed) + last == len(ids) > 100
    assert sum(placed) > 0  # the racing sequencers did the work
    assert _queued(db) == 0


_SEQUENCER_PROCESS = (
    "import pathlib, sys\n"
    "from gpulease.persistence.db import Database\n"
    "from gpulease.services.context import ServiceContext\n"
    "from gpulease.services.ledger_sequencer import sequence\n"
    "ctx = ServiceContext(Database(sys.argv[1]))\n"
    "print('ready', flush=True)\n"
    "placed = 0\n"
    "while not pathlib.Path(sys.argv[2]).exists():\n"
    "    placed += sequence(ctx, batch=5)\n"
    "print(placed, flush=True)\n"
)


@pytest.mark.slow  # two Python processes
@pytest.mark.parametrize("db_backend", ["postgresql"], indirect=True)
def test_sequencers_in_other_processes_never_repeat_a_position(
    db: Database, db_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    """Two sequencer processes race each other and the writers' commits (four threads):
    every committed record at exactly one position, 0..n-1."""
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SEQUENCER_PROCESS, db_url, str(stop)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"

        def writer(w: int) -> None:
            for n in range(20):
                with db.transaction() as tx:
                    for _ in range(1 + (w + n) % 3):
                        _say(tx, clock, f"w{w}-{n}")

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.touch()
        placed = [int(process.communicate(timeout=120)[0].strip() or 0) for process in processes]
    last = ledger_sequencer.sequence(ServiceContext(db))
    positions = _positions(db)
    ids = _audit_ids(db)
    assert sorted(positions) == ids
    assert sorted(positions.values()) == list(range(len(ids)))
    written = sum(1 + (w + n) % 3 for w in range(4) for n in range(20))
    assert sum(placed) + last == len(ids) == written
    assert sum(placed) > 0


def test_verify_reports_a_record_queued_longer_than_the_merge_delay(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    ledger.ensure_key(ctx)
    assert ledger.sign_head(ctx) is not None  # the key's record, signed
    with ctx.db.transaction() as tx:
        _say(tx, clock, "waited")
    with ctx.db.transaction() as tx:
        _say(tx, clock, "young")
    waited = _audit_ids(ctx.db)[1]
    _sql(ctx.db, f"UPDATE ledger_pending SET queued_at = queued_at - 30 WHERE audit_id = {waited}")
    verdict = ledger.verify(ctx)
    assert not verdict.ok
    (late,) = verdict.problems
    assert late.kind == "unsequenced"
    assert "maximum merge delay (1 s)" in late.message
    assert "1 audit record(s)" in late.message
    assert late.audit_id == waited
    assert verdict.size == 3  # then sequenced, and checked
    assert ledger.verify(ctx).ok  # nothing waits any more


def test_a_record_queued_again_is_reported_and_never_placed_twice(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    ledger.ensure_key(ctx)
    with ctx.db.transaction() as tx:
        _say(tx, clock, "one")
    assert ledger.sign_head(ctx) is not None
    first = _audit_ids(ctx.db)[1]
    _sql(
        ctx.db,
        "INSERT INTO ledger_pending (audit_id, leaf_hash, queued_at) "
        f"SELECT audit_id, leaf_hash, 0 FROM ledger_entries WHERE audit_id = {first}",
    )
    assert ledger_sequencer.sequence(ctx) == 0
    assert len(_positions(ctx.db)) == 2
    verdict = ledger.verify(ctx)
    kinds = sorted(p.kind for p in verdict.problems)
    assert kinds == ["unsequenced", "unsequenced"]  # late, and queued again
    again = next(p for p in verdict.problems if "queued again" in p.message)
    assert again.position == 1
    assert again.audit_id == first


def test_the_sequencer_thread_places_records_within_the_delay(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    quick = ServiceContext(
        ctx.db, settings=ctx.settings.model_copy(update={"ledger_max_merge_delay_s": 0.2})
    )
    thread = ledger_sequencer.Sequencer(quick)
    assert thread.interval_s == pytest.approx(0.05)
    thread.start()
    try:
        with ctx.db.transaction() as tx:
            _say(tx, clock, "placed by the thread")
        deadline = time.monotonic() + 20  # liveness only: a loaded machine may be slow
        while not _positions(ctx.db) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        thread.stop()
    assert list(_positions(ctx.db).values()) == [0]
    assert thread.sequenced == 1


def test_a_proof_of_a_queued_record_says_so_and_staff_get_it_sequenced(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    ledger.ensure_key(ctx)
    with ctx.db.transaction() as tx:
        _say(tx, clock, "about tenant t-1", tenant="t-1")
    audit_id = _audit_ids(ctx.db)[-1]
    tenant = Principal("member", Role.TENANT_MEMBER, "t-1")
    other = Principal("stranger", Role.TENANT_MEMBER, "t-2")
    with pytest.raises(NotFound):  # another tenant's record: as a missing one, queued or not
        ledger_proofs.prove(ctx, other, audit_id=audit_id)
    with pytest.raises(Conflict, match="not yet sequenced"):
        ledger_proofs.prove(ctx, tenant, audit_id=audit_id)
    cited = ledger_proofs.prove(ctx, STAFF, audit_id=audit_id)  # sequenced, then signed
    assert cited.position == 1
    assert cited.proof.head.head.tree_size == 2
