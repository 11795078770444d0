"""Commands that run on the server machine: ``gpulease init``, ``gpulease serve`` (the API)
and ``gpulease scheduler`` (the scheduler loop, in its own process by default, so passes and
requests do not compete for one interpreter; ``serve --scheduler`` runs both in one).

Heavy imports (SQLAlchemy, Alembic, FastAPI) happen inside the commands, so the client
commands start fast.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

# How uvicorn serves the API: libuv's event loop and the llhttp parser (uvloop, httptools:
# pinned dependencies) take less CPU per request than asyncio's loop and h11 (about 7 % of
# a job submission's, measured with both servers up, docs/benchmarks.md). The access log
# (a line per request on the terminal) is on unless `--no-access-log`.
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "httptools",
    "proxy_headers": False,
}


def init_command(
    demo: Annotated[bool, typer.Option(help="Create the Jakarta demo site and tenants.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the tokens as JSON.")] = False,
    reset: Annotated[bool, typer.Option(help="Drop every table first (all data is lost).")] = False,
    lists: Annotated[
        Path | None,
        typer.Option(help="With --demo: first import the screening lists of this folder."),
    ] = None,
) -> None:
    """Create or upgrade the database schema; with --demo, create the reference case."""
    from gpulease.services.setup import initialise
    from gpulease.settings import Settings

    done = initialise(Settings(), reset=reset, demo=demo, lists=lists)
    users = done.users
    if not demo:
        if not json_out:
            console.print(f"schema at {done.revision}")
        return
    if json_out:
        print(json.dumps([asdict(u) for u in users], indent=2))
        return
    table = Table(title="Demo site jkt1: 32 GB200 NVL72 racks, 2,304 GPUs", title_justify="left")
    for column in ("user", "role", "tenant"):
        table.add_column(column)
    for user in users:
        table.add_row(user.email, user.role, user.tenant or "(operator)")
    console.print(table)
    # Plain lines, never wrapped or cut: a token is shown once and must be copied whole.
    print("Tokens (shown once; `gpulease login --token TOKEN --url http://127.0.0.1:PORT`):")
    for user in users:
        print(f"  {user.email:<30} {user.token}")


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    scheduler: Annotated[
        bool,
        typer.Option(
            help="Also run the scheduler loop in this process (leader election decides). "
            "By default it runs apart: `gpulease scheduler`, or `make run` for both."
        ),
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="API processes (stateless; one scheduler leads).")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Print a line per request on the terminal.")
    ] = True,
) -> None:
    """Serve the REST API until interrupted (the scheduler runs in its own process)."""
    import uvicorn

    from gpulease.activity import uvicorn_log_config
    from gpulease.api.app import create_app
    from gpulease.services.setup import check_schema, open_context
    from gpulease.settings import Settings

    # Worker processes build their app from the environment, so the choice travels there.
    os.environ["GPULEASE_RUN_SCHEDULER"] = "true" if scheduler else "false"
    settings = Settings()
    ctx = open_context(settings)
    try:
        check_schema(ctx)
    finally:
        ctx.db.dispose()
    console.print(
        f"gpulease serving on http://{host}:{port} (API docs at /api/v1/docs), "
        f"executor {settings.executor}, scheduler "
        f"{'in this process' if scheduler else 'apart (`gpulease scheduler`)'}, "
        f"{workers} worker{'s' if workers > 1 else ''}, "
        + (
            f"X-Forwarded-For believed from {', '.join(settings.trusted_proxies)} only"
            if settings.trusted_proxies
            else "no trusted proxies (the peer's address is the client's)"
        )
    )
    # uvicorn would believe X-Forwarded-For from 127.0.0.1 by default: off. The app installs
    # the same middleware for GPULEASE_TRUSTED_PROXIES alone (api.app), so nothing else may
    # set the client address.
    options = dict(SERVER_OPTIONS, host=host, port=port)
    # A line per request (and per busy pass of a scheduler loop in this process) unless
    # turned off: about 0.1 ms of CPU per request at high submission rates.
    log_config = uvicorn_log_config(fmt=settings.log_format, access=access_log)
    options.update(log_config=log_config, access_log=access_log)
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:
        uvicorn.run("gpulease.api.app:create_app", factory=True, workers=workers, **options)


def scheduler_command() -> None:
    """Run only the scheduler loop (no API) until interrupted; leader election decides."""
    import signal

    from gpulease.activity import configure
    from gpulease.services.scheduler_loop import SchedulerLoop
    from gpulease.services.scheduling import LiveScheduler
    from gpulease.services.setup import (
        SCHEDULER_CONNECTIONS,
        check_schema,
        make_executor,
        open_context,
    )
    from gpulease.settings import Settings

    settings = Settings()
    configure(fmt=settings.log_format)  # a line per pass that did something (json: per decision)
    ctx = open_context(settings, threads=SCHEDULER_CONNECTIONS)
    check_schema(ctx)
    loop = SchedulerLoop(LiveScheduler(ctx, make_executor(settings)))
    # INT and TERM are blocked, in this thread and in every thread started after, and the
    # main thread waits for the first with sigwait. No Python handler: one that sets an
    # Event deadlocks when a second signal lands while the first wakes the waiter (the
    # Event's lock is then held by the very thread the handler interrupts).
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    for sig in stop_signals:  # a shell starts background jobs with INT ignored
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    console.print(
        f"gpulease scheduler: executor {settings.executor}, a pass every "
        f"{settings.scheduler_interval_s:g} s while this process leads (Ctrl-C stops)"
    )
    served = None
    if settings.scheduler_metrics_port is not None:  # its pass and step figures (operations.md)
        from gpulease.services.metrics import MetricsServer

        host, port = settings.scheduler_metrics_host, settings.scheduler_metrics_port
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        served = MetricsServer(host, port, token)
        console.print(f"scheduler metrics on http://{host}:{port}/metrics (scrape token)")
    loop.start()
    signal.sigwait(stop_signals)
    loop.stop()
    if served is not None:
        served.stop()
    ctx.db.dispose()
