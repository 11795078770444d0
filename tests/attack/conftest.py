"""Fixtures for the attack tests: the demo's users by email, and clients that answer a 500
as a response (the ``api`` fixture re-raises server errors, which hides the status code).

Every test in this folder states something the security work promises and checks it from
the attacker's side: a tenant, a member, an SRE's scheduler, an auditor reading texts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from gpulease.api.app import create_app
from gpulease.services import demo as demo_service
from gpulease.services.context import ServiceContext

Client = Callable[[str | None], TestClient]


@pytest.fixture
def by_email(demo: list[demo_service.DemoUser]) -> dict[str, demo_service.DemoUser]:
    """The demo's users by email address (``ops@indosat.example``, ``admin@bank.example``)."""
    return {u.email: u for u in demo}


@pytest.fixture
def raw_api(ctx: ServiceContext) -> Iterator[Client]:
    """Like ``api`` but a server error comes back as its HTTP response (status 500)."""
    app = create_app(
        ctx=ServiceContext(
            ctx.db,
            settings=ctx.settings.model_copy(update={"run_scheduler": False}),
            clock=ctx.clock,
            cache=ctx.cache,
        )
    )
    clients: list[TestClient] = []

    def client(token: str | None) -> TestClient:
        made = TestClient(app, base_url="http://testserver/api/v1", raise_server_exceptions=False)
        if token is not None:
            made.headers["Authorization"] = f"Bearer {token}"
        made.__enter__()
        clients.append(made)
        return made

    try:
        yield client
    finally:
        for made in clients:
            made.__exit__(None, None, None)
