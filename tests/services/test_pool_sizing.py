"""The connection pool is sized to the threads of the process that opens it, and pings a
connection only when it has lain idle."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from gpulease.api.app import create_app
from gpulease.persistence.db import Database, DatabaseUnavailable
from gpulease.services.setup import SCHEDULER_CONNECTIONS, api_threads, open_context
from gpulease.settings import Settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'pool.db'}", **values)  # type: ignore[arg-type]


def test_an_api_process_keeps_a_connection_per_request_thread(tmp_path: Path) -> None:
    settings = _settings(tmp_path, api_threads=12)
    assert api_threads(settings) == 12
    app = create_app(settings)
    db = app.state.ctx.db
    try:
        assert db.engine.pool.size() == 12
        assert db.max_overflow == settings.db_max_overflow
    finally:
        db.dispose()


def test_the_scheduler_loop_in_the_api_process_gets_its_connections_too(tmp_path: Path) -> None:
    settings = _settings(tmp_path, api_threads=12, run_scheduler=True)
    assert api_threads(settings) == 12 + SCHEDULER_CONNECTIONS


def test_a_scheduler_process_keeps_a_few(tmp_path: Path) -> None:
    ctx = open_context(_settings(tmp_path), threads=SCHEDULER_CONNECTIONS)
    try:
        assert ctx.db.engine.pool.size() == SCHEDULER_CONNECTIONS
    finally:
        ctx.db.dispose()


def test_the_operator_setting_wins(tmp_path: Path) -> None:
    ctx = open_context(_settings(tmp_path, db_pool_size=50, db_max_overflow=0), threads=4)
    try:
        assert ctx.db.engine.pool.size() == 50
        assert ctx.db.max_overflow == 0
    finally:
        ctx.db.dispose()


def test_the_api_no_longer_runs_the_scheduler_unless_asked() -> None:
    assert Settings.model_fields["run_scheduler"].default is False


def _backend(db: Database) -> int:
    """A transaction on the pool's one connection: the server process serving it."""
    with db.transaction(write=False) as tx:
        return int(tx.session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _drop(admin_conninfo: str, pid: int) -> None:
    """The server drops the connection (as a restart or an idle timeout would)."""
    with psycopg.connect(admin_conninfo, dbname="postgres", autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_connection_dropped_while_idle_is_replaced_before_use(
    postgres_server: str, postgres_url: str
) -> None:
    db = Database(postgres_url, pool_size=1, max_overflow=0, ping_idle_s=0.05)
    try:
        first = _backend(db)
        _drop(postgres_server, first)
        time.sleep(0.1)  # idle past ping_idle_s: checked out, pinged, found dead, replaced
        assert _backend(db) != first
    finally:
        db.dispose()


def test_a_connection_in_constant_use_is_not_pinged(
    postgres_server: str, postgres_url: str
) -> None:
    """The trade: no round trip per checkout; a connection dropped within ``ping_idle_s``
    of its last use fails one transaction, and the pool is renewed for the next."""
    db = Database(postgres_url, pool_size=1, max_overflow=0, ping_idle_s=3600)
    try:
        _drop(postgres_server, _backend(db))
        with pytest.raises(DatabaseUnavailable):
            _backend(db)
        _backend(db)
    finally:
        db.dispose()
