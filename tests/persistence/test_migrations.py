"""Alembic migrations on the real databases: up, down to base, up again."""

from __future__ import annotations

from sqlalchemy import inspect

from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.persistence.tables import Base


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def test_upgrade_downgrade_upgrade(db: Database) -> None:
    expected = set(Base.metadata.tables)
    assert len(expected) >= 15
    head = migrate.head_revision()
    assert head is not None

    # the fixture's database is at head already
    assert expected <= _tables(db)
    assert migrate.current_revision(db) == head

    migrate.downgrade(db, "base")
    assert _tables(db) & expected == set()
    assert migrate.current_revision(db) is None

    migrate.upgrade(db)
    assert expected <= _tables(db)
    assert migrate.current_revision(db) == head

    # upgrading an up-to-date database is a no-op
    migrate.upgrade(db)
    assert migrate.current_revision(db) == head


def test_schema_matches_the_models(db: Database) -> None:
    """Every column of every model exists in the migrated schema (no drift)."""
    inspector = inspect(db.engine)
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert {c.name for c in table.columns} == columns, name


def test_downgrade_with_data_then_upgrade(
    db: Database,
    demo: list[object],  # the demo installation: rows in every referenced table
) -> None:
    """``gpulease init --reset`` on a database full of rows: each step back, then up again.
    SQLite copies tables to alter them, which fails with foreign keys enforced unless the
    migration switches them off."""
    migrate.downgrade(db, "0001")  # 0002 alters ``tenants``, which others reference
    assert migrate.current_revision(db) == "0001"
    migrate.downgrade(db, "base")
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()
    with db.connect() as conn:
        # foreign keys are enforced again on SQLite after the migration
        if db.is_sqlite:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
