"""Bring the session's PostgreSQL database to a wanted content (empty, or the demo) by
rewriting only the tables a test changed (used by the fixtures of tests/conftest.py).

Design. Emptying every table and copying the demo in before each test cost about 0.3 s a
test (the demo's 11,680 custody events, 2,304 GPUs, ... written again each time), while a
test changes a handful of small tables. So the database remembers what was written:

* every table of ``public`` (but ``alembic_version``) has a statement-level trigger,
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE, that calls ``nextval`` on a sequence of its
  own in the schema :data:`SCHEMA`. A sequence, not a row: ``nextval`` is not transactional
  and never waits for another transaction, so two transactions writing the same tables in
  opposite orders cannot deadlock on the marks, and a rolled-back write still marks its
  table (a table is rewritten more often than needed, never less);
* the fixtures write with ``session_replication_role = replica``, under which ordinary
  triggers do not fire: the reset itself marks nothing;
* :meth:`Tracker.sync` reads the marks and every ``public`` sequence in one query and
  rewrites the marked tables (plus, when the wanted content differs from the current one,
  every table the demo fills), restarts or restores the sequences that moved, and clears
  the marks before it writes (a write that races the reset marks its table again).

Invariants. After :meth:`Tracker.sync` returns, every table of ``public`` holds exactly
the wanted rows (none, or the demo snapshot's) and every sequence is where it was after a
full reset. The state is believed only while the schema is the one the triggers were put
on: the oids and names of ``public``'s tables and the number of enabled marking triggers
form a fingerprint read at each sync; a difference (a test that downgraded and upgraded
the schema, created or dropped a table, dropped a trigger) drops the marks and triggers,
puts them on again and rewrites every table. A sync that fails leaves the state unknown,
so the next one rewrites everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

SCHEMA = "test_fixture_marks"
TRIGGER = "zz_test_fixture_mark"
SNAPSHOT = "demo_snapshot"
EMPTY, DEMO = "empty", "demo"

# One round trip: a first row (NULL, the oids and names of public's tables, the number of
# enabled marking triggers: the fingerprint), then a row per sequence of public and of the
# marks (its schema, its name, its last value or NULL when never called since its reset).
_READ = sql.SQL(
    "SELECT NULL::text, (SELECT string_agg(c.oid::text || ':' || c.relname, ',' ORDER BY c.oid) "
    "FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')),"
    " (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE t.tgname = {trigger} AND t.tgenabled = 'O' "
    "AND c.relnamespace = 'public'::regnamespace) "
    "UNION ALL SELECT schemaname::text, sequencename::text, last_value FROM pg_sequences "
    "WHERE schemaname IN ('public', {schema})"
).format(trigger=sql.Literal(TRIGGER), schema=sql.Literal(SCHEMA))


@dataclass
class Tracker:
    """What the session database holds, and how to bring it back (one per session)."""

    conninfo: str  # the session database's libpq conninfo
    state: str | None = None  # EMPTY, DEMO, or None: unknown (rewrite everything)
    fingerprint: tuple[object, ...] | None = None
    marks: dict[str, str] = field(default_factory=dict)  # mark sequence -> its table
    demo_tables: frozenset[str] = frozenset()  # the tables the demo fills
    demo_sequences: dict[str, int | None] = field(default_factory=dict)  # last_value in demo
    rewritten: int = 0  # tables rewritten so far (for a look at what the marks save)

    # ------------------------------------------------------------------ the demo
    def snapshot_demo(self) -> None:
        """Keep the demo that is in ``public`` now in :data:`SNAPSHOT`, with its sequences."""
        with psycopg.connect(self.conninfo) as conn:
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SNAPSHOT))
            )
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SNAPSHOT)))
            filled = []
            for table in _tables(conn):
                conn.execute(
                    sql.SQL("CREATE TABLE {} AS TABLE {}").format(
                        sql.Identifier(SNAPSHOT, table), sql.Identifier("public", table)
                    )
                )
                row = conn.execute(
                    sql.SQL("SELECT EXISTS (SELECT FROM {})").format(
                        sql.Identifier(SNAPSHOT, table)
                    )
                ).fetchone()
                if row and row[0]:
                    filled.append(table)
            self.demo_tables = frozenset(filled)
            self.demo_sequences = {
                str(name): value
                for schema, name, value in conn.execute(_READ).fetchall()[1:]
                if schema == "public"
            }
        self.state = None

    # ------------------------------------------------------------------ the reset
    def sync(self, want: str) -> None:
        """Make the database hold ``want`` (:data:`EMPTY` or :data:`DEMO`)."""
        try:
            self._sync(want)
        except BaseException:
            self.state = None
            raise

    def _sync(self, want: str) -> None:
        with psycopg.connect(self.conninfo) as conn:
            # one round trip: the schema's fingerprint, then every sequence (marks included)
            rows = conn.execute(_READ).fetchall()
            if rows[0][1:] != self.fingerprint or self.state is None:
                self._install(conn)
                self.state = None
                rows = conn.execute(_READ).fetchall()
            moved: list[tuple[str, int | None]] = []  # public sequences away from wanted
            dirty: set[str] = set()
            clear: list[str] = []
            expected = self.demo_sequences if want == DEMO else {}
            for schema, name, value in rows[1:]:
                if schema == SCHEMA:
                    if value is not None:
                        dirty.add(self.marks[str(name)])
                        clear.append(str(name))
                elif value != expected.get(str(name)):
                    moved.append((str(name), expected.get(str(name))))
            if self.state is None:
                dirty = set(self.marks.values())
            elif self.state != want:
                dirty |= self.demo_tables
            if not dirty and not moved:
                conn.rollback()
                self.state = want
                return
            self._rewrite(conn, want, sorted(dirty), moved, clear)
            self.state = want
            self.rewritten += len(dirty)

    def _rewrite(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        want: str,
        tables: list[str],
        moved: list[tuple[str, int | None]],
        clear: list[str],
    ) -> None:
        """Rewrite ``tables``, put ``moved`` sequences back and clear the ``clear`` marks
        (first: a write racing the reset marks its table again), in one round trip. A
        lock held more than 5 s by a connection left over from an earlier test (a server
        it started) ends that connection and the rewrite is tried again."""
        statements = [
            sql.SQL("SELECT setval({}, 1, false)").format(sql.Literal(f"{SCHEMA}.{name}"))
            for name in clear
        ]
        statements += [
            sql.SQL("SET LOCAL lock_timeout = '5s'"),
            # whole tables replaced by a consistent copy: no foreign-key trigger need check
            # it row by row (and the marking triggers do not fire)
            sql.SQL("SET LOCAL session_replication_role = replica"),
        ]
        for table in tables:
            statements.append(sql.SQL("DELETE FROM {}").format(sql.Identifier("public", table)))
            if want == DEMO and table in self.demo_tables:
                statements.append(
                    sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                        sql.Identifier("public", table), sql.Identifier(SNAPSHOT, table)
                    )
                )
        for name, value in moved:
            sequence = sql.Identifier("public", name)
            if value is None:
                statements.append(sql.SQL("ALTER SEQUENCE {} RESTART").format(sequence))
            else:
                statements.append(
                    sql.SQL("SELECT setval({}, {}, true)").format(
                        sql.Literal(sequence.as_string(conn)), sql.Literal(value)
                    )
                )
        script = sql.SQL("; ").join(statements)
        for attempt in range(2):
            try:
                conn.execute(script)  # no parameters: one simple query, many statements
                conn.commit()
                return
            except psycopg.errors.LockNotAvailable:
                conn.rollback()
                if attempt:
                    raise
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                conn.commit()

    # ------------------------------------------------------------------ the marks
    def _fingerprint(self, conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
        rows = conn.execute(_READ).fetchall()
        conn.commit()
        return tuple(rows[0][1:])

    def _install(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Drop the marks and their triggers, then put them on every table of ``public``."""
        for attempt in range(2):
            try:
                conn.execute("SET LOCAL lock_timeout = '5s'")
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA))
                )
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
                conn.execute(
                    sql.SQL(
                        "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS "
                        "$$ BEGIN PERFORM nextval(TG_ARGV[0]); RETURN NULL; END $$"
                    ).format(sql.Identifier(SCHEMA, "mark"))
                )
                marks = {}
                for i, table in enumerate(_tables(conn)):
                    name = f"t{i}"
                    marks[name] = table
                    conn.execute(sql.SQL("CREATE SEQUENCE {}").format(sql.Identifier(SCHEMA, name)))
                    conn.execute(
                        sql.SQL(
                            "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                            "ON {} FOR EACH STATEMENT EXECUTE FUNCTION {}({})"
                        ).format(
                            sql.Identifier(TRIGGER),
                            sql.Identifier("public", table),
                            sql.Identifier(SCHEMA, "mark"),
                            sql.Literal(f"{SCHEMA}.{name}"),
                        )
                    )
                conn.commit()
                self.marks = marks
                self.fingerprint = self._fingerprint(conn)
                return
            except psycopg.errors.LockNotAvailable:
                conn.rollback()
                if attempt:
                    raise
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                conn.commit()


TRACKERS: dict[str, Tracker] = {}  # the session databases' trackers, by URL (tests/conftest.py)


def _tables(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """The tables of ``public`` a test may write (every one but Alembic's)."""
    return [
        str(row[0])
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' ORDER BY tablename"
        )
    ]
