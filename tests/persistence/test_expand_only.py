"""Upgrades without downtime: every migration after the last release (``migrate.RELEASED``)
only expands the schema, so the released code keeps running on the new one.

Two checks. The migrations' own operations are read (the ``op.`` / ``batch.`` calls of each
``upgrade()``, parsed, not run) and only expanding ones are allowed: new tables, indexes and
columns, a new column nullable or with a server default, data statements (``op.execute``).
Then the schema itself, on both databases: migrated to the release, reflected (the released
tables as that release's code sees them), then migrated to head: every released table and
column is still there with its type and nullability, a column added to a released table can
be left out of an insert, and rows written and read as the released code does (its
columns only) go in and come back.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy import inspect as reflect

from gpulease.persistence import migrate
from gpulease.persistence.db import Database

VERSIONS = migrate.MIGRATIONS / "versions"
EXPANDING = {"create_table", "create_index", "add_column", "batch_alter_table", "f", "execute"}


def revision_of(path: Path) -> str:
    return path.name.split("_", 1)[0]


def after_release() -> list[Path]:
    return sorted(p for p in VERSIONS.glob("[0-9]*.py") if revision_of(p) > migrate.RELEASED)


def operations(path: Path) -> list[ast.Call]:
    """The Alembic calls of ``upgrade()``: on ``op`` and on the batches it opens
    (``with op.batch_alter_table(...) as batch``)."""
    tree = ast.parse(path.read_text())
    (upgrade,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"]
    receivers = {"op"} | {
        item.optional_vars.id
        for node in ast.walk(upgrade)
        if isinstance(node, ast.With)
        for item in node.items
        if isinstance(item.optional_vars, ast.Name)
    }
    calls = [
        node
        for node in ast.walk(upgrade)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in receivers
    ]
    return sorted(calls, key=lambda call: (call.lineno, call.col_offset))


def violations(path: Path) -> list[str]:
    """What in ``path``'s upgrade is not expand-only, one line each."""
    found = []
    for call in operations(path):
        assert isinstance(call.func, ast.Attribute)
        name = call.func.attr
        where = f"{path.name}:{call.lineno}"
        if name not in EXPANDING:
            found.append(f"{where}: {name} (not expand-only)")
        if name == "add_column":
            columns = [a for a in call.args if isinstance(a, ast.Call)]
            for column in columns:
                keywords = {k.arg: k.value for k in column.keywords}
                nullable = keywords.get("nullable")
                not_null = isinstance(nullable, ast.Constant) and nullable.value is False
                if not_null and "server_default" not in keywords:
                    found.append(f"{where}: a NOT NULL column without a server default")
    return found


# ------------------------------------------------------------------ the operations
def test_the_release_point_is_a_migration_and_later_ones_exist_or_not() -> None:
    assert (VERSIONS / next(VERSIONS.glob(f"{migrate.RELEASED}_*.py")).name).exists()
    assert all(revision_of(p) > migrate.RELEASED for p in after_release())


def test_every_migration_after_the_release_is_expand_only() -> None:
    found = [line for path in after_release() for line in violations(path)]
    assert found == []


def test_the_check_catches_what_is_not_expand_only(tmp_path: Path) -> None:
    """The parser sees drops, renames, retypes and NOT NULL without a default."""
    bad = tmp_path / "0099_bad.py"
    bad.write_text(
        "import sqlalchemy as sa\nfrom alembic import op\n"
        "def upgrade():\n"
        "    op.drop_table('x')\n"
        "    with op.batch_alter_table('y') as batch:\n"
        "        batch.alter_column('a', new_column_name='b')\n"
        "        batch.add_column(sa.Column('c', sa.Integer(), nullable=False))\n"
        "        batch.add_column(sa.Column('d', sa.Integer(), nullable=False, "
        "server_default='0'))\n"
        "        batch.drop_column('e')\n"
        "    op.rename_table('f', 'g')\n"
        "def downgrade():\n"
        "    op.drop_table('z')\n"
    )
    assert violations(bad) == [
        "0099_bad.py:4: drop_table (not expand-only)",
        "0099_bad.py:6: alter_column (not expand-only)",
        "0099_bad.py:7: a NOT NULL column without a server default",
        "0099_bad.py:9: drop_column (not expand-only)",
        "0099_bad.py:10: rename_table (not expand-only)",
    ]
    # and the release's own migration, 0009, relaxed a unique constraint: not expand-only
    assert violations(next(VERSIONS.glob("0009_*.py")))


# ------------------------------------------------------------------ the schema
def _value(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer):
        return 4242  # not a seeded row's id
    if isinstance(kind, Numeric):
        return Decimal("1")
    if isinstance(kind, DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC)
    if isinstance(kind, JSON):
        return {}
    if isinstance(kind, String):
        return "r"[: kind.length or 1]
    raise AssertionError(f"no sample value for {column.table.name}.{column.name}: {kind!r}")


def _row(table: Table) -> dict[str, Any] | None:
    """A row of ``table`` as the released code could write it (its columns only, those
    without a default), or None for a table that references another (no parent row)."""
    if table.foreign_keys or table.name == "alembic_version":  # that one is Alembic's
        return None
    return {c.name: _value(c) for c in table.columns if c.server_default is None}


def test_the_released_schema_is_part_of_the_new_one_and_its_rows_still_go_in(
    db: Database,
) -> None:
    migrate.downgrade(db, "base")
    migrate.upgrade(db, migrate.RELEASED)
    released = MetaData()
    released.reflect(db.engine)
    assert len(released.tables) >= 15
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()

    now = reflect(db.engine)
    new_tables = set(now.get_table_names())
    for name, old in released.tables.items():
        assert name in new_tables, f"table {name} of the release was dropped or renamed"
        columns = {c["name"]: c for c in now.get_columns(name)}
        for column in old.columns:
            assert column.name in columns, f"{name}.{column.name} was dropped or renamed"
            new = columns[column.name]
            assert new["nullable"] or not column.nullable, f"{name}.{column.name}: NOT NULL now"
            assert type(new["type"])._type_affinity is type(column.type)._type_affinity, (  # type: ignore[attr-defined]
                f"{name}.{column.name}: {column.type!r} became {new['type']!r}"
            )
            old_length = getattr(column.type, "length", None)
            if old_length is not None:
                new_length = getattr(new["type"], "length", None)
                assert new_length is None or new_length >= old_length, f"{name}.{column.name}"
        for added in set(columns) - {c.name for c in old.columns}:
            column = columns[added]
            assert column["nullable"] or column.get("default") is not None, (
                f"{name}.{added}: added NOT NULL without a default: the release's inserts fail"
            )

    # rows written and read the released code's way: its own columns only
    written = 0
    with db.engine.begin() as conn:
        for table in released.sorted_tables:
            row = _row(table)
            if row is None:
                continue
            conn.execute(insert(table).values(**row))
            compared = {k: v for k, v in row.items() if not isinstance(v, datetime | dict)}
            rows = conn.execute(select(*table.columns)).mappings().all()  # seeded rows too
            assert any(all(r[k] == v for k, v in compared.items()) for r in rows), table.name
            written += 1
    assert written >= 5
