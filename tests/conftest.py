"""Database fixtures shared by every integration test (persistence, services, API, e2e).

Each test that asks for a database runs twice, on SQLite and on the real PostgreSQL:

* ``db_backend``: ``"sqlite"`` or ``"postgresql"`` (the parameter of the run);
* ``db_url``: the URL of a migrated, **empty** database for this test: a fresh SQLite file
  in ``tmp_path``, or this session's PostgreSQL database with every table emptied;
* ``db``: a :class:`~gpulease.persistence.db.Database` on ``db_url`` (disposed afterwards);
* ``sqlite_url`` / ``postgres_url``: the same, for tests that need one backend only;
* ``postgres_server``: the admin conninfo of the PostgreSQL server (skips if unreachable);
* ``clock``, ``settings``, ``ctx``: a ManualClock at :data:`START`, Settings whose data dir
  is in ``tmp_path``, and a ServiceContext over ``db``;
* ``demo``: the demo installation (``services.demo.create_demo`` run at :data:`START`:
  Jakarta, 32 NVL72 racks, three tenants with active leases) in ``db_url``; returns its
  users with their tokens. The demo is built once per session and backend; a test that
  asks for it gets its database made holding it (SQLite: a copy of the demo's file;
  PostgreSQL: see below).

PostgreSQL: one uniquely named database per test session (``gpulease_test_<pid>_<hex>``),
created and migrated once, brought back before each test to the content the test wants
(empty, or the demo), dropped at the end (leftover connections are terminated first);
databases of earlier sessions whose process is gone are dropped when a session starts.
Only the tables written since the last test are rewritten: triggers mark them
(tests/pg_reset.py), so a test that reads the demo or writes a few small tables does not
pay for copying the 11,680 custody events again. The server is ``GPULEASE_TEST_PG`` (a
libpq conninfo, default ``host=127.0.0.1 port=5432 user=postgres``); if it cannot be
reached, the ``postgresql`` runs are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

import pg_reset
from gpulease.api.app import create_app
from gpulease.domain.clock import ManualClock
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.persistence.tables import Base
from gpulease.services import demo as demo_service
from gpulease.services.context import ServiceContext
from gpulease.settings import Settings

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PG_CONNINFO = os.environ.get("GPULEASE_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")
BACKENDS = ["sqlite", "postgresql"]

# the demo's principals, executor and live scheduler, for every folder; a line per test file;
# the munged the run started stopped once at the end; the Hypothesis profiles and example
# budgets; CPU time by file when GPULEASE_TEST_CPU names a file
pytest_plugins = [
    "demo_principals",
    "progress_by_file",
    "munge_guard",
    "hypothesis_profiles",
    "file_cpu",
]


# seconds a file keeps a worker busy (tests/file_weights.json; see below)
FILE_WEIGHTS: dict[str, float] = json.loads(
    (Path(__file__).with_name("file_weights.json")).read_text(encoding="utf-8")
)
UNKNOWN_SLOW_WEIGHT = 30.0  # a file not in FILE_WEIGHTS with a slow test: as a long file


@pytest.hookimpl(trylast=True)  # after tests/e2e/conftest.py has marked its tests slow
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first, each file's tests kept together and in order.

    Under ``-n 3 --dist loadfile --no-loadscope-reorder`` the workers take files in this
    order (longest processing time first), so the long files (a real server per module,
    long property runs) start at once and the many short ones fill the gaps at the end: a
    long file left for last keeps one worker busy while the others have nothing to do.

    A file's weight is the seconds it kept a worker busy in a measured run
    (``tests/file_weights.json``, written by ``python tests/file_cpu.py --weights`` from a
    ``GPULEASE_TEST_CPU`` run); a file not listed weighs :data:`UNKNOWN_SLOW_WEIGHT` when
    it has a slow test, else nothing (in collection order after the weighed files). The
    order is the same in every xdist worker: it depends on the collection and that file."""
    root = config.rootpath
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    first_seen = {path: i for i, path in reversed(list(enumerate(i.path for i in items)))}

    def weight(path: Path) -> float:
        known = FILE_WEIGHTS.get(str(path.relative_to(root)))
        if known is not None:
            return known
        return UNKNOWN_SLOW_WEIGHT if path in slow_files else 0.0

    weights = {path: weight(path) for path in first_seen}
    items.sort(key=lambda item: (-weights[item.path], first_seen[item.path]))


def _pg_url(conninfo: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = params.get("user", "postgres")
    password = f":{params['password']}" if params.get("password") else ""
    host = params.get("host", "127.0.0.1")
    port = params.get("port", 5432)
    return f"postgresql+psycopg://{user}{password}@{host}:{port}/{dbname}"


def _admin(conninfo: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(conninfo, dbname="postgres", autocommit=True, connect_timeout=3)


def drop_pg_database(conninfo: str, name: str) -> None:
    with _admin(conninfo) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server's admin conninfo; skips the test if it cannot be reached."""
    try:
        with _admin(PG_CONNINFO) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        pytest.skip(f"PostgreSQL unreachable at {PG_CONNINFO!r}: {error}".strip())
    return PG_CONNINFO


PG_PREFIX = "gpulease_test_"


def _drop_abandoned(conninfo: str) -> None:
    """Drop the databases of earlier sessions whose process is gone (killed mid-run)."""
    with _admin(conninfo) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (PG_PREFIX + "%",)
            )
        ]
    for name in names:
        pid = name.removeprefix(PG_PREFIX).split("_")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            drop_pg_database(conninfo, name)
        except PermissionError:
            pass  # alive, another user's


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The databases this run's workers share and leave to the end (the e2e demo template,
    tests/e2e/conftest.py: ``gpulease_test_<this pid>_e2e_*``) dropped by the process that
    runs the session: the xdist controller, which finishes after every worker."""
    if hasattr(session.config, "workerinput"):
        return
    try:
        with _admin(PG_CONNINFO) as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s",
                    (f"{PG_PREFIX}{os.getpid()}_e2e_%",),
                )
            ]
    except psycopg.Error:
        return  # no server: none made
    for name in names:
        drop_pg_database(PG_CONNINFO, name)


@pytest.fixture(scope="session")
def postgres_session_url(postgres_server: str) -> Iterator[str]:
    """A migrated database of this session's own, dropped at the end of the session."""
    _drop_abandoned(postgres_server)
    name = f"{PG_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    with _admin(postgres_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        # A test database needs no durability across a crash of the server: commits do
        # not wait for the disk (the same semantics otherwise).
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(sql.Identifier(name))
        )
    url = _pg_url(postgres_server, name)
    try:
        db = Database(url)
        try:
            migrate.upgrade(db)
        finally:
            db.dispose()
        pg_reset.TRACKERS[url] = pg_reset.Tracker(
            psycopg.conninfo.make_conninfo(postgres_server, dbname=name)
        )
        yield url
    finally:
        pg_reset.TRACKERS.pop(url, None)
        drop_pg_database(postgres_server, name)


def empty_all(url: str) -> None:
    """Empty every table of a session database (keeps the schema and ``alembic_version``)
    and restart its sequences; only the tables written since the last reset are rewritten
    (tests/pg_reset.py)."""
    pg_reset.TRACKERS[url].sync(pg_reset.EMPTY)


def _wants_demo(request: pytest.FixtureRequest, backend: str) -> bool:
    """Whether this test asks for the demo in its ``db_backend`` database on ``backend``
    (then its database is made holding the demo at once, instead of empty then filled)."""
    names = request.fixturenames
    return (
        "demo" in names
        and "db_backend" in names
        and request.getfixturevalue("db_backend") == backend
    )


_DEMO_IN = pytest.StashKey[str]()  # the URL of the database a test got with the demo in


@pytest.fixture
def postgres_url(postgres_session_url: str, request: pytest.FixtureRequest) -> str:
    """This session's PostgreSQL database, migrated and empty (holding the demo already when
    the test asks for ``demo`` there)."""
    if _wants_demo(request, "postgresql"):
        request.getfixturevalue("postgres_demo_template")
        pg_reset.TRACKERS[postgres_session_url].sync(pg_reset.DEMO)
        request.node.stash[_DEMO_IN] = postgres_session_url
    else:
        pg_reset.TRACKERS[postgres_session_url].sync(pg_reset.EMPTY)
    return postgres_session_url


@pytest.fixture(scope="session")
def sqlite_migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite file migrated once per session (by Alembic), copied for each test."""
    path = tmp_path_factory.mktemp("migrated") / "gpulease.db"
    db = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()  # the last connection closed: the WAL is checkpointed into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_migrated: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated SQLite file in ``tmp_path`` (a copy of the session's migrated one;
    of the session's demo when the test asks for ``demo`` on SQLite)."""
    path = tmp_path / "gpulease.db"
    if _wants_demo(request, "sqlite"):
        template, _users = request.getfixturevalue("sqlite_demo_template")
        shutil.copyfile(template, path)
        request.node.stash[_DEMO_IN] = f"sqlite:///{path}"
    else:
        shutil.copyfile(sqlite_migrated, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(db_backend: str, request: pytest.FixtureRequest) -> str:
    """URL of a migrated, empty database: SQLite, then PostgreSQL."""
    name = "sqlite_url" if db_backend == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "var", preemption_grace_s=30.0)


@pytest.fixture
def ctx(db: Database, clock: ManualClock, settings: Settings) -> ServiceContext:
    return ServiceContext(db, settings=settings, clock=clock)


# ------------------------------------------------------------------------------ the demo


def _build_demo(url: str, data_dir: Path) -> list[demo_service.DemoUser]:
    db = Database(url)
    try:
        # Built at START but also served by real servers on the system clock: long-lived tokens.
        settings = Settings(data_dir=data_dir, token_ttl_days=3650)
        ctx = ServiceContext(db, settings=settings, clock=ManualClock(START))
        return demo_service.create_demo(ctx)
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def sqlite_demo_template(
    tmp_path_factory: pytest.TempPathFactory, sqlite_migrated: Path
) -> tuple[Path, list[demo_service.DemoUser]]:
    root = tmp_path_factory.mktemp("demo-template")
    path = root / "demo.db"
    shutil.copyfile(sqlite_migrated, path)
    users = _build_demo(f"sqlite:///{path}", root / "var")
    # the last connection closed: the WAL is checkpointed, the file is the whole demo
    assert not path.with_name(path.name + "-wal").exists()
    return path, users


@pytest.fixture(scope="session")
def postgres_demo_template(
    postgres_session_url: str, tmp_path_factory: pytest.TempPathFactory
) -> list[demo_service.DemoUser]:
    """The demo, built once into the session database and kept in a side schema."""
    tracker = pg_reset.TRACKERS[postgres_session_url]
    tracker.sync(pg_reset.EMPTY)
    users = _build_demo(postgres_session_url, tmp_path_factory.mktemp("demo-var"))
    tracker.snapshot_demo()
    return users


def _load_sqlite(template: Path, url: str) -> None:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS snap", (str(template),))
        conn.execute("BEGIN IMMEDIATE")
        for table in Base.metadata.sorted_tables:
            conn.execute(f'INSERT INTO main."{table.name}" SELECT * FROM snap."{table.name}"')
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE snap")
    finally:
        conn.close()


def _load_postgres(url: str) -> None:
    """The demo's rows added to what ``url`` holds (for a test that asked for ``demo`` after
    its database was made empty)."""
    db = Database(url)
    try:
        with db.connect() as conn:
            # a consistent snapshot copied whole: no foreign-key trigger need check it row by row
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for table in Base.metadata.sorted_tables:
                source = f'{pg_reset.SNAPSHOT}."{table.name}"'
                conn.exec_driver_sql(f'INSERT INTO public."{table.name}" SELECT * FROM {source}')
                key = list(table.primary_key.columns)
                if len(key) == 1 and key[0].autoincrement is True:
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('public.\"{table.name}\"', "
                        f"'{key[0].name}'), COALESCE(MAX(\"{key[0].name}\"), 0) + 1, false) "
                        f'FROM public."{table.name}"'
                    )
            conn.commit()
    finally:
        db.dispose()
    pg_reset.TRACKERS[url].state = pg_reset.DEMO  # the tables written since hold more: marked


@pytest.fixture
def demo(
    db_backend: str, db_url: str, request: pytest.FixtureRequest
) -> list[demo_service.DemoUser]:
    """The demo installation in this test's database; returns its users (with tokens).

    Usually the database was made holding it (``sqlite_url``, ``postgres_url``); a test
    that asked for ``demo`` only after its database was made gets the demo's rows added."""
    if db_backend == "sqlite":
        template, users = request.getfixturevalue("sqlite_demo_template")
        if request.node.stash.get(_DEMO_IN, None) != db_url:
            _load_sqlite(template, db_url)
        return list(users)
    users = request.getfixturevalue("postgres_demo_template")
    if request.node.stash.get(_DEMO_IN, None) != db_url:
        _load_postgres(db_url)
    return list(users)


# ------------------------------------------------------------------- in-process API
Api = Callable[[str | None], TestClient]


def _in_process(ctx: ServiceContext, *, raise_errors: bool) -> Iterator[Api]:
    app = create_app(
        ctx=ServiceContext(
            ctx.db,
            settings=ctx.settings.model_copy(update={"run_scheduler": False}),
            clock=ctx.clock,
            cache=ctx.cache,
        )
    )
    clients: list[TestClient] = []

    def client(token: str | None) -> TestClient:
        made = TestClient(
            app, base_url="http://testserver/api/v1", raise_server_exceptions=raise_errors
        )
        if token is not None:
            made.headers["Authorization"] = f"Bearer {token}"
        made.__enter__()
        clients.append(made)
        return made

    try:
        yield client
    finally:
        for made in clients:
            made.__exit__(None, None, None)


@pytest.fixture
def api(ctx: ServiceContext) -> Iterator[Api]:
    """In-process HTTP clients of the app over ``ctx`` (no scheduler loop, no server).

    ``api(token)`` is a client sending that bearer token (``api(None)``: none). The app's
    lifespan runs once for the test; every client shares it. A server error is raised."""
    yield from _in_process(ctx, raise_errors=True)


@pytest.fixture
def raw_api(ctx: ServiceContext) -> Iterator[Api]:
    """Like ``api``, but a server error comes back as its HTTP response (status 500)."""
    yield from _in_process(ctx, raise_errors=False)
