"""End-to-end fixtures: a real ``gpulease serve`` (uvicorn) in a subprocess, over HTTP.

``demo_server`` is one server per test module and backend (SQLite file, or a PostgreSQL
database of the module's own), initialised with ``gpulease init --demo --json`` exactly as
a newcomer would, with the simulated executor and a fast scheduler pass (0.2 s).
``start_server`` starts more servers on a database (leader failover, local executor).

Every test in this folder is marked ``e2e`` and ``slow``: ``make test-fast`` (``-m "not
slow"``) leaves them out, ``make test`` runs them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from e2e_support import Server, init_demo, start
from psycopg import sql

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def e2e_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of this module's own on each backend (created empty, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'gpulease.db'}"
        return
    conninfo = str(request.getfixturevalue("postgres_server"))
    name = f"gpulease_e2e_{os.getpid()}_{secrets.token_hex(4)}"
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield (
            f"postgresql+psycopg://{params.get('user', 'postgres')}@"
            f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{name}"
        )
    finally:
        with psycopg.connect(conninfo, dbname="postgres", autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def e2e_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-data")


@pytest.fixture(scope="module")
def demo_tokens(e2e_db_url: str, e2e_data_dir: Path) -> dict[str, str]:
    return init_demo(e2e_db_url, e2e_data_dir)


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
