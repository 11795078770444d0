"""The in-process client fixture serves the real app over the test's database."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from gpulease.services.demo import DemoUser


def test_me_and_unauthenticated(
    api: Callable[[str | None], TestClient], demo: list[DemoUser]
) -> None:
    admin = next(u for u in demo if u.role == "operator-admin")
    answer = api(admin.token).get("/me")
    assert answer.status_code == 200
    assert answer.json()["role"] == "operator-admin"
    assert api(None).get("/me").status_code == 401
