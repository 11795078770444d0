"""The FastAPI application: routes under ``/api/v1``, errors mapped in one place.

``create_app`` builds the service context from settings (or takes one, in tests) and, when
``run_scheduler`` is set, runs the scheduler loop in a thread for the app's lifetime; the
loop decides only while this process holds the leader lock, so any number of API processes
can share one PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import gpulease
from gpulease.api import errors
from gpulease.api.routes import admin, compliance, jobs, leases, nodes, reports, system
from gpulease.domain.errors import DomainError
from gpulease.executors.base import Executor
from gpulease.executors.local import LocalExecutor
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler, SchedulerLoop
from gpulease.settings import Settings


class NotInitialised(DomainError):
    code = "not_initialised"


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "local":
        return LocalExecutor()
    return SimulatedExecutor()


def check_schema(db: Database) -> None:
    current, head = migrate.current_revision(db), migrate.head_revision()
    if current != head:
        raise NotInitialised(
            f"the database at {db.engine.url.render_as_string(hide_password=True)} is at schema "
            f"{current or 'none'}, not {head}; run `gpulease init` first"
        )


def create_app(settings: Settings | None = None, ctx: ServiceContext | None = None) -> FastAPI:
    settings = settings or (ctx.settings if ctx else Settings())
    if ctx is None:
        ctx = ServiceContext(Database(settings.database_url), settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop: SchedulerLoop | None = None
        if settings.run_scheduler:
            loop = SchedulerLoop(LiveScheduler(ctx, make_executor(settings)))
            loop.start()
        app.state.loop = loop
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()
            ctx.db.dispose()

    app = FastAPI(
        title="gpulease",
        version=gpulease.__version__,
        summary="Rent and schedule rack-scale GPU compute (GB200 NVL72) with leases.",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.loop = None
    errors.install(app)
    for module in (system, leases, jobs, nodes, admin, compliance, reports):
        app.include_router(module.router, prefix="/api/v1")
    return app
