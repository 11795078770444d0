"""The submission's event-loop path (PostgreSQL): the same rows and the same decisions as the
session path, and nothing trusted that changed since it was kept.

On PostgreSQL a common submission runs on the event loop (``services.jobs.submit_lean``):
first the facts read then the rows inserted, and once the tenant's row is kept, one
statement that inserts only if the facts are still the ones decided on. These tests compare
its rows with those of the session path (``jobs.submit``), change what it keeps (the
tenant's standing, the token) between submissions, and race a key. On SQLite every
submission takes the session path: the tests that do not need PostgreSQL run on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpulease.api.app import SUBMISSION_CONNECTIONS, create_app
from gpulease.persistence import submission
from gpulease.persistence.tables import (
    AuditRecord,
    Base,
    IdempotencyRecord,
    Job,
    SchedulerChange,
    Tenant,
)
from gpulease.services import audit, identity, jobs, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.idempotency import Idempotent, record_values

Api = Callable[[str | None], TestClient]
JOB = {"gpus": 4, "purpose": "financial AI", "command": "train", "name": "nightly"}
ADMIN = "admin@inftech.example"


def _token(demo: list[DemoUser], email: str = ADMIN) -> str:
    return next(u for u in demo if u.email == email).token


def _columns(row: Base) -> dict[str, Any]:
    table = row.__table__
    return {c.key: getattr(row, c.key) for c in table.columns}  # type: ignore[attr-defined]


def _written(ctx: ServiceContext, job_id: str) -> dict[str, Any]:
    """The rows a submission wrote for ``job_id``: the job, its audit record, its key record
    and its change-feed rows, as column values."""
    with ctx.db.transaction(write=False) as tx:
        job = tx.first(select(Job).where(Job.id == job_id))
        trails = tx.all(select(AuditRecord).where(AuditRecord.subject_id == job_id))
        keys = [
            k for k in tx.all(select(IdempotencyRecord)) if (k.response or {}).get("id") == job_id
        ]
        changes = tx.all(select(SchedulerChange).where(SchedulerChange.ref == job_id))
    assert job is not None
    return {
        "job": _columns(job),
        "audit": [_columns(t) for t in trails],
        "keys": [_columns(k) for k in keys],
        "changes": [_columns(c) for c in changes],
    }


def _alike(written: dict[str, Any], job_id: str) -> dict[str, Any]:
    """``written`` without what differs by nature between two submissions: the job's id
    (and the name it defaults to), serial keys, the key itself and its fingerprint."""
    job = dict(written["job"], id="JOB")
    audit = [dict(a, id=None, subject_id="JOB") for a in written["audit"]]
    keys = [
        dict(k, id=None, key="KEY", fingerprint="F", response={"id": "JOB"})
        for k in written["keys"]
    ]
    changes = [dict(c, seq=None, ref="JOB") for c in written["changes"]]
    assert all(c["ref"] == job_id for c in written["changes"])
    return {"job": job, "audit": audit, "keys": keys, "changes": changes}


def test_the_event_loop_path_writes_the_session_paths_rows(
    ctx: ServiceContext, api: Api, demo: list[DemoUser]
) -> None:
    """The first submission of a tenant (facts read, then inserted), a later one (one
    statement) and one through ``jobs.submit`` write the same rows, save their ids."""
    token = _token(demo)
    client = api(token)
    made = [
        client.post("/jobs", json=JOB, headers={"Idempotency-Key": f"same-rows-{n}"}).json()
        for n in range(2)
    ]
    principal = identity.authenticate(ctx, token)
    body = dict(JOB)
    idem = Idempotent.of("same-rows-session", "job.submit", body)
    by_session = jobs.submit(ctx, principal, jobs.JobSubmission(**body), idem)  # type: ignore[arg-type]
    expected = _alike(_written(ctx, by_session.id), by_session.id)
    assert expected["audit"]
    assert expected["keys"]
    assert expected["changes"]
    for answer in made:
        assert _alike(_written(ctx, answer["id"]), answer["id"]) == expected
        assert client.get(f"/jobs/{answer['id']}").json() == answer


def test_a_tenant_suspended_after_its_row_was_kept_is_refused(
    ctx: ServiceContext, api: Api, demo: list[DemoUser]
) -> None:
    client = api(_token(demo))
    first = client.post("/jobs", json=JOB)
    assert first.status_code == 201, first.text
    tenant_id = first.json()["tenant_id"]
    with ctx.db.transaction() as tx:
        tenant = tx.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.approval = "suspended"
    refused = client.post("/jobs", json=JOB)
    assert refused.status_code == 403, refused.text
    assert "not approved" in refused.json()["message"]
    with ctx.db.transaction() as tx:
        tenant = tx.get(Tenant, tenant_id)
        assert tenant is not None
        tenant.approval = "approved"
    assert client.post("/jobs", json=JOB).status_code == 201  # and admitted again at once


def test_an_end_use_withdrawn_after_it_was_admitted_is_refused(
    ctx: ServiceContext, api: Api, demo: list[DemoUser]
) -> None:
    client = api(_token(demo))
    first = client.post("/jobs", json=JOB)
    assert first.status_code == 201, first.text
    with ctx.db.transaction() as tx:
        tenant = tx.get(Tenant, first.json()["tenant_id"])
        assert tenant is not None
        kept = list(tenant.approved_end_uses)
        tenant.approved_end_uses = []  # the remembered decision no longer applies
    refused = client.post("/jobs", json=JOB)
    assert refused.status_code == 403, refused.text
    assert kept  # the demo tenant was approved for its end use


def test_a_token_revoked_after_it_was_kept_is_refused_at_once(
    ctx: ServiceContext, api: Api, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo))
    issued = tokens.issue(ctx, admin, admin.user_id, label="lean")
    client = api(issued.token)
    for _ in range(2):  # kept, then used by the one-statement submission
        assert client.post("/jobs", json=JOB).status_code == 201
    tokens.revoke(ctx, admin, issued.row.id)
    refused = client.post("/jobs", json=JOB)
    assert refused.status_code == 401, refused.text


def test_a_key_replays_and_a_reused_key_is_refused(api: Api, demo: list[DemoUser]) -> None:
    client = api(_token(demo))
    for warm in range(2):  # the tenant's row kept: the key is checked in the one statement
        assert client.post("/jobs", json=JOB, headers={"Idempotency-Key": f"w{warm}"}).is_success
    first = client.post("/jobs", json=JOB, headers={"Idempotency-Key": "replay"})
    again = client.post("/jobs", json=JOB, headers={"Idempotency-Key": "replay"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    other = client.post("/jobs", json=dict(JOB, gpus=8), headers={"Idempotency-Key": "replay"})
    assert other.status_code == 422, other.text
    assert other.json()["code"] == "idempotency_mismatch"


def test_rows_refused_by_the_database_write_nothing(
    ctx: ServiceContext, db_backend: str, demo: list[DemoUser]
) -> None:
    """The statements alone: a key a racing request recorded first makes the insert write
    nothing (``RowsRefused``: the route then replays it through the session path); facts
    other than those decided on (here the epoch) make the one statement write nothing."""
    if db_backend != "postgresql":
        pytest.skip("the event-loop statements are PostgreSQL's")
    store = submission.for_url(ctx.db.url, SUBMISSION_CONNECTIONS)
    assert store is not None
    principal = identity.authenticate(ctx, _token(demo))
    body = jobs.JobSubmission(**JOB)  # type: ignore[arg-type]
    idem = Idempotent.of("raced", "job.submit", JOB)
    assert idem is not None
    won = jobs.submit(ctx, principal, body, idem)  # the racing request, first
    checked = jobs._checked(ctx, principal, body)
    job, said = jobs._values(principal, body, checked)
    key = record_values(principal.user_id, idem, job["id"], checked.now)

    async def attempts() -> None:
        with pytest.raises(submission.RowsRefused):
            await store.insert(job, audit.values(**said), key)
        facts = await store.facts(checked.tenant_id, principal.user_id, "another key")
        kept = store.kept(checked.tenant_id)
        assert facts is not None
        assert kept is not None
        assert kept.tenant is facts.tenant
        inserted, read = await store.insert_if(
            job, audit.values(**said), None, user_id=principal.user_id, epoch=-5, kept=kept
        )
        assert not inserted
        assert read is not None
        assert read.epoch == facts.epoch
        await store.close()

    asyncio.run(attempts())
    with ctx.db.transaction(write=False) as tx:
        assert tx.first(select(Job).where(Job.id == job["id"])) is None
        assert tx.first(select(SchedulerChange).where(SchedulerChange.ref == job["id"])) is None
        assert tx.first(select(Job).where(Job.id == won.id)) is not None


def test_requests_the_route_leaves_to_fastapi_are_answered_as_before(
    api: Api, demo: list[DemoUser]
) -> None:
    """Not the common case: FastAPI's handler answers, with its own errors."""
    client = api(_token(demo))
    assert client.post("/jobs", json=JOB).status_code == 201  # the token is kept
    as_text = client.post("/jobs", content=b'{"gpus": 4}', headers={"content-type": "text/plain"})
    assert as_text.status_code == 422
    broken = client.post(
        "/jobs", content=b'{"gpus": ', headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert "invalid JSON" in broken.text
    charset = client.post(
        "/jobs",
        content=b'{"gpus": 4, "purpose": "financial AI", "command": "x"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 201, charset.text
    no_token = TestClient(client.app, base_url=str(client.base_url))
    assert no_token.post("/jobs", json=JOB).status_code == 401


def test_each_request_is_counted_once_whichever_handler_answers(
    ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    settings = ctx.settings.model_copy(update={"submissions_per_minute": 4})
    app = create_app(ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock))
    with TestClient(app, base_url="http://testserver/api/v1") as client:
        client.headers["Authorization"] = f"Bearer {_token(demo)}"
        assert client.post("/jobs", json=JOB).status_code == 201  # 1
        assert client.post("/jobs", json={"gpus": 4}).status_code == 422  # 2 (FastAPI's)
        assert client.post("/jobs", json=JOB).status_code == 201  # 3
        assert client.post("/jobs", json=JOB).status_code == 201  # 4
        assert client.post("/jobs", json=JOB).status_code == 429  # 5: past the limit
