"""Attacks on the short submission path (``SubmitRoute``, ``jobs.submit_lean``,
``persistence.submission``), on PostgreSQL, where it runs.

Every request is sent twice when that makes sense: to the short path (``application/json``,
a token the process keeps) and to the old one (FastAPI's handler, which the route falls back
to for ``application/json; charset=utf-8``, on an app with no event-loop statements, so the
job is written by ``jobs.submit`` in a worker thread). Both must answer the same status and
error code, never a 500, and write nothing on a refusal; whatever is written is a job with
exactly one audit record and one change-feed row.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gpulease.api.app import create_app
from gpulease.domain.access import Role
from gpulease.persistence import submission
from gpulease.persistence.tables import (
    AccessRecord,
    AuditRecord,
    IdempotencyRecord,
    Job,
    SchedulerChange,
    Tenant,
)
from gpulease.services import identity, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

JOB: dict[str, Any] = {"gpus": 4, "purpose": "financial AI", "command": "train", "name": "n"}
ADMIN = "admin@inftech.example"
OTHER_ADMIN = "admin@bank.example"
OPERATOR = "ops@indosat.example"
SHORT = {"content-type": "application/json"}
OLD = {"content-type": "application/json; charset=utf-8"}


@pytest.fixture
def db_backend() -> str:
    """The short path exists on PostgreSQL only."""
    return "postgresql"


def _token(demo: list[DemoUser], email: str = ADMIN) -> str:
    return next(u for u in demo if u.email == email).token


def _app(ctx: ServiceContext, *, lean: bool, **settings: Any) -> FastAPI:
    update = {"run_scheduler": False, "submissions_per_minute": 100_000, **settings}
    app = create_app(
        ctx=ServiceContext(
            ctx.db,
            settings=ctx.settings.model_copy(update=update),
            clock=ctx.clock,
            cache=ctx.cache,
        )
    )
    if not lean:
        app.state.submissions = None  # the old path: jobs.submit in a worker thread
    return app


class Pair:
    """A short-path client and an old-path client over the same database and cache."""

    def __init__(self, short: TestClient, old: TestClient) -> None:
        self.short, self.old = short, old

    def both(
        self, token: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[Any, Any]:
        extra = headers or {}
        auth = {"Authorization": f"Bearer {token}"}
        a = self.short.post("/jobs", content=body, headers={**SHORT, **auth, **extra})
        b = self.old.post("/jobs", content=body, headers={**OLD, **auth, **extra})
        return a, b


@pytest.fixture
def pair(ctx: ServiceContext) -> Iterator[Pair]:
    base = "http://testserver/api/v1"
    with (
        TestClient(_app(ctx, lean=True), base_url=base, raise_server_exceptions=False) as short,
        TestClient(_app(ctx, lean=False), base_url=base, raise_server_exceptions=False) as old,
    ):
        yield Pair(short, old)


def _answer(response: Any) -> tuple[int, str | None, str | None]:
    body = response.json()
    details = body.get("details") or {} if isinstance(body, dict) else {}
    code = body.get("code") if isinstance(body, dict) else None
    return response.status_code, code, details.get("field") if isinstance(details, dict) else None


def _rows(ctx: ServiceContext) -> dict[str, int]:
    """How many rows each table a submission writes holds (counted by the database: the
    demo's audit records name whole racks of chips, too many to load for a count)."""
    with ctx.db.transaction(write=False) as tx:
        return {
            model.__name__: int(tx.session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Job, AuditRecord, IdempotencyRecord, SchedulerChange)
        }


def _whole(ctx: ServiceContext) -> None:
    """Every job has its one submission audit record and its change-feed row; every key
    record names a job."""
    with ctx.db.transaction(write=False) as tx:
        jobs_ = {j.id for j in tx.all(select(Job))}
        for job_id in jobs_:
            trails = tx.all(
                select(AuditRecord).where(
                    AuditRecord.subject_id == job_id, AuditRecord.action == "job.submit"
                )
            )
            changes = tx.all(select(SchedulerChange).where(SchedulerChange.ref == job_id))
            assert len(trails) == 1, job_id
            assert len(changes) >= 1, job_id
        for key in tx.all(select(IdempotencyRecord)):
            made = str((key.response or {}).get("id", ""))
            if made.startswith("job"):
                assert made in jobs_, key.key


def _warm(pair: Pair, token: str) -> None:
    """The token kept and the tenant's row kept: the short path's one-statement case."""
    for _ in range(2):
        a, b = pair.both(token, json.dumps(JOB).encode())
        assert a.status_code == b.status_code == 201, (a.text, b.text)


def _with(**changes: Any) -> bytes:
    return json.dumps({**JOB, **changes}).encode()


BAD_BODIES: list[tuple[str, bytes]] = [
    ("empty object", b"{}"),
    ("a list", b"[]"),
    ("null", b"null"),
    ("a string", b'"job"'),
    ("zero gpus", _with(gpus=0)),
    ("negative gpus", _with(gpus=-4)),
    ("gpus as text", _with(gpus="4")),
    ("gpus as float", _with(gpus=4.0)),
    ("gpus as bool", _with(gpus=True)),
    ("too many gpus", _with(gpus=1_000_001)),
    ("gpus past 64 bits", b'{"gpus": 99999999999999999999999, "purpose": "x", "command": "x"}'),
    ("NaN walltime", b'{"gpus": 4, "purpose": "x", "command": "x", "walltime_s": NaN}'),
    ("Infinity duration", b'{"gpus": 4, "purpose": "x", "command": "x", "duration_s": Infinity}'),
    ("-Infinity walltime", b'{"gpus": 4, "purpose": "x", "command": "x", "walltime_s": -Infinity}'),
    ("zero walltime", _with(walltime_s=0)),
    ("negative duration", _with(duration_s=-1)),
    ("huge walltime", _with(walltime_s=1e300)),
    ("unknown field", _with(owner="root")),
    ("empty purpose", _with(purpose="")),
    ("blank purpose", _with(purpose="   ")),
    ("long purpose", _with(purpose="p" * 201)),
    ("purpose with a newline", _with(purpose="financial AI\nweapons")),
    ("purpose with NUL", _with(purpose="financial AI\u0000")),
    ("purpose with a lone surrogate", b'{"gpus": 4, "purpose": "ai \\ud800", "command": "x"}'),
    ("command with NUL", _with(command="train\u0000")),
    ("command with a lone surrogate", b'{"gpus": 4, "purpose": "ai", "command": "\\udfff"}'),
    (
        "name with a lone surrogate",
        b'{"gpus": 4, "purpose": "ai", "command": "x", "name": "\\ud83d"}',
    ),
    ("long name", _with(name="n" * 201)),
    ("long command", _with(command="c" * 100_001)),
    ("long image", _with(command=None, image="i" * 501)),
    ("no command nor image", _with(command=None)),
    ("bad topology", _with(topology="ring")),
    ("topology as number", _with(topology=1)),
    ("segment zero", _with(topology="required", segment=0)),
    ("segment too large", _with(segment=1_000_001)),
    ("gpus_per_node zero", _with(gpus_per_node=0)),
    ("gpus_per_node 65", _with(gpus_per_node=65)),
    ("gpus not a multiple", _with(gpus=5, gpus_per_node=4)),
    ("required and too large", _with(gpus=100_000, topology="required")),
    ("bad priority", _with(priority="urgent")),
    ("preemptible as text", _with(preemptible="yes")),
    ("no such lease", _with(lease_id="lease-nope")),
    ("no such site", _with(site_id="site-nope")),
    ("another tenant", _with(tenant_id="tenant-nope")),
    ("empty lease id", _with(lease_id="")),
    (
        "deep JSON",
        b'{"gpus": 4, "purpose": "x", "command": "x", "name": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ),
    ("duplicate keys", b'{"gpus": 4, "gpus": 0, "purpose": "x", "command": "x"}'),
    ("trailing garbage", b'{"gpus": 4, "purpose": "x", "command": "x"} x'),
    ("not UTF-8", b'{"gpus": 4, "purpose": "\xff", "command": "x"}'),
    ("UTF-16", json.dumps(JOB).encode("utf-16")),
    ("empty body", b""),
]


@pytest.mark.parametrize(("label", "body"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_every_bound_answers_as_the_old_path(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser], label: str, body: bytes
) -> None:
    token = _token(demo)
    _warm(pair, token)
    before = _rows(ctx)
    short, old = pair.both(token, body)
    assert short.status_code != 500, short.text
    assert _answer(short) == _answer(old), (label, short.text, old.text)
    if short.status_code == 201:
        assert json.loads(short.text).keys() == json.loads(old.text).keys()
    else:
        assert _rows(ctx) == before, label
    _whole(ctx)


def _sent(pair: Pair) -> int:
    store = pair.short.app.state.submissions  # type: ignore[attr-defined]
    return int(store.sent)


def test_the_short_path_is_the_one_attacked(pair: Pair, demo: list[DemoUser]) -> None:
    token = _token(demo)
    _warm(pair, token)
    sent = _sent(pair)
    short, _old = pair.both(token, json.dumps(JOB).encode())
    assert short.status_code == 201
    assert _sent(pair) == sent + 1  # one statement: the kept row confirmed and inserted


def _tenant_of(ctx: ServiceContext, demo: list[DemoUser], email: str = ADMIN) -> Tenant:
    principal = identity.authenticate(ctx, _token(demo, email))
    with ctx.db.transaction(write=False) as tx:
        tenant = tx.get(Tenant, principal.tenant_id)
    assert tenant is not None
    return tenant


def _refusals_audited(ctx: ServiceContext) -> int:
    with ctx.db.transaction(write=False) as tx:
        return len(tx.all(select(AuditRecord).where(AuditRecord.action == "purpose.refuse")))


def _refused_alike(
    pair: Pair, ctx: ServiceContext, token: str, body: bytes, *, purpose_refused: bool = False
) -> tuple[int, str]:
    """Both paths refuse alike and store nothing, but for the audit record of a refused
    purpose, which each path writes (once per request) when ``purpose_refused``."""
    before, refusals = _rows(ctx), _refusals_audited(ctx)
    short, old = pair.both(token, body)
    assert _answer(short) == _answer(old), (short.text, old.text)
    audited = 2 if purpose_refused else 0
    assert _refusals_audited(ctx) == refusals + audited
    assert _rows(ctx) == before | {"AuditRecord": before["AuditRecord"] + audited}
    return short.status_code, str(short.json().get("code"))


def test_credentials_withdrawn_between_two_submissions_are_refused_on_both_paths(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo))
    operator = identity.authenticate(ctx, _token(demo, OPERATOR))
    body = json.dumps(JOB).encode()
    revoked = tokens.issue(ctx, admin, admin.user_id, label="to revoke")
    _warm(pair, revoked.token)
    tokens.revoke(ctx, admin, revoked.row.id)
    assert _refused_alike(pair, ctx, revoked.token, body) == (401, "unauthenticated")
    short_lived = tokens.issue(ctx, admin, admin.user_id, label="short", ttl_days=1)
    _warm(pair, short_lived.token)
    ctx.clock.advance(86_401)  # type: ignore[attr-defined]
    assert _refused_alike(pair, ctx, short_lived.token, body) == (401, "unauthenticated")
    user, member_token = identity.create_user(
        ctx,
        operator,
        name="m",
        email="m@inftech.example",
        role=Role.TENANT_MEMBER,
        tenant_id=admin.tenant_id,
    )
    _warm(pair, member_token)
    identity.set_disabled(ctx, operator, user.id, disabled=True, reason="left")
    assert _refused_alike(pair, ctx, member_token, body) == (401, "unauthenticated")
    _whole(ctx)


def test_a_tenants_standing_lost_between_two_submissions_is_refused_on_both_paths(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    token = _token(demo)
    body = json.dumps(JOB).encode()
    _warm(pair, token)
    tenant = _tenant_of(ctx, demo)
    with ctx.db.transaction() as tx:  # KYC approval lapses by time alone: no row changes
        row = tx.get(Tenant, tenant.id)
        assert row is not None
        row.approval_expires_at = ctx.now() + timedelta(hours=1)
    _warm(pair, token)
    ctx.clock.advance(7_200)  # type: ignore[attr-defined]
    status, code = _refused_alike(pair, ctx, token, body)
    assert status == 403, code
    with ctx.db.transaction() as tx:
        row = tx.get(Tenant, tenant.id)
        assert row is not None
        row.approval_expires_at = None
    _warm(pair, token)
    with ctx.db.transaction() as tx:
        row = tx.get(Tenant, tenant.id)
        assert row is not None
        row.approval = "suspended"
    assert _refused_alike(pair, ctx, token, body)[0] == 403
    with ctx.db.transaction() as tx:
        row = tx.get(Tenant, tenant.id)
        assert row is not None
        row.approval = "approved"
        uses = list(row.approved_end_uses)
    _warm(pair, token)
    with ctx.db.transaction() as tx:
        row = tx.get(Tenant, tenant.id)
        assert row is not None
        row.approved_end_uses = uses[1:]  # the end use withdrawn
    assert _refused_alike(pair, ctx, token, body, purpose_refused=True)[0] == 403
    _whole(ctx)


def test_roles_and_other_tenants_answer_as_the_old_path(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo))
    victim = _tenant_of(ctx, demo, OTHER_ADMIN)
    operator = identity.authenticate(ctx, _token(demo, OPERATOR))
    _member, member_token = identity.create_user(
        ctx,
        operator,
        name="m",
        email="m2@inftech.example",
        role=Role.TENANT_MEMBER,
        tenant_id=admin.tenant_id,
    )
    _officer = _token(demo, "compliance@indosat.example")
    for token in (_token(demo), member_token, _token(demo, OPERATOR), _officer):
        pair.both(token, json.dumps(JOB).encode())  # kept, whatever the answer
        for body in (
            json.dumps(JOB).encode(),
            _with(tenant_id=victim.id),
            _with(tenant_id=victim.name),
            _with(tenant_id=admin.tenant_id),
            _with(priority="critical"),
            _with(priority="high"),
        ):
            before = _rows(ctx)
            short, old = pair.both(token, body)
            assert short.status_code != 500, short.text
            assert _answer(short) == _answer(old), (body, short.text, old.text)
            if short.status_code != 201:
                assert _rows(ctx) == before
            else:
                made = short.json()
                if token != _token(demo, OPERATOR):
                    assert made["tenant_id"] == admin.tenant_id, (body, made)
    _whole(ctx)


def test_idempotency_keys_on_both_paths(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    token, other = _token(demo), _token(demo, OTHER_ADMIN)
    _warm(pair, token)
    _warm(pair, other)
    for client, tag in ((pair.short, "s"), (pair.old, "o")):
        headers = {**(SHORT if client is pair.short else OLD), "Authorization": f"Bearer {token}"}
        key = {"Idempotency-Key": f"k-{tag}"}
        first = client.post("/jobs", content=json.dumps(JOB), headers={**headers, **key})
        again = client.post("/jobs", content=json.dumps(JOB), headers={**headers, **key})
        assert first.status_code == again.status_code == 201
        assert first.json()["id"] == again.json()["id"]
        changed = client.post("/jobs", content=_with(gpus=8), headers={**headers, **key})
        assert _answer(changed)[:2] == (422, "idempotency_mismatch"), changed.text
        theirs = dict(headers, Authorization=f"Bearer {other}")
        another = client.post("/jobs", content=json.dumps(JOB), headers={**theirs, **key})
        assert another.status_code == 201
        assert another.json()["id"] != first.json()["id"]
        assert another.json()["tenant_id"] != first.json()["tenant_id"]
    for bad_key in ("k" * 201, ""):
        short, old = pair.both(token, json.dumps(JOB).encode(), {"Idempotency-Key": bad_key})
        assert _answer(short) == _answer(old), (short.text, old.text)
        assert short.status_code != 500
    _whole(ctx)


def test_concurrent_requests_with_one_key_make_exactly_one_job(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    token = _token(demo)
    _warm(pair, token)
    headers = {**SHORT, "Authorization": f"Bearer {token}", "Idempotency-Key": "raced"}
    before = _rows(ctx)

    def post(_n: int) -> Any:
        return pair.short.post("/jobs", content=json.dumps(JOB), headers=headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    after = _rows(ctx)
    assert after["Job"] == before["Job"] + 1
    assert after["IdempotencyRecord"] == before["IdempotencyRecord"] + 1
    _whole(ctx)


INJECTIONS = [
    "$1",
    "$4 $5 $$ $6",
    "'); DROP TABLE jobs; --",
    '{"id": "job-x", "tenant_id": "t"}',
    "\\x00 \\' \\\" %s %(name)s",
]


def test_texts_are_stored_as_given_never_as_statements(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    token = _token(demo)
    _warm(pair, token)
    for text in INJECTIONS:
        body = _with(name=text, command=text, purpose=f"financial AI: {text}")
        short, old = pair.both(token, body)
        assert short.status_code == old.status_code == 201, (short.text, old.text)
        for made in (short.json(), old.json()):
            with ctx.db.transaction(write=False) as tx:
                job = tx.get(Job, made["id"])
            assert job is not None
            assert (job.name, job.command) == (text, text)
    _whole(ctx)


def test_a_forwarded_address_is_not_believed_on_the_short_path(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    token = _token(demo)
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
    for _ in range(3):
        short, old = pair.both(token, json.dumps(JOB).encode(), forged)
        assert short.status_code == old.status_code == 201
    with ctx.db.transaction(write=False) as tx:
        seen = {row.ip for row in tx.all(select(AccessRecord))}
    assert "203.0.113.9" not in seen


def test_auth_failures_and_submissions_are_counted_once(
    ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo))
    base = "http://testserver/api/v1"
    for lean, content in ((True, SHORT), (False, OLD)):
        app = _app(ctx, lean=lean, auth_failures_per_minute=3, submissions_per_minute=3)
        issued = tokens.issue(ctx, admin, admin.user_id, label=f"count-{lean}")
        with TestClient(app, base_url=base, raise_server_exceptions=False) as client:
            headers = {**content, "Authorization": f"Bearer {issued.token}"}
            statuses = [
                client.post("/jobs", content=json.dumps(JOB), headers=headers).status_code
                for _ in range(4)
            ]
            assert statuses == [201, 201, 201, 429], (lean, statuses)
            ctx.clock.advance(120)  # type: ignore[attr-defined]
            tokens.revoke(ctx, admin, issued.row.id)
            revoked = {**content, "Authorization": f"Bearer {issued.token}"}
            bad = {**content, "Authorization": "Bearer glt_nope"}
            refused = [  # the revoked token's refusal counted once, whichever path saw it
                client.post("/jobs", content=json.dumps(JOB), headers=sent_with).status_code
                for sent_with in (revoked, bad, bad, bad)
            ]
            assert refused == [401, 401, 401, 429], (lean, refused)


GOOD_BODIES: list[tuple[str, bytes]] = [
    ("plain", json.dumps(JOB).encode()),
    ("whole-second walltime", _with(walltime_s=3600, duration_s=0)),
    ("fractional walltime", _with(walltime_s=0.5, duration_s=1.25)),
    ("longest texts", _with(name="ü" * 200, purpose="financial AI: " + "😀" * 186)),
    ("longest command", _with(command="c" * 100_000)),
    ("image only", _with(command=None, image="i" * 500)),
    ("shaped", _with(gpus=8, gpus_per_node=4, topology="required", segment=1)),
    ("flags", _with(priority="low", preemptible=False, requeueable=False)),
    ("purpose padded", _with(purpose="  financial AI  ")),
    ("nulls", _with(gpus_per_node=None, segment=None, walltime_s=None, image=None)),
    ("every number at its bound", _with(segment=1_000_000, walltime_s=366 * 86_400)),
]


@pytest.mark.parametrize(("label", "body"), GOOD_BODIES, ids=[b[0] for b in GOOD_BODIES])
def test_accepted_bodies_answer_and_store_as_the_old_path(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser], label: str, body: bytes
) -> None:
    token = _token(demo)
    _warm(pair, token)
    short, old = pair.both(token, body)
    assert _answer(short) == _answer(old), (label, short.text, old.text)
    if short.status_code != 201:
        return
    ignored = {"id", "submitted_at", "updated_at", "name", "wait_reason"}
    a, b = short.json(), old.json()
    assert {k: v for k, v in a.items() if k not in ignored} == {
        k: v for k, v in b.items() if k not in ignored
    }, label
    shown = pair.short.get(f"/jobs/{a['id']}", headers={"Authorization": f"Bearer {token}"})
    assert dict(shown.json(), allocation=[]) == dict(a, allocation=[]), label
    _whole(ctx)


def test_a_connection_the_server_dropped_while_idle_is_not_a_refusal(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    """A database restart, a failover or an idle timeout ends the short path's idle
    connections; the old path pings a connection that lay idle and takes another, so the
    short path must not answer 503 for a connection that was dead before it was used."""
    token = _token(demo)
    _warm(pair, token)
    store = pair.short.app.state.submissions  # type: ignore[attr-defined]
    pids = [c.info.backend_pid for pool in store._pools.values() for c in pool._idle]
    assert pids
    with psycopg.connect(store.conninfo, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
        ).fetchone() != (0,):
            time.sleep(0.01)
    before = _rows(ctx)
    for _ in range(len(pids) + 1):
        short, _old = pair.both(token, json.dumps(JOB).encode())
        assert short.status_code == 201, short.text
    assert _rows(ctx)["Job"] == before["Job"] + 2 * (len(pids) + 1)
    _whole(ctx)


@pytest.mark.parametrize("table", ["audit_log", "scheduler_changes", "idempotency_keys"])
@pytest.mark.parametrize("errcode", ["check_violation", "raise_exception"])
def test_a_refused_audit_or_feed_row_leaves_no_job_behind(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser], table: str, errcode: str
) -> None:
    """The job, its audit record, its key record and its change-feed row are written
    together or not at all, on both paths, whatever the database refuses; never a 500."""
    token = _token(demo)
    _warm(pair, token)
    store = pair.short.app.state.submissions  # type: ignore[attr-defined]
    body = json.dumps(JOB).encode()
    before = _rows(ctx)
    with psycopg.connect(store.conninfo, autocommit=True) as admin:
        admin.execute(
            "CREATE FUNCTION attack_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION 'refused by the attack' USING ERRCODE = '{errcode}'; "
            "END $$"
        )
        admin.execute(
            f"CREATE TRIGGER attack_refuse BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION attack_refuse()"
        )
        try:
            for n in range(2):  # the kept row's one statement, then the read and insert
                key = {"Idempotency-Key": f"refused-{n}"}
                short, old = pair.both(token, body, key)
                assert short.status_code not in (201, 500), short.text
                assert _answer(short) == _answer(old), (short.text, old.text)
                assert "Traceback" not in short.text
        finally:
            admin.execute(f"DROP TRIGGER attack_refuse ON {table}")
            admin.execute("DROP FUNCTION attack_refuse()")
    assert _rows(ctx) == before
    _whole(ctx)


def test_one_key_raced_across_both_paths_makes_exactly_one_job(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    token = _token(demo)
    _warm(pair, token)
    before = _rows(ctx)
    auth = {"Authorization": f"Bearer {token}", "Idempotency-Key": "raced-across"}

    def post(n: int) -> Any:
        client, content = (pair.short, SHORT) if n % 2 else (pair.old, OLD)
        return client.post("/jobs", content=json.dumps(JOB), headers={**content, **auth})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(post, range(16)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    after = _rows(ctx)
    assert after["Job"] == before["Job"] + 1
    assert after["IdempotencyRecord"] == before["IdempotencyRecord"] + 1
    _whole(ctx)


def test_an_unreachable_database_is_a_503_on_the_short_path(
    ctx: ServiceContext, pair: Pair, demo: list[DemoUser]
) -> None:
    token = _token(demo)
    _warm(pair, token)
    store = pair.short.app.state.submissions  # type: ignore[attr-defined]
    pair.short.portal.call(store.close)  # type: ignore[union-attr]  # the next one is new
    store.conninfo = "host=127.0.0.1 port=1 user=postgres dbname=nowhere connect_timeout=2"
    before = _rows(ctx)
    short = pair.short.post(
        "/jobs", content=json.dumps(JOB), headers={**SHORT, "Authorization": f"Bearer {token}"}
    )
    assert _answer(short)[:2] == (503, "database_unavailable"), short.text
    assert "Traceback" not in short.text
    assert _rows(ctx) == before


def test_an_idle_connection_is_judged_past_descriptor_1023(ctx: ServiceContext) -> None:
    """A busy server holds more than 1024 descriptors: the check of an idle connection
    (``submission._ended``) must not refuse those (``select`` does), or every submission
    would open a new connection."""
    store = submission.for_url(ctx.db.url, 1)
    assert store is not None
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]

    async def judged() -> tuple[int, bool, bool]:
        conn = await psycopg.AsyncConnection.connect(store.conninfo, autocommit=True)
        alive = submission._ended(conn)
        with psycopg.connect(store.conninfo, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
        for _ in range(500):
            if submission._ended(conn):
                break
            await asyncio.sleep(0.01)
        ended = submission._ended(conn)
        fd = conn.fileno()
        await conn.close()
        return fd, alive, ended

    try:
        fd, alive, ended = asyncio.run(judged())
    finally:
        for descriptor in held:
            os.close(descriptor)
    assert fd > 1023
    assert (alive, ended) == (False, True)
