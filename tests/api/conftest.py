"""Fixtures for the API tests: in-process clients of the demo's users by short name.

``as_user("operator" | "compliance" | "inftech" | "bank" | "university")`` is an
in-process client (the ``api`` fixture: the real app over this test's database, no server,
no scheduler loop) sending that demo user's token; the same client is returned each time.
Tests that need a scheduler pass run one by hand (the ``scheduler`` fixture's ``tick``),
moving the test's ``clock`` for the simulated executor's runs to end.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gpulease.services.demo import DemoUser

SHORT = {
    "operator-admin": "operator",
    "compliance-officer": "compliance",
    "INF Tech": "inftech",
    "Bank Nusantara Digital": "bank",
    "Universitas Teknologi Jakarta": "university",
}

AsUser = Callable[[str], TestClient]


@pytest.fixture
def tokens(demo: list[DemoUser]) -> dict[str, str]:
    """The demo users' tokens by short name."""
    return {SHORT[u.tenant or u.role]: u.token for u in demo}


@pytest.fixture
def as_user(api: Callable[[str | None], TestClient], tokens: dict[str, str]) -> AsUser:
    made: dict[str, TestClient] = {}

    def client(who: str) -> TestClient:
        if who not in made:
            made[who] = api(tokens[who])
        return made[who]

    return client
