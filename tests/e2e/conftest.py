"""End-to-end fixtures: a real ``gpulease serve`` (uvicorn) in a subprocess, over HTTP.

``demo_server`` is one server per test module and backend (SQLite file, or a PostgreSQL
database of the module's own) holding the demo made by ``gpulease init --demo --json``
exactly as a newcomer would, with the simulated executor and a fast scheduler pass (0.2 s).
``start_server`` starts more servers on a database (leader failover, local executor).

The demo is made once per session and backend (``demo_template``: ``gpulease init`` into
a template database) and each module gets a copy: the SQLite file copied, or a PostgreSQL
``CREATE DATABASE ... TEMPLATE``. The copy has the same users and tokens.

Backends: the modules in :data:`SQLITE_ONLY` test what does not depend on the database
(the CLI, the proxy-header rule, the local executor, the docs page), so their PostgreSQL
runs are deselected; the database's behaviour on both backends is tested in-process
(tests/api, tests/services) and through processes by test_api_e2e and test_failover_e2e.
The modules in :data:`POSTGRESQL_ONLY` (several API servers on one database) run on
PostgreSQL alone.

Every test in this folder is marked ``e2e`` and ``slow``: ``make test-fast`` (``-m "not
slow"``) leaves them out, ``make test`` runs them.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from e2e_support import E2E_KEY_DIR, Server, init_demo, run_cli, start
from psycopg import sql

HERE = Path(__file__).resolve().parent
SQLITE_ONLY = {
    "test_cli_e2e.py",
    "test_admin_cli_e2e.py",
    "test_compliance_e2e.py",
    "test_limits_e2e.py",
    "test_local_executor_e2e.py",
}
# several servers on one database server
POSTGRESQL_ONLY = {"test_scale_out_e2e.py", "test_scale_out_slurm_e2e.py"}


@pytest.hookimpl(tryfirst=True)  # marked before ``-m`` selects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
            if (item.path.name in SQLITE_ONLY and "[postgresql" in item.nodeid) or (
                item.path.name in POSTGRESQL_ONLY and "[sqlite" in item.nodeid
            ):
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _pg_url(conninfo: str, name: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    return (
        f"postgresql+psycopg://{params.get('user', 'postgres')}@"
        f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{name}"
    )


def _drop(conninfo: str, name: str) -> None:
    with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _run_owner() -> int:
    """The pid of the process that runs this test session: the xdist controller (every
    worker's parent) under ``-n``, this process otherwise."""
    return os.getppid() if "PYTEST_XDIST_WORKER" in os.environ else os.getpid()


# dropped at the end by the process that runs the session (tests/conftest.py)
TEMPLATE_DB = "gpulease_test_{owner}_e2e_template"


@pytest.fixture(scope="session")
def demo_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[str, dict[str, str]]]:
    """``demo_template(backend)``: (the template's path or database name, the tokens), the
    demo made by ``gpulease init --demo`` the first time a backend is asked for in this
    run: one template per backend for every xdist worker (the first worker to ask makes it
    under a file lock in the run's shared temporary folder; the others read it, and copy the
    ledger signing key `init` made into their own key folder, ``E2E_KEY_DIR``). The
    PostgreSQL template (:data:`TEMPLATE_DB`) is dropped when the run ends or, if the run
    was killed, by the next run (both in tests/conftest.py: ``gpulease_test_<pid>_*``)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    made: dict[str, tuple[str, dict[str, str]]] = {}

    def template(backend: str) -> tuple[str, dict[str, str]]:
        if backend in made:
            return made[backend]
        server = str(request.getfixturevalue("postgres_server")) if backend != "sqlite" else ""
        folder = shared / f"e2e-template-{backend}"
        folder.mkdir(exist_ok=True)
        answer = folder / "made.json"
        keys = folder / "keys"  # the ledger signing key `init` made, for every worker's servers
        with open(folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one worker makes it, the others wait for it
            if not answer.exists():
                had = set(E2E_KEY_DIR.iterdir())
                if backend == "sqlite":
                    where = str(folder / "gpulease.db")
                    tokens = init_demo(f"sqlite:///{where}", folder)
                else:
                    where = TEMPLATE_DB.format(owner=_run_owner())
                    _drop(server, where)  # a template left by a killed run of this pid
                    with psycopg.connect(server, dbname="postgres", autocommit=True) as conn:
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(where)))
                    tokens = init_demo(_pg_url(server, where), folder)
                keys.mkdir(exist_ok=True)
                for made_key in set(E2E_KEY_DIR.iterdir()) - had:
                    shutil.copy2(made_key, keys / made_key.name)
                answer.write_text(json.dumps([where, tokens]))
        for key in keys.iterdir():
            if not (E2E_KEY_DIR / key.name).exists():
                shutil.copy2(key, E2E_KEY_DIR / key.name)
        where, tokens = json.loads(answer.read_text())
        made[backend] = (where, tokens)
        return made[backend]

    return template


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def e2e_db_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    demo_template: Callable[[str], tuple[str, dict[str, str]]],
) -> Iterator[str]:
    """A database of this module's own on each backend holding the demo (dropped after)."""
    if request.param == "sqlite":
        source, _tokens = demo_template("sqlite")
        path = tmp_path_factory.mktemp("e2e") / "gpulease.db"
        for suffix in ("", "-wal", "-shm"):  # a WAL left by the init, if any
            if Path(source + suffix).exists():
                shutil.copyfile(source + suffix, str(path) + suffix)
        yield f"sqlite:///{path}"
        return
    conninfo = str(request.getfixturevalue("postgres_server"))
    template, _tokens = demo_template("postgresql")
    name = f"gpulease_e2e_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    try:
        yield _pg_url(conninfo, name)
    finally:
        _drop(conninfo, name)


@pytest.fixture(scope="module")
def e2e_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-data")


@pytest.fixture(scope="module")
def demo_tokens(
    e2e_db_url: str, demo_template: Callable[[str], tuple[str, dict[str, str]]]
) -> dict[str, str]:
    """The demo users' tokens by short name (the module's copy has the template's)."""
    return demo_template("sqlite" if e2e_db_url.startswith("sqlite") else "postgresql")[1]


@pytest.fixture(scope="module")
def demo_server(
    e2e_db_url: str, e2e_data_dir: Path, demo_tokens: dict[str, str]
) -> Iterator[Server]:
    server = start(e2e_db_url, e2e_data_dir, demo_tokens)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def start_server(
    e2e_db_url: str, e2e_data_dir: Path, demo_tokens: dict[str, str]
) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(*args: str, **extra: str) -> Server:
        server = start(e2e_db_url, e2e_data_dir, demo_tokens, *args, **extra)
        started.append(server)
        return server

    yield make
    for server in started:
        server.kill()


@pytest.fixture
def cli(demo_server: Server, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The real CLI in a subprocess, logged in nowhere yet (its own config file), wide."""
    env = dict(os.environ, GPULEASE_CONFIG=str(tmp_path / "config.json"), COLUMNS="250")
    env.pop("GPULEASE_TOKEN", None)
    env.pop("GPULEASE_URL", None)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(env, *args, check=check)

    return run
