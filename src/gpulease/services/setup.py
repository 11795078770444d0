"""Opening an installation: its service context, its schema, the scheduler's heartbeat.

The API, the CLI and the scheduler process start here, so none of them touches persistence
directly: ``open_context`` builds the context from settings, ``initialise`` creates or
upgrades the schema (Alembic) and optionally the demo (screened against the shipped lists
unless a folder is given) and warns when no screening list is in force, ``check_schema``
refuses to serve a database whose schema is not current, and ``scheduler_status`` reads the
scheduler's health: the leader lease and each site's last pass, stale when older than
``stale_after_s``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gpulease import data
from gpulease.domain.errors import Conflict, DomainError
from gpulease.executors.base import Executor
from gpulease.executors.local import LocalExecutor
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.persistence import migrate
from gpulease.persistence.db import Database, sqlite_file
from gpulease.persistence.leader import current_lease
from gpulease.persistence.tables import SchedulerStatus
from gpulease.services import ledger, ledger_sequencer, screening_lists
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser, create_demo
from gpulease.settings import Settings

log = logging.getLogger("gpulease.setup")
NO_LISTS_WARNING = (
    "no screening list is in force: KYC cases are screened against no list (each case says "
    "so and waits for an officer). Import lists with `gpulease lists import PATH --format "
    "FORMAT`; dated samples ship in {shipped}."
)


class NotInitialised(DomainError):
    code = "not_initialised"


# connections the scheduler loop uses at once: its pass, the leader heartbeat, the executor's
# callbacks, one spare
SCHEDULER_CONNECTIONS = 4
TOOL_CONNECTIONS = 2  # a command-line tool (init, reports) does one thing at a time


def open_context(settings: Settings, *, threads: int = TOOL_CONNECTIONS) -> ServiceContext:
    """The context of a process whose ``threads`` may use the database at once; the pool
    keeps that many connections (``Settings.db_pool_size`` overrides it) so a request never
    waits for a connection nor opens and closes one under load."""
    pool_size = settings.db_pool_size or max(1, threads)
    db = Database(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=settings.db_max_overflow,
        pre_ping=settings.db_pre_ping,
    )
    return ServiceContext(db, settings)


def api_threads(settings: Settings) -> int:
    """Threads of an API process that may hold a connection: its request threads, and the
    scheduler loop's when it runs there too."""
    return settings.api_threads + (SCHEDULER_CONNECTIONS if settings.run_scheduler else 0)


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "local":
        return LocalExecutor(
            job_user=settings.job_user,
            data_dir=settings.data_dir,
            max_log_bytes=settings.max_log_bytes,
            private_files=_sqlite_files(settings.database_url),
        )
    if settings.executor == "slurm":
        return SlurmExecutor(
            [
                SlurmSite(site_id, **config.model_dump())
                for site_id, config in sorted(settings.slurm_sites.items())
            ]
        )
    return SimulatedExecutor()


def _sqlite_files(database_url: str) -> list[Path]:
    """The SQLite database file of ``database_url`` (none for PostgreSQL or in memory): the
    local executor makes it owner-only, out of its jobs' reach."""
    found = sqlite_file(database_url)
    return [] if found is None else [found]


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
    lists: tuple[str, ...] = ()  # the screening lists in force ("source label")
    warnings: tuple[str, ...] = ()  # also logged (on stderr when logging is not set up)


def initialise(
    settings: Settings, *, reset: bool = False, demo: bool = False, lists: Path | None = None
) -> Initialised:
    """Create or upgrade the schema; with ``demo``, create the reference case, screened
    against the lists of the folder ``lists`` (default: the shipped ones). Warns when no
    screening list is in force afterwards: every KYC case would be screened against none."""
    ctx = open_context(settings)
    try:
        if reset:
            migrate.downgrade(ctx.db, "base")
        migrate.upgrade(ctx.db)
        ledger.ensure_key(ctx)  # the ledger's signing key: a 0600 file under the key dir
        users: list[DemoUser] = []
        if demo:
            try:
                users = create_demo(
                    ctx,
                    lists_dir=data.shipped_lists() if lists is None else lists,
                    regional_sites=True,
                )
            except Conflict:
                raise Conflict(
                    "this database already has users; use --reset to recreate the demo"
                ) from None
        ledger_sequencer.sequence(ctx)  # init's records at their positions before it returns
        in_force = tuple(screening_lists.in_force(ctx))
        warnings = () if in_force else (NO_LISTS_WARNING.format(shipped=data.shipped_lists()),)
        for warning in warnings:
            log.warning("warning: %s", warning)
        return Initialised(migrate.current_revision(ctx.db), users, in_force, warnings)
    finally:
        ctx.db.dispose()


@dataclass(frozen=True, slots=True)
class SitePasses:
    """A site's scheduler heartbeat: who made the last pass, when, and whether it is stale."""

    site_id: str
    leader: str
    last_tick_at: datetime
    ticks: int
    age_s: float
    stale: bool
    failed_passes: int  # the leader's failed passes as of its last pass here


@dataclass(frozen=True, slots=True)
class SchedulerHealth:
    sites: list[SitePasses]
    leader: str | None  # holder of the leader lease (None: nobody ever led)
    leader_expires_at: datetime | None
    leader_expired: bool

    @property
    def degraded(self) -> bool:
        return self.leader_expired or any(site.stale for site in self.sites)

    @property
    def failed_passes(self) -> int:
        """The failed passes of the process that leads (or last led), as its heartbeat
        recorded them: the counter lives in the scheduler process, not in an API one."""
        latest = max(self.sites, key=lambda site: site.last_tick_at, default=None)
        if latest is None:
            return 0
        leader = self.leader if self.leader is not None else latest.leader
        return max((s.failed_passes for s in self.sites if s.leader == leader), default=0)


def stale_after_s(settings: Settings) -> float:
    """A scheduler whose last pass is older than this is stale: a few intervals, and never
    less than the leader lease's TTL (a successor may take that long to take over)."""
    return max(3 * settings.scheduler_interval_s, settings.leader_ttl_s)


def scheduler_status(ctx: ServiceContext) -> SchedulerHealth:
    """Which process leads, until when, and each site's last pass (stale or not)."""
    now = ctx.now()
    limit = stale_after_s(ctx.settings)
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(tx.select(SchedulerStatus).order_by(SchedulerStatus.site_id))
        lease = current_lease(tx)
    sites = []
    for row in rows:
        age = max(0.0, (now - row.last_tick_at).total_seconds())
        sites.append(
            SitePasses(
                row.site_id,
                row.leader,
                row.last_tick_at,
                row.ticks,
                age,
                age > limit,
                row.failed_passes,
            )
        )
    return SchedulerHealth(
        sites=sites,
        leader=None if lease is None else lease.holder,
        leader_expires_at=None if lease is None else lease.expires_at,
        leader_expired=lease is not None and lease.expires_at <= now,
    )
