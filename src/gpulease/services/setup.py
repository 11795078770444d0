"""Opening an installation: its service context, its schema, the scheduler's heartbeat.

The API, the CLI and the scheduler process start here, so none of them touches persistence
directly: ``open_context`` builds the context from settings, ``initialise`` creates or
upgrades the schema (Alembic) and optionally the demo, ``check_schema`` refuses to serve a
database whose schema is not current, and ``scheduler_status`` reads the leader's heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from gpulease.domain.errors import Conflict, DomainError
from gpulease.executors.base import Executor
from gpulease.executors.local import LocalExecutor
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.persistence.tables import SchedulerStatus
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser, create_demo
from gpulease.settings import Settings


class NotInitialised(DomainError):
    code = "not_initialised"


def open_context(settings: Settings) -> ServiceContext:
    return ServiceContext(Database(settings.database_url), settings)


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "local":
        return LocalExecutor(
            job_user=settings.job_user,
            data_dir=settings.data_dir,
            max_log_bytes=settings.max_log_bytes,
            private_files=_sqlite_files(settings.database_url),
        )
    return SimulatedExecutor()


def _sqlite_files(database_url: str) -> list[Path]:
    """The SQLite database file of ``database_url`` (none for PostgreSQL or in memory): the
    local executor makes it owner-only, out of its jobs' reach."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return []
    return [Path(str(url.database))]


def check_schema(ctx: ServiceContext) -> None:
    db = ctx.db
    current, head = migrate.current_revision(db), migrate.head_revision()
    if current != head:
        raise NotInitialised(
            f"the database at {db.engine.url.render_as_string(hide_password=True)} is at schema "
            f"{current or 'none'}, not {head}; run `gpulease init` first"
        )


@dataclass(frozen=True, slots=True)
class Initialised:
    revision: str | None
    users: list[DemoUser]


def initialise(
    settings: Settings, *, reset: bool = False, demo: bool = False, lists: Path | None = None
) -> Initialised:
    """Create or upgrade the schema; with ``demo``, create the reference case."""
    ctx = open_context(settings)
    try:
        if reset:
            migrate.downgrade(ctx.db, "base")
        migrate.upgrade(ctx.db)
        users: list[DemoUser] = []
        if demo:
            try:
                users = create_demo(ctx, lists_dir=lists)
            except Conflict:
                raise Conflict(
                    "this database already has users; use --reset to recreate the demo"
                ) from None
        return Initialised(migrate.current_revision(ctx.db), users)
    finally:
        ctx.db.dispose()


def scheduler_status(ctx: ServiceContext) -> list[SchedulerStatus]:
    """Which process leads each site's scheduler, and when it last decided."""
    with ctx.db.transaction(write=False) as tx:
        return tx.all(tx.select(SchedulerStatus).order_by(SchedulerStatus.site_id))
