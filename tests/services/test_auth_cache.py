"""Cached authentication with immediate revocation, and the one-transaction submission, on
SQLite and PostgreSQL.

Two API processes are two service contexts over the same database, each with its own cache
(and its own connection pool): a revocation, a disable or an expiry made while both caches
are warm is refused by the very next request in both."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select

from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Denied, InvalidRequest, Unauthenticated
from gpulease.persistence import auth as auth_store
from gpulease.persistence.db import Database
from gpulease.persistence.tables import ApiToken, AuditRecord, IdempotencyRecord, Job, Tenant, User
from gpulease.services import auth_cache, identity, jobs, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.idempotency import Idempotent

Api = Callable[[str | None], TestClient]


def _token(demo: list[DemoUser], email: str) -> str:
    return next(u for u in demo if u.email == email).token


@pytest.fixture
def other(ctx: ServiceContext) -> Iterator[ServiceContext]:
    """A second API process: its own pool and its own cache, the same database and clock."""
    db = Database(ctx.settings.database_url)
    try:
        yield ServiceContext(db, settings=ctx.settings, clock=ctx.clock)
    finally:
        db.dispose()


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements ``db`` sends (BEGIN, pragmas and isolation settings left out)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        word = statement.lstrip().split(None, 1)[0].upper()
        if word in {"SELECT", "INSERT", "UPDATE", "DELETE", "WITH"}:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


@contextmanager
def _transactions(db: Database) -> Iterator[list[int]]:
    begun: list[int] = []

    def note(_conn: Any) -> None:
        begun.append(1)

    event.listen(db.engine, "begin", note)
    try:
        yield begun
    finally:
        event.remove(db.engine, "begin", note)


def _submission(**fields: Any) -> jobs.JobSubmission:
    values: dict[str, Any] = {"gpus": 4, "purpose": "financial AI", "command": "train"}
    return jobs.JobSubmission(**(values | fields))


def _count(ctx: ServiceContext, model: Any) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.execute(select(func.count()).select_from(model)).scalar_one())


def test_a_known_token_costs_one_read_of_the_epoch(
    ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    token = _token(demo, "admin@inftech.example")
    first = identity.authenticate(ctx, token)
    with _statements(ctx.db) as seen:
        assert identity.authenticate(ctx, token) == first
    assert len(seen) == 1
    assert "auth_epoch" in seen[0]
    assert "api_tokens" not in seen[0]
    assert len(auth_cache.of(ctx)) == 1


def test_revocation_holds_at_once_in_every_process(
    ctx: ServiceContext, other: ServiceContext, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo, "admin@inftech.example"))
    issued = tokens.issue(ctx, admin, admin.user_id, label="ci")
    for process in (ctx, other):  # both caches warm
        assert identity.authenticate(process, issued.token) == admin
        assert auth_cache.of(process).peek(tokens.hash_token(issued.token)) is not None
    tokens.revoke(ctx, admin, issued.row.id, "leaked")
    for process in (other, ctx):
        with pytest.raises(Unauthenticated, match="revoked"):
            identity.authenticate(process, issued.token)
    # the other tokens of the installation are read again once, then cached again
    assert identity.authenticate(other, _token(demo, "admin@inftech.example")) == admin


def test_disabling_a_user_holds_at_once_in_every_process(
    ctx: ServiceContext, other: ServiceContext, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo, "admin@inftech.example"))
    user, token = identity.create_user(
        ctx,
        admin,
        name="m",
        email="m@inftech.example",
        role=Role.TENANT_MEMBER,
        tenant_id=admin.tenant_id,
    )
    for process in (ctx, other):
        assert identity.authenticate(process, token).user_id == user.id
    identity.set_disabled(ctx, admin, user.id, disabled=True, reason="left the company")
    for process in (other, ctx):  # its tokens revoked: they answer like unknown ones
        with pytest.raises(Unauthenticated, match="revoked"):
            identity.authenticate(process, token)


def test_expiry_holds_with_the_cache_warm(
    ctx: ServiceContext, other: ServiceContext, clock: ManualClock, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo, "admin@inftech.example"))
    issued = tokens.issue(ctx, admin, admin.user_id, ttl_days=1)
    for process in (ctx, other):
        assert identity.authenticate(process, issued.token) == admin
        assert identity.recall(process, issued.token).principal == admin
    clock.advance(86400)
    for process in (ctx, other):
        with pytest.raises(Unauthenticated, match="expired"):
            identity.authenticate(process, issued.token)
        with pytest.raises(Unauthenticated, match="expired"):
            identity.recall(process, issued.token)


def test_failures_are_never_cached(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    with pytest.raises(Unauthenticated):
        identity.authenticate(ctx, "glt_" + "0" * 40)
    assert len(auth_cache.of(ctx)) == 0


def test_a_submission_is_one_transaction_of_two_statements(
    ctx: ServiceContext, demo: list[DemoUser], db_backend: str
) -> None:
    """One read, then one insert of the job, its audit record, its idempotency record and
    the scheduler's change-feed row (PostgreSQL; SQLite has no data-modifying WITH: four
    inserts), then the ledger's queue at the end of the transaction (``ledger_store``:
    one statement, no lock)."""
    token = _token(demo, "admin@inftech.example")
    identity.recall(ctx, token)  # checked once: the cache is warm
    jobs.submit(ctx, identity.recall(ctx, token), _submission())  # the site, the shape known
    idem = Idempotent.of(str(uuid.uuid4()), "job.submit", {"n": 1})
    with _transactions(ctx.db) as begun, _statements(ctx.db) as seen:
        job = jobs.submit(ctx, identity.recall(ctx, token), _submission(), idem)
    assert len(begun) == 1
    assert [s.split(None, 1)[0].upper() for s in seen].count("SELECT") == 1
    assert len(seen) == (6 if db_backend == "sqlite" else 3), seen
    assert "scheduler_changes" in seen[-2 if db_backend == "sqlite" else 1]
    assert "ledger_pending" in seen[-1]
    with _statements(ctx.db) as seen:  # a retry with the key: one read, nothing written
        again = jobs.submit(ctx, identity.recall(ctx, token), _submission(), idem)
    assert again.id == job.id
    assert len(seen) == 2, seen  # the read, then the earlier job
    assert _count(ctx, IdempotencyRecord) == 1


def test_a_submission_confirms_a_cached_token_in_its_transaction(
    ctx: ServiceContext, other: ServiceContext, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo, "admin@inftech.example"))
    issued = tokens.issue(ctx, admin, admin.user_id, label="ci")
    cached = identity.recall(other, issued.token)
    jobs.submit(other, cached, _submission())
    before = _count(ctx, Job)
    tokens.revoke(ctx, admin, issued.row.id, "leaked")
    recalled = identity.recall(other, issued.token)  # still in the other process's memory
    assert recalled == cached
    with pytest.raises(Unauthenticated, match="revoked"):
        jobs.submit(other, recalled, _submission())
    assert _count(ctx, Job) == before
    actions = [r.action for r in _all(ctx, AuditRecord)]
    assert actions.count("job.submit") == before


def _all(ctx: ServiceContext, model: Any) -> list[Any]:
    with ctx.db.transaction(write=False) as tx:
        return list(tx.session.scalars(select(model)))


def test_never_fits_is_decided_once_per_shape(
    ctx: ServiceContext, demo: list[DemoUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = jobs.never_fits

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, "never_fits", counted)
    me: Principal = identity.authenticate(ctx, _token(demo, "admin@inftech.example"))
    too_big = _submission(gpus=144, topology="required")  # larger than an NVLink domain
    for _ in range(3):
        with pytest.raises(InvalidRequest, match="never fits"):
            jobs.submit(ctx, me, too_big)
    for _ in range(3):
        jobs.submit(ctx, me, _submission(gpus=8))
    assert len(calls) == 2


def test_the_api_refuses_a_revoked_cached_token_on_submit(
    ctx: ServiceContext, other: ServiceContext, api: Api, demo: list[DemoUser], db_backend: str
) -> None:
    admin = identity.authenticate(other, _token(demo, "admin@inftech.example"))
    issued = tokens.issue(other, admin, admin.user_id, label="ci")
    client = api(issued.token)
    body = {"gpus": 4, "purpose": "financial AI", "command": "train"}
    assert client.post("/jobs", json=body).status_code == 201
    keyed = {"Idempotency-Key": str(uuid.uuid4())}
    lean = client.app.state.submissions  # type: ignore[attr-defined]
    sent = lean.sent if lean is not None else 0
    with _statements(ctx.db) as seen:
        assert client.post("/jobs", json=body, headers=keyed).status_code == 201
    # the API adds no statement of its own to a submission; on PostgreSQL it is one
    # statement on the event loop's connection (persistence.submission), none in a session
    assert len(seen) == (6 if db_backend == "sqlite" else 0), seen  # with the ledger's queue
    if lean is not None:
        assert lean.sent - sent == 1
    tokens.revoke(other, admin, issued.row.id, "leaked")
    refused = client.post("/jobs", json=body)
    assert refused.status_code == 401, refused.text
    assert client.get("/me").status_code == 401
    with ctx.db.transaction(write=False) as tx:
        row = tx.first(tx.select(ApiToken).where(ApiToken.id == issued.row.id))
    assert row is not None
    assert row.revoked_at is not None


def test_a_submission_does_not_wait_for_a_locked_tenant_row(
    ctx: ServiceContext, other: ServiceContext, demo: list[DemoUser], db_backend: str
) -> None:
    """A row locked to be changed (the scheduler re-reading a tenant's standing) does not
    block a submission's foreign-key check (PostgreSQL; SQLite serialises writers)."""
    if db_backend == "sqlite":
        pytest.skip("SQLite has no row locks: its writers are serialised")
    me = identity.recall(ctx, _token(demo, "admin@inftech.example"))
    assert me.principal.tenant_id is not None
    done: list[str] = []
    with other.db.transaction() as tx:
        tenant = tx.require(Tenant, me.principal.tenant_id, "tenant", for_update=True)
        worker = threading.Thread(
            target=lambda: done.append(jobs.submit(ctx, me, _submission()).id)
        )
        worker.start()
        worker.join(timeout=20)
        finished_while_locked = bool(done)
        tenant.approval_reason = tenant.approval_reason  # the holder still owns the lock
    worker.join(timeout=20)
    assert finished_while_locked


def test_a_role_changed_with_the_epoch_holds_on_the_next_submission(
    ctx: ServiceContext, other: ServiceContext, demo: list[DemoUser]
) -> None:
    """A role change (no use case makes one yet) must bump the epoch in its transaction, as
    revoke and disable do: then a cached credential is read again, with the new role."""
    token = _token(demo, "admin@inftech.example")  # a tenant-admin may submit at "high"
    cached = identity.recall(other, token)
    assert jobs.submit(other, cached, _submission(priority="high")).priority == "high"
    with ctx.db.transaction() as tx:
        user = tx.require(User, cached.principal.user_id, "user", for_update=True)
        user.role = Role.TENANT_MEMBER.value
        auth_store.bump_epoch(tx)
    with pytest.raises(Denied, match="priority 'high'"):
        jobs.submit(other, identity.recall(other, token), _submission(priority="high"))
    assert identity.authenticate(other, token).role is Role.TENANT_MEMBER
