"""Fixtures for the dashboard's tests: in-process clients with a session, and a served demo
for the browser.

In-process (fast, on SQLite and PostgreSQL through the root conftest's ``ctx``/``demo``):

* ``ui(token)``: a TestClient of the real app (no server, no scheduler loop) whose session
  cookie holds ``token`` (``ui(None)``: no session) and which sends this host's ``Origin``
  on every request (a browser does on a POST); ``client.csrf`` is the session's CSRF token;
* ``viewers``: a ``ui`` client per demo user by short name (``operator``, ``compliance``,
  ``inftech``, ``bank``, ``university``) and ``member`` (a tenant-member of the university).

In a real browser (one module at a time, SQLite only; see ``test_browser.py``):

* ``live_site`` (module scope): the demo copied from the session's SQLite template, a few
  jobs placed by one scheduler pass (``busy_demo``), a signed ledger head, served by
  uvicorn in a thread on a free port of 127.0.0.1; stopped at the end of the module;
* ``browser`` (module scope): headless Chromium (Debian's, ``/usr/bin/chromium`` or
  ``GPULEASE_TEST_CHROMIUM``) through Playwright's sync API; skipped with the reason when
  either is missing;
* ``visit(who, dark=False)``: a new browser context (1280 x 900) logged in through the form
  as that demo user (``web_support.Visit``: ``.page``, ``.go(path)``, ``.problems`` (console
  errors, CSP violations), requests outside 127.0.0.1 refused and asserted at the end);
* ``web_support.screenshot(page, name)`` saves ``out/screenshots/<name>.png`` (gitignored).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from web_support import (
    DEMO_START,
    LiveSite,
    Ui,
    Visit,
    add_member,
    busy_demo,
    chromium_path,
    free_socket,
    session_client,
    short_tokens,
    sign_ledger,
)

from gpulease.api.app import create_app
from gpulease.domain.clock import ManualClock
from gpulease.persistence.db import Database
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.ledger_sequencer import Sequencer
from gpulease.settings import Settings


@pytest.fixture
def ui(ctx: ServiceContext) -> Iterator[Ui]:
    app = create_app(
        ctx=ServiceContext(
            ctx.db,
            settings=ctx.settings.model_copy(update={"run_scheduler": False}),
            clock=ctx.clock,
            cache=ctx.cache,
        )
    )
    made: list[TestClient] = []

    def client(token: str | None) -> TestClient:
        c = session_client(app, token)
        c.__enter__()
        made.append(c)
        return c

    try:
        yield client
    finally:
        for c in made:
            c.__exit__(None, None, None)


@pytest.fixture
def viewers(ui: Ui, ctx: ServiceContext, demo: list[DemoUser]) -> dict[str, TestClient]:
    tokens = short_tokens(demo) | {"member": add_member(ctx, demo)}
    return {name: ui(token) for name, token in tokens.items()}


@pytest.fixture(scope="module")
def live_site(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_demo_template: tuple[Path, list[DemoUser]],
) -> Iterator[LiveSite]:
    template, users = sqlite_demo_template
    root = tmp_path_factory.mktemp("ui-site")
    path = root / "demo.db"
    shutil.copyfile(template, path)
    db = Database(f"sqlite:///{path}")
    url = f"sqlite:///{path}"
    settings = Settings(
        database_url=url, data_dir=root / "var", token_ttl_days=3650, ui_refresh_s=5
    )
    ctx = ServiceContext(db, settings=settings, clock=ManualClock(DEMO_START))
    site = LiveSite("", ctx, short_tokens(users))
    site.tokens["member"] = add_member(ctx, users)
    site.jobs = busy_demo(ctx, users)
    sign_ledger(ctx)
    app = create_app(ctx=ctx)
    # the scheduler process sequences the ledger in production; this site has none, so the
    # records its pages write (logins) would wait past the merge delay and verify as late
    sequencer = Sequencer(ctx)
    sequencer.start()
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the dashboard's server did not start")
        time.sleep(0.02)
    site.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield site
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sequencer.stop()
        sock.close()
        db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
    )
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def visit(browser: Any, live_site: LiveSite) -> Iterator[Callable[..., Visit]]:
    opened: list[Visit] = []

    def open_as(who: str, *, dark: bool = False) -> Visit:
        made = Visit(browser, live_site, who, dark=dark)
        opened.append(made)
        return made

    yield open_as
    for made in opened:
        made.close()
