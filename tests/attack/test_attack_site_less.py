"""Attacks on the submission's short path (``api.routes.jobs.SubmitRoute``,
``services.lean_submit``): a token kept by the process and revoked since must be refused
before anything else is said to it and must use up nothing of its tenant's budget, whatever
else is wrong with the request (its headers included)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from gpulease.services import identity, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Client = Callable[[str | None], TestClient]
JOB = {"gpus": 8, "purpose": "financial AI", "command": "train", "name": "nightly"}
ADMIN = "admin@inftech.example"


def _token(demo: list[DemoUser]) -> str:
    return next(u for u in demo if u.email == ADMIN).token


def test_a_revoked_kept_token_with_a_bad_idempotency_key_is_refused_and_counts_nothing(
    ctx: ServiceContext, api: Client, demo: list[DemoUser]
) -> None:
    """A leaked token, kept by the process, then revoked: with an ``Idempotency-Key`` too
    long to keep it got 422 (not 401) and each request used up one of its tenant's
    submissions, never given back, so a revoked token could still exhaust the tenant's
    budget (429 for the tenant's real users)."""
    admin = identity.authenticate(ctx, _token(demo))
    issued = tokens.issue(ctx, admin, admin.user_id, label="leaked")
    client = api(issued.token)
    assert client.post("/jobs", json=JOB).status_code == 201  # kept by the app
    tokens.revoke(ctx, admin, issued.row.id)
    limits = client.app.state.limits  # type: ignore[attr-defined]
    key = f"tenant {admin.tenant_id}"
    counted = limits.submissions.limit._windows[key].count
    for _ in range(3):
        answer = client.post("/jobs", json=JOB, headers={"Idempotency-Key": "k" * 201})
        assert answer.status_code == 401, answer.text
    assert limits.submissions.limit._windows[key].count == counted  # nothing used up


def test_a_valid_token_with_a_bad_idempotency_key_gets_the_same_422(
    ctx: ServiceContext, api: Client, demo: list[DemoUser]
) -> None:
    """The same request with a token that holds: 422 on the key, as FastAPI's path says it
    (the short path leaves it to FastAPI, which counts it as it always has)."""
    client = api(_token(demo))
    assert client.post("/jobs", json=JOB).status_code == 201  # kept
    answer = client.post("/jobs", json=JOB, headers={"Idempotency-Key": "k" * 201})
    assert answer.status_code == 422, answer.text
    assert "Idempotency-Key" in answer.json()["message"]
    empty = client.post("/jobs", json=JOB, headers={"Idempotency-Key": ""})
    assert empty.status_code == 422, empty.text
