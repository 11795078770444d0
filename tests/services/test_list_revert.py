"""Reverting a bad list import by importing the earlier file again (issue 14, defect 7), on
SQLite and PostgreSQL: a new snapshot recorded as a revert; the current content again is a
no-op that says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict
from gpulease.persistence.tables import AuditRecord, ListSnapshotRow
from gpulease.services import identity, screening_lists
from gpulease.services.context import ServiceContext
from support.lists import entity_list_of


@pytest.fixture
def officer(ctx: ServiceContext) -> Principal:
    admin, _ = identity.bootstrap_operator(ctx, name="Ops", email="ops@op.example")
    user, _ = identity.create_user(
        ctx,
        identity.principal_of(admin),
        name="Officer",
        email="kyc@op.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    return identity.principal_of(user)


def _rows(ctx: ServiceContext) -> list[ListSnapshotRow]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(select(ListSnapshotRow).order_by(ListSnapshotRow.imported_at))


def test_reimporting_an_earlier_file_reverts_to_it(
    ctx: ServiceContext, clock: ManualClock, officer: Principal, tmp_path: Path
) -> None:
    good = entity_list_of(tmp_path / "good.csv", ["Alpha Research Institute", "Beta Trading Co."])
    bad = entity_list_of(tmp_path / "bad.csv", ["Alpha Research Institute"])  # Beta lost by mistake
    first = screening_lists.import_list(ctx, officer, good, "csl-csv", label="May")
    clock.advance(60)
    wrong = screening_lists.import_list(ctx, officer, bad, "csl-csv", label="June (bad)")
    assert wrong.removed == 1
    assert wrong.reverts is None
    clock.advance(60)

    undone = screening_lists.import_list(ctx, officer, good, "csl-csv", label="May again")
    assert undone.reverts == first.snapshot.id
    assert undone.previous == wrong.snapshot.id
    assert (undone.added, undone.removed) == (1, 0)
    snap = undone.snapshot
    assert snap.id not in {first.snapshot.id, wrong.snapshot.id}
    assert snap.checksum == first.snapshot.checksum
    assert snap.current
    assert [(r.id, r.current, r.reverts) for r in _rows(ctx)] == [
        (first.snapshot.id, False, None),
        (wrong.snapshot.id, False, None),
        (snap.id, True, first.snapshot.id),
    ]
    in_force = screening_lists.current_lists(ctx)
    assert in_force.snapshot_ids == (snap.id,)
    assert {e.name for e in in_force.index.entries} == {
        "Alpha Research Institute",
        "Beta Trading Co.",
    }
    with ctx.db.transaction(write=False) as tx:
        record = tx.first(
            select(AuditRecord).where(
                AuditRecord.action == "list.import", AuditRecord.subject_id == snap.id
            )
        )
    assert record is not None
    assert record.after is not None
    assert record.after["reverts"] == first.snapshot.id
    assert f"reverts to the content of snapshot {first.snapshot.id}" in record.reason

    # the same content as the current snapshot: nothing to do, said plainly, nothing written
    clock.advance(60)
    with pytest.raises(Conflict, match="already the current one") as same:
        screening_lists.import_list(ctx, officer, good, "csl-csv")
    assert snap.id in str(same.value)
    assert "nothing to do" in str(same.value)
    with ctx.db.transaction(write=False) as tx:
        assert tx.session.scalar(select(func.count()).select_from(ListSnapshotRow)) == 3

    # and forward again: the bad file once more is a revert to the bad snapshot
    again = screening_lists.import_list(ctx, officer, bad, "csl-csv")
    assert again.reverts == wrong.snapshot.id
