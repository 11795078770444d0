"""The FastAPI application: routes under ``/api/v1``, errors mapped in one place.

``create_app`` builds the service context from settings (or takes one, in tests) with a pool
of as many connections as the process has request threads (``Settings.api_threads``, the
size of the thread pool sync routes run in). The scheduler runs in its own process by
default (``gpulease scheduler``); when ``run_scheduler`` is set, the app runs the loop in a
thread for its lifetime instead. The loop decides only while its process holds the leader
lease, so any number of API processes can share one PostgreSQL, and ``/health`` reports
the scheduler's state from the database wherever it runs. Every request body passes
:class:`~gpulease.api.limits.BodyLimits` (size cap, JSON depth) before a route, a dependency
or a parser sees it. On PostgreSQL, job submissions also have a few connections of their
own on the event loop (``app.state.submissions``, ``persistence.submission``; closed with
the app's lifespan).

Client address. ``request.client`` is the TCP peer, unless the peer is one of the configured
``trusted_proxies``: then uvicorn's ``ProxyHeadersMiddleware`` (installed here, not by the
server, so the in-process app and the served one agree) takes the client from
``X-Forwarded-For``. The address feeds the authentication limit and the customer
identification record of accesses; nothing else may set it. Rate limits live in
``app.state.limits``, one set per app (per process).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import gpulease
from gpulease.api import docs, errors, metrics
from gpulease.api.limits import BodyLimits
from gpulease.api.ratelimit import ApiLimits
from gpulease.api.routes import (
    admin,
    billing,
    compliance,
    compute_reviews,
    custody,
    jobs,
    leases,
    ledger,
    nodes,
    purpose_reviews,
    reports,
    screening,
    system,
)
from gpulease.persistence import submission
from gpulease.services.context import ServiceContext
from gpulease.services.scheduler_loop import SchedulerLoop
from gpulease.services.scheduling import LiveScheduler
from gpulease.services.setup import api_threads, make_executor, open_context
from gpulease.settings import Settings
from gpulease.web import app as web

OPENAPI_URL = "/api/v1/openapi.json"
UPLOAD_PATHS = ("/api/v1/lists",)  # multipart uploads: capped at max_upload_bytes
# Connections of the event loop's pool for job submissions: each holds one for two short
# statements, so a few keep up with many concurrent requests on one interpreter.
SUBMISSION_CONNECTIONS = 4
TAGS: tuple[str, ...] = ("system", "leases", "jobs", "nodes", "administration", "compliance")
TAGS += ("reports", "custody")


def create_app(settings: Settings | None = None, ctx: ServiceContext | None = None) -> FastAPI:
    settings = settings or (ctx.settings if ctx else Settings())
    if ctx is None:
        ctx = open_context(settings, threads=api_threads(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # requests run in this many threads at once; the pool holds as many connections
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
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
            if app.state.submissions is not None:
                await app.state.submissions.close()
            ctx.db.dispose()

    app = FastAPI(
        title="gpulease",
        version=gpulease.__version__,
        summary="Rent and schedule rack-scale GPU compute (GB200 NVL72) with leases.",
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by ``docs`` from packaged files: the default needs a CDN
        redoc_url=None,
        # the documentation's order of sections (the submission's route is matched first)
        openapi_tags=[{"name": tag} for tag in TAGS],
    )
    app.state.ctx = ctx
    app.state.loop = None
    app.state.limits = ApiLimits.from_settings(settings, ctx.clock)
    # a job submission's statements on the event loop (PostgreSQL; routes.jobs)
    app.state.submissions = submission.for_url(ctx.db.url, SUBMISSION_CONNECTIONS)
    if settings.trusted_proxies:
        # X-Forwarded-For/-Proto are believed from these peers only; the server itself
        # (cli.server) never rewrites the client, so the app behaves alike in-process
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    errors.install(app)
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.max_request_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_depth=settings.max_json_depth,
        upload_paths=UPLOAD_PATHS,
    )
    metrics.install(app, settings)  # outermost: times, logs and ids every request; /metrics
    docs.install(app, openapi_url=OPENAPI_URL)
    app.include_router(jobs.submissions, prefix="/api/v1")  # first: the most frequent route
    for module in (
        system,
        leases,
        jobs,
        nodes,
        admin,
        compliance,
        purpose_reviews,
        compute_reviews,
        screening,
        reports,
        custody,
        ledger,
        billing,
    ):
        app.include_router(module.router, prefix="/api/v1")
    web.install(app)  # the dashboard: /ui (same principals and services; not in OpenAPI)
    return app
