"""Fixtures for the attack tests: the demo's users by email (clients that answer a 500 as a
response are ``raw_api``, in tests/conftest.py).

Every test in this folder states something the security work promises and checks it from
the attacker's side: a tenant, a member, an SRE's scheduler, an auditor reading texts.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from gpulease.services import demo as demo_service

Client = Callable[[str | None], TestClient]


@pytest.fixture
def by_email(demo: list[demo_service.DemoUser]) -> dict[str, demo_service.DemoUser]:
    """The demo's users by email address (``ops@indosat.example``, ``admin@bank.example``)."""
    return {u.email: u for u in demo}
