"""The connection pool is sized to the threads of the process that opens it."""

from __future__ import annotations

from pathlib import Path

from gpulease.api.app import create_app
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
