"""Helpers of the dashboard's tests (their fixtures are in ``conftest.py`` beside this)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from gpulease.domain.access import Role
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.services import identity, jobs, ledger
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.scheduling import LiveScheduler
from gpulease.web.session import SESSION_COOKIE, csrf_token

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "out" / "screenshots"
CHROMIUM = os.environ.get("GPULEASE_TEST_CHROMIUM", "/usr/bin/chromium")
HOST = "http://testserver"
Ui = Callable[[str | None], TestClient]  # the ``ui`` fixture: a client with a session
VIEWPORT = {"width": 1280, "height": 900}  # a laptop
DEMO_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # tests/conftest.py's START: the demo's
SHORT = {
    "operator-admin": "operator",
    "compliance-officer": "compliance",
    "INF Tech": "inftech",
    "Bank Nusantara Digital": "bank",
    "Universitas Teknologi Jakarta": "university",
}


def short_tokens(users: list[DemoUser]) -> dict[str, str]:
    return {SHORT[u.tenant or u.role]: u.token for u in users}


def session_client(app: Any, token: str | None, base: str = HOST) -> TestClient:
    """A client of ``app`` with ``token`` in its session cookie (and its CSRF token)."""
    client = TestClient(app, base_url=base, follow_redirects=False)
    client.headers["Origin"] = base
    if token is not None:
        # a host without a dot is "<host>.local" to the cookie jar (RFC 2965)
        client.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/ui")
        client.csrf = csrf_token(token)  # type: ignore[attr-defined]
    return client


def add_member(ctx: ServiceContext, users: list[DemoUser]) -> str:
    """A tenant-member of the university; its token."""
    admin = identity.authenticate(ctx, short_tokens(users)["university"])
    _user, token = identity.create_user(
        ctx,
        admin,
        name="University member",
        email="member@university.example",
        role=Role.TENANT_MEMBER,
        tenant_id=admin.tenant_id,
    )
    return token


def busy_demo(ctx: ServiceContext, users: list[DemoUser]) -> dict[str, list[str]]:
    """Jobs of each tenant, placed by one scheduler pass (simulated executor), and a job
    that waits (more GPUs than its tenant may borrow); the job ids by tenant short name."""
    tokens = short_tokens(users)
    made: dict[str, list[str]] = {}
    shapes = {
        "inftech": [
            (144, "health-research: medical imaging"),
            (72, "financial-services-ai: fraud"),
        ],
        "bank": [
            (64, "financial-services-ai: credit risk"),
            (8, "financial-services-ai: fraud models"),
        ],
        "university": [(16, "scientific-computing: climate model")],
    }
    for who, asks in shapes.items():
        principal = identity.authenticate(ctx, tokens[who])
        for gpus, purpose in asks:
            job = jobs.submit(
                ctx,
                principal,
                jobs.JobSubmission(gpus=gpus, purpose=purpose, command="true", duration_s=86_400),
            )
            made.setdefault(who, []).append(job.id)
    LiveScheduler(ctx, SimulatedExecutor(), name="ui-test").tick()
    big = identity.authenticate(ctx, tokens["university"])
    waiting = jobs.submit(
        ctx,
        big,
        jobs.JobSubmission(gpus=2304, purpose="scientific-computing: big run", command="true"),
    )
    made["university"].append(waiting.id)
    LiveScheduler(ctx, SimulatedExecutor(), name="ui-test").tick()
    return made


def sign_ledger(ctx: ServiceContext) -> None:
    ledger.ensure_key(ctx)
    ledger.sign_head(ctx)


@dataclass
class LiveSite:
    url: str
    ctx: ServiceContext
    tokens: dict[str, str]
    jobs: dict[str, list[str]] = field(default_factory=dict)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def chromium_path() -> str:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-chromium.sh (as root)")
    return found


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Visit:
    """A logged-in page and what went wrong while it was open."""

    def __init__(self, browser: Any, site: LiveSite, who: str, *, dark: bool = False) -> None:
        self.site = site
        self.context = browser.new_context(
            viewport=VIEWPORT, color_scheme="dark" if dark else "light"
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.page.route("**/*", self._guard)
        self.page.goto(site.url + "/ui/login")
        self.page.fill("#token", site.tokens[who])
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/ui/fleet")

    def _console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def _guard(self, route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https") and parts.hostname != "127.0.0.1":
            self.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def go(self, path: str) -> Any:
        self.page.goto(self.site.url + path)
        return self.page

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], "the page loads from outside the machine"
