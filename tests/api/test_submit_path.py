"""The job submission's short path through the API, on SQLite and PostgreSQL.

A submission authenticates on the event loop from the process's cache (a token the process
has not checked yet is read in a worker thread), runs in one worker thread and returns the
job's JSON bytes itself, without FastAPI's response validation: the answer must still be the
documented ``JobOut``, and every access must still be recorded, on either path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from gpulease.api.schemas import JobOut
from gpulease.domain.clock import ManualClock
from gpulease.persistence.tables import AccessRecord
from gpulease.services import auth_cache, identity, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Api = Callable[[str | None], TestClient]
JOB = {"gpus": 4, "purpose": "financial AI", "command": "train", "name": "nightly"}


def _token(demo: list[DemoUser], email: str) -> str:
    return next(u for u in demo if u.email == email).token


def test_the_answer_is_the_documented_job_as_it_is_shown_later(
    api: Api, demo: list[DemoUser]
) -> None:
    client = api(_token(demo, "admin@inftech.example"))
    answer = client.post("/jobs", json=JOB, headers={"Idempotency-Key": "nightly-1"})
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-type"] == "application/json"
    created: dict[str, Any] = answer.json()
    assert set(created) == set(JobOut.model_fields)
    JobOut.model_validate(created)  # every field of the documented type and shape
    assert created["state"] == "queued"
    assert created["name"] == "nightly"
    shown = client.get(f"/jobs/{created['id']}").json()
    assert shown == created
    replayed = client.post("/jobs", json=JOB, headers={"Idempotency-Key": "nightly-1"})
    assert replayed.status_code == 201
    assert replayed.json() == created


def test_every_submission_is_recorded_as_an_access_on_either_path(
    ctx: ServiceContext, clock: ManualClock, api: Api, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo, "admin@inftech.example"))
    issued = tokens.issue(ctx, admin, admin.user_id, label="ci")  # not yet checked by the app
    client = api(issued.token)

    def requests() -> int:
        with ctx.db.transaction(write=False) as tx:
            row = tx.first(select(AccessRecord).where(AccessRecord.user_id == admin.user_id))
        assert row is not None
        return row.requests

    assert auth_cache.of(ctx).peek(tokens.hash_token(issued.token)) is None
    assert client.post("/jobs", json=JOB).status_code == 201  # read from the database
    assert requests() == 1
    assert auth_cache.of(ctx).peek(tokens.hash_token(issued.token)) is not None
    assert client.post("/jobs", json=JOB).status_code == 201  # recalled from the cache
    clock.advance(61)
    assert client.post("/jobs", json=JOB).status_code == 201  # the minute's count is written
    assert requests() == 3


def test_a_token_unknown_to_the_process_is_read_and_refused(api: Api) -> None:
    for token in ("glt_" + "0" * 40, "glt_" + "0" * 5000):  # unknown; longer than any issued
        answer = api(token).post("/jobs", json=JOB)
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "unauthenticated"
        assert answer.headers["www-authenticate"] == "Bearer"
