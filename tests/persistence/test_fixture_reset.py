"""The PostgreSQL fixtures' reset (tests/pg_reset.py) gives each test exactly the wanted
content, whatever the test before it wrote, though it rewrites only the marked tables.

Each check writes as a test would (an ordinary session: the marking triggers fire), then
asks the tracker for the demo or for an empty database and compares every table's rows
(a digest of each) and every sequence's next value with those of a full reset.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

import pg_reset
from gpulease.persistence import migrate
from gpulease.persistence.db import Database

Content = dict[str, object]


def _content(conninfo: str) -> Content:
    """Every table's row count and digest, and every sequence's next value."""
    found: Content = {}
    with psycopg.connect(conninfo) as conn:
        tables = [
            str(r[0])
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        for table in tables:
            found[table] = conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {} t"
                ).format(sql.Identifier("public", table))
            ).fetchone()
        for name, value in conn.execute(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'"
        ):
            found[f"sequence {name}"] = value
    return found


@pytest.fixture
def tracker(postgres_session_url: str) -> pg_reset.Tracker:
    return pg_reset.TRACKERS[postgres_session_url]


@pytest.fixture
def full_demo(tracker: pg_reset.Tracker, postgres_demo_template: object) -> Content:
    """The demo's content after a full rewrite (every table, every sequence)."""
    tracker.state = None
    tracker.sync(pg_reset.DEMO)
    return _content(tracker.conninfo)


def _write(conninfo: str) -> None:
    """What tests do: rows deleted, changed and added in big and small tables, a
    sequence moved, a table emptied by TRUNCATE; one write rolled back."""
    with psycopg.connect(conninfo) as conn:
        conn.execute("DELETE FROM custody_events WHERE id % 7 = 0")
        conn.execute("UPDATE gpus SET serial = serial || '-x' WHERE slot = 0")
        conn.execute("UPDATE tenants SET name = name || ' (renamed)'")
        conn.execute("SELECT nextval(pg_get_serial_sequence('audit_log', 'id'))")
        conn.execute("TRUNCATE scheduler_changes")
        conn.commit()
    with psycopg.connect(conninfo) as conn:
        conn.execute("DELETE FROM nodes WHERE false")  # a write of no row marks its table too
        conn.execute("UPDATE racks SET site_id = site_id")
        conn.rollback()  # a rolled-back write: its table is rewritten all the same


def test_a_test_s_writes_are_undone_for_the_next_demo_test(
    tracker: pg_reset.Tracker, full_demo: Content
) -> None:
    assert full_demo["custody_events"][0] > 10_000  # type: ignore[index]
    _write(tracker.conninfo)
    assert _content(tracker.conninfo) != full_demo
    tracker.sync(pg_reset.DEMO)
    assert _content(tracker.conninfo) == full_demo


def test_an_empty_test_after_a_demo_test_and_back(
    tracker: pg_reset.Tracker, full_demo: Content
) -> None:
    _write(tracker.conninfo)
    tracker.sync(pg_reset.EMPTY)
    empty = _content(tracker.conninfo)
    assert {v for k, v in empty.items() if k.startswith("sequence ")} == {None}
    assert all(
        v[0] == 0  # type: ignore[index]
        for k, v in empty.items()
        if not k.startswith("sequence ") and k != "alembic_version"
    )
    with psycopg.connect(tracker.conninfo) as conn:  # what a test on an empty database does
        conn.execute("INSERT INTO sites SELECT * FROM demo_snapshot.sites")
        conn.execute("SELECT nextval('access_records_id_seq')")
        conn.commit()
    tracker.sync(pg_reset.DEMO)
    assert _content(tracker.conninfo) == full_demo


def test_a_schema_remade_under_the_marks_is_rewritten_whole(
    tracker: pg_reset.Tracker, full_demo: Content, postgres_session_url: str
) -> None:
    """A test that downgrades and upgrades the schema drops the tables and their
    triggers: the next reset sees it and puts everything back."""
    db = Database(postgres_session_url)
    try:
        migrate.downgrade(db, "base")
        migrate.upgrade(db)
    finally:
        db.dispose()
    with psycopg.connect(tracker.conninfo) as conn:  # the new tables have no marking trigger
        conn.execute("INSERT INTO sites SELECT * FROM demo_snapshot.sites")
        conn.commit()
    tracker.sync(pg_reset.DEMO)
    assert _content(tracker.conninfo) == full_demo
    _write(tracker.conninfo)  # the marks are on the new tables
    tracker.sync(pg_reset.DEMO)
    assert _content(tracker.conninfo) == full_demo
