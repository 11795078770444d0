"""The FastAPI application: routes under ``/api/v1``, errors mapped in one place.

``create_app`` builds the service context from settings (or takes one, in tests) and, when
``run_scheduler`` is set, runs the scheduler loop in a thread for the app's lifetime; the
loop decides only while this process holds the leader lock, so any number of API processes
can share one PostgreSQL. Every request body passes :class:`~gpulease.api.limits.BodyLimits`
(size cap, JSON depth) before a route, a dependency or a parser sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import gpulease
from gpulease.api import docs, errors
from gpulease.api.limits import BodyLimits
from gpulease.api.routes import admin, compliance, jobs, leases, nodes, reports, system
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler, SchedulerLoop
from gpulease.services.setup import make_executor, open_context
from gpulease.settings import Settings

OPENAPI_URL = "/api/v1/openapi.json"
UPLOAD_PATHS = ("/api/v1/lists",)  # multipart uploads: capped at max_upload_bytes


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
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_depth=settings.max_json_depth,
        upload_paths=UPLOAD_PATHS,
    )
    docs.install(app, openapi_url=OPENAPI_URL)
    for module in (system, leases, jobs, nodes, admin, compliance, reports):
        app.include_router(module.router, prefix="/api/v1")
    return app
