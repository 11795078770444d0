"""``ledger verify`` against the database, on SQLite and PostgreSQL: an untouched ledger
verifies; an audit row changed, deleted, inserted or moved in SQL is named (position and
audit id); heads are signed over the committed prefix, refused over a rewritten one, and
verified across a key rotation recorded in the ledger itself."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import text

from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict
from gpulease.ledger.bundle import verify_bundle
from gpulease.ledger.heads import parse_time, verify_tree_head
from gpulease.ledger.records import record_leaf
from gpulease.ledger.rotation import check_rotation
from gpulease.persistence import ledger_store
from gpulease.persistence.db import Database
from gpulease.services import audit, ledger, ledger_keys, ledger_sequencer
from gpulease.services.context import ServiceContext


def _write(ctx: ServiceContext, clock: ManualClock, n: int, tag: str) -> None:
    for i in range(n):
        clock.advance(1)
        with ctx.db.transaction() as tx:
            audit.record(
                tx,
                at=clock.now(),
                actor="officer",
                action=f"thing.{tag}",
                subject_type="thing",
                subject_id=f"thing-{tag}-{i}",
                after={"i": i, "tag": tag},
                reason=f"{tag} {i}",
            )


@pytest.fixture
def filled(ctx: ServiceContext, clock: ManualClock) -> ServiceContext:
    """A key, 12 records under two signed heads (sizes 6 and 11, with the key's own
    record first) and 3 records after the last head (sequenced, not signed)."""
    ledger.ensure_key(ctx)
    _write(ctx, clock, 5, "a")
    assert ledger.sign_head(ctx) is not None
    _write(ctx, clock, 5, "b")
    assert ledger.sign_head(ctx) is not None
    _write(ctx, clock, 3, "c")
    ledger_sequencer.sequence(ctx)  # the scheduler's sequencer: positions, no head yet
    return ctx


def _audit_id(db: Database, position: int) -> int:
    with db.transaction(write=False) as tx:
        entry = ledger_store.entry_at(tx.session, position)
        assert entry is not None
        return entry.audit_id


def _sql(db: Database, *statements: str) -> None:
    with db.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
        conn.commit()


def test_an_untouched_ledger_verifies(filled: ServiceContext) -> None:
    verdict = ledger.verify(filled)
    assert verdict.ok, verdict.problems
    assert verdict.size == 14
    assert verdict.heads == (6, 11)
    assert verdict.covered == 11
    assert "3 not yet signed" in verdict.summary()


def test_a_changed_record_is_named(filled: ServiceContext) -> None:
    victim = _audit_id(filled.db, 3)
    _sql(filled.db, f"UPDATE audit_log SET reason = 'nothing happened' WHERE id = {victim}")
    first = ledger.verify(filled).first_bad_record
    assert first is not None
    assert (first.kind, first.position, first.audit_id) == ("modified", 3, victim)


def test_a_changed_record_after_the_last_head_is_named(filled: ServiceContext) -> None:
    victim = _audit_id(filled.db, 12)
    _sql(filled.db, f"UPDATE audit_log SET actor = 'someone else' WHERE id = {victim}")
    first = ledger.verify(filled).first_bad_record
    assert first is not None
    assert (first.kind, first.position, first.audit_id) == ("modified", 12, victim)


def test_a_deleted_record_is_named(filled: ServiceContext) -> None:
    victim = _audit_id(filled.db, 7)
    _sql(filled.db, f"DELETE FROM audit_log WHERE id = {victim}")
    first = ledger.verify(filled).first_bad_record
    assert first is not None
    assert (first.kind, first.position, first.audit_id) == ("deleted", 7, victim)


def test_a_record_deleted_with_its_entry_is_named(filled: ServiceContext) -> None:
    victim = _audit_id(filled.db, 4)
    _sql(
        filled.db,
        f"DELETE FROM audit_log WHERE id = {victim}",
        "DELETE FROM ledger_entries WHERE position = 4",
    )
    first = ledger.verify(filled).first_bad_record
    assert first is not None
    assert (first.kind, first.position) == ("deleted", 4)


def test_an_inserted_record_is_named(filled: ServiceContext, db_backend: str) -> None:
    _sql(
        filled.db,
        "INSERT INTO audit_log (at, actor, action, subject_type, subject_id, reason) "
        "VALUES ('2026-03-02 09:00:30', 'officer', 'thing.a', 'thing', 'thing-x', 'forged')",
    )
    verdict = ledger.verify(filled)
    first = verdict.first_bad_record
    assert first is not None
    assert first.kind == "inserted"
    assert first.audit_id == 15  # the next id: the key's record, then 14 more
    assert "thing-x" not in verdict.summary()  # named by its id


def test_swapped_records_are_named_as_reordered(filled: ServiceContext) -> None:
    a, b = _audit_id(filled.db, 2), _audit_id(filled.db, 5)
    _sql(
        filled.db,
        f"UPDATE audit_log SET id = -1 WHERE id = {a}",
        f"UPDATE audit_log SET id = {a} WHERE id = {b}",
        f"UPDATE audit_log SET id = {b} WHERE id = -1",
    )
    first = ledger.verify(filled).first_bad_record
    assert first is not None
    assert (first.kind, first.position, first.audit_id) == ("reordered", 2, a)


def test_a_record_rewritten_with_its_stored_hash_fails_its_head(filled: ServiceContext) -> None:
    """Whoever rewrites the leaf hash too still fails the signed head: the finding names the
    signed interval the record lies in, and the signer refuses to sign over it."""
    victim = _audit_id(filled.db, 8)
    _sql(filled.db, f"UPDATE audit_log SET reason = 'rewritten' WHERE id = {victim}")
    with filled.db.transaction(write=False) as tx:
        entry = ledger_store.entry_at(tx.session, 8)
        assert entry is not None
        assert entry.fields is not None
    forged = record_leaf(entry.fields).hex()
    hex_literal = f"X'{forged}'" if filled.db.is_sqlite else f"'\\x{forged}'::bytea"
    _sql(filled.db, f"UPDATE ledger_entries SET leaf_hash = {hex_literal} WHERE position = 8")
    verdict = ledger.verify(filled)
    assert not verdict.ok
    first = verdict.first_bad_record
    assert first is not None
    assert first.kind == "changed_in_range"
    assert "[6, 11)" in first.message
    _write(filled, ManualClock(filled.now()), 1, "d")
    with pytest.raises(Conflict, match="no longer reproduces"):
        ledger.sign_head(filled)


def test_key_rotation_is_in_the_ledger_and_old_heads_still_verify(
    filled: ServiceContext, clock: ManualClock
) -> None:
    old = ledger.latest_head(filled)
    clock.advance(60)
    before, after = ledger.rotate_key(filled, reason="yearly")
    assert before != after
    _write(filled, clock, 2, "d")
    assert ledger.sign_head(filled) is not None
    verdict = ledger.verify(filled)
    assert verdict.ok, verdict.problems
    assert set(verdict.key_ids) == {before, after}
    periods = ledger.key_periods(filled)
    assert verify_tree_head(old, periods)
    with filled.db.transaction(write=False) as tx:
        rotated = ledger_store.entry_at(tx.session, 14)
    assert rotated is not None
    assert rotated.fields is not None
    assert rotated.fields["action"] == "ledger.key_rotated"
    assert rotated.fields["after"]["key_id"] == after
    bundle = ledger.export(filled)
    assert verify_bundle(bundle).ok


def test_the_key_file_is_private_and_outside_the_database(filled: ServiceContext) -> None:
    kid = ledger.ensure_key(filled)
    path = ledger_keys.key_file(filled.settings, kid)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with filled.db.connect() as conn:
        dumped = " ".join(str(row) for row in conn.execute(text("SELECT * FROM ledger_keys")))
    assert "PRIVATE" not in dumped
    assert path.read_text() not in dumped


def test_heads_are_published_as_json_lines(filled: ServiceContext) -> None:
    lines = ledger.heads_file(filled.settings).read_text().splitlines()
    assert len(lines) == 2
    assert '"tree_size":11' in lines[1]


def test_the_scheduler_hook_signs_when_due_in_its_own_thread(
    filled: ServiceContext, clock: ManualClock
) -> None:
    signer = ledger.HeadSigner(filled, interval_s=3600)
    thread = signer()
    assert thread is not None
    thread.join(timeout=30)
    assert ledger.latest_head(filled).tree_size == 14
    _write(filled, clock, 1, "d")
    assert signer() is None  # not due for an hour
    assert ledger.latest_head(filled).tree_size == 14


def test_a_rotation_is_endorsed_by_the_old_key(filled: ServiceContext, clock: ManualClock) -> None:
    clock.advance(60)
    old, new = ledger.rotate_key(filled, reason="yearly")
    with filled.db.transaction(write=False) as tx:
        rotated = ledger_store.entry_at(tx.session, 14)
        created = ledger_store.entry_at(tx.session, 0)
    assert rotated is not None
    assert rotated.fields is not None
    assert created is not None
    assert created.fields is not None
    after = rotated.fields["after"]
    assert (rotated.fields["before"]["key_id"], after["key_id"]) == (old, new)
    old_public = bytes.fromhex(created.fields["after"]["public_key"])
    endorsement = bytes.fromhex(after["endorsement"])
    moment = parse_time(after["valid_from"])
    assert (
        check_rotation(old_public, bytes.fromhex(after["public_key"]), moment, endorsement) is None
    )
    forged = bytes.fromhex(after["public_key"])[:-1] + b"\x00"
    assert check_rotation(old_public, forged, moment, endorsement) is not None


def test_a_key_substituted_in_the_key_table_is_named(filled: ServiceContext) -> None:
    """A rewritten history re-signed with a fresh key, the key table pointed at it: the
    ledger's own records never created that key."""
    from gpulease.ledger.keys import generate_private_key, key_id, public_key_bytes

    public = public_key_bytes(generate_private_key())
    kid = key_id(public)
    literal = f"X'{public.hex()}'" if filled.db.is_sqlite else f"'\\x{public.hex()}'::bytea"
    _sql(
        filled.db,
        f"INSERT INTO ledger_keys (key_id, public_key, valid_from) "
        f"VALUES ('{kid}', {literal}, '2026-01-01 00:00:00')",
    )
    verdict = ledger.verify(filled)
    assert [p.kind for p in verdict.problems] == ["bad_key"]
    assert kid in verdict.problems[0].message


def test_an_unendorsed_rotation_is_a_warning(filled: ServiceContext, clock: ManualClock) -> None:
    clock.advance(60)
    _old, new = ledger.rotate_key(filled, endorsed=False)
    verdict = ledger.verify(filled)
    assert verdict.ok, verdict.problems
    [warning] = verdict.warnings
    assert new in warning
    assert "not endorsed" in warning
