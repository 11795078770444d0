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
from gpulease.api import docs, errors
from gpulease.api.routes import admin, compliance, jobs, leases, nodes, reports, system
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler, SchedulerLoop
from gpulease.services.setup import make_executor, open_context
from gpulease.settings import Settings

OPENAPI_URL = "/api/v1/openapi.json"


def create_app(settings: Settings | None = None, ctx: ServiceContext | None = None) -> FastAPI:
    settings = settings or (ctx.settings if ctx else Settings())
    if ctx is None:
        ctx = open_context(settings)

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
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by ``docs`` from packaged files: the default needs a CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.loop = None
    errors.install(app)
    docs.install(app, openapi_url=OPENAPI_URL)
    for module in (system, leases, jobs, nodes, admin, compliance, reports):
        app.include_router(module.router, prefix="/api/v1")
    return app
