"""A submission that names no site (issue 19's dispatch) on the event loop's short path and on
the session path: the same job, the same refusals, the same errors; and the caches the
short path decides on (a tenant's admission and the policy per site, pack set and day; the
sites' list) see a pack change, a change of the tenant's standing and a change of a site at
once.

Two apps serve one database: ``short`` as deployed (on PostgreSQL a common submission runs
on the event loop, ``services.lean_submit.submit_lean``) and ``long`` with its event-loop
statements removed, so every submission takes ``services.jobs.submit`` in a worker thread.
On SQLite both take the session path (the comparison then checks the session path against
itself, and the caches still have to see every change). A statement counter on the
session's engine tells which path a submission took.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from gpulease.api.app import create_app
from gpulease.compliance.admission import Standing
from gpulease.compliance.policy import parse_pack
from gpulease.domain.access import Principal
from gpulease.domain.states import NodeState
from gpulease.persistence.tables import AuditRecord, Job, Node, Site, Tenant
from gpulease.services import demo_sites, identity, inventory, kyc, sites, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

JOB = {"gpus": 8, "purpose": "financial AI", "command": "train", "name": "nightly"}
ADMIN = "admin@inftech.example"
MALAYSIA = "my-strategic-trade-2010@1"


def _token(demo: list[DemoUser], email: str = ADMIN) -> str:
    return next(u for u in demo if u.email == email).token


class Apps:
    """The app as served (``short``) and the same app on the session path alone (``long``),
    over the test's database; ``statements``: what the session's engine has sent."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.statements = 0
        settings = ctx.settings.model_copy(update={"run_scheduler": False})
        self._short = create_app(
            ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock, cache=ctx.cache)
        )
        self._long = create_app(ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock))
        self._clients: list[TestClient] = []

        def count(*_args: Any) -> None:
            self.statements += 1

        self._count = count
        event.listen(ctx.db.engine, "before_cursor_execute", count)

    def client(self, token: str, *, short: bool = True) -> TestClient:
        made = TestClient(self._short if short else self._long, base_url="http://testserver/api/v1")
        made.headers["Authorization"] = f"Bearer {token}"
        made.__enter__()
        if not short:
            made.app.state.submissions = None  # type: ignore[attr-defined]
        self._clients.append(made)
        return made

    @property
    def lean(self) -> bool:
        """Whether the served app has the event loop's statements (PostgreSQL)."""
        return self._short.state.submissions is not None

    def close(self) -> None:
        event.remove(self.ctx.db.engine, "before_cursor_execute", self._count)
        for made in self._clients:
            made.__exit__(None, None, None)


@pytest.fixture
def regional(ctx: ServiceContext, operator: Principal) -> list[str]:
    return demo_sites.add_regional_sites(ctx, operator)


@pytest.fixture
def apps(ctx: ServiceContext, regional: list[str]) -> Iterator[Apps]:
    made = Apps(ctx)
    try:
        yield made
    finally:
        made.close()


def _post(apps: Apps, client: TestClient, body: dict[str, Any]) -> tuple[int, Any, int]:
    """The answer's status and JSON, and how many statements the session path sent."""
    before = apps.statements
    answer = client.post("/jobs", json=body)
    return answer.status_code, answer.json(), apps.statements - before


def _rows(ctx: ServiceContext, job_id: str) -> dict[str, Any]:
    """The job's row and its audit record, without what differs by nature (the id)."""
    with ctx.db.transaction(write=False) as tx:
        job = tx.require(Job, job_id, "job")
        [trail] = tx.all(select(AuditRecord).where(AuditRecord.subject_id == job_id))
    columns = {c.key: getattr(job, c.key) for c in Job.__table__.columns}
    return {
        "job": columns | {"id": "JOB"},
        "audit": {"actor": trail.actor, "after": trail.after, "reason": trail.reason},
    }


def _passed(answer: dict[str, Any]) -> dict[str, str]:
    return {p["site_id"]: p["reason"] for p in answer["dispatch"]["passed"]}


def _short_and_long(
    apps: Apps, token: str, body: dict[str, Any]
) -> tuple[tuple[int, Any, int], tuple[int, Any, int]]:
    short = apps.client(token)
    long = apps.client(token, short=False)
    _post(apps, short, JOB)  # the tenant's row kept: the one-statement path from here on
    return _post(apps, short, body), _post(apps, long, body)


def test_a_site_less_submission_is_the_same_job_on_either_path(
    ctx: ServiceContext, apps: Apps, demo: list[DemoUser]
) -> None:
    (status, made, statements), (long_status, by_session, _) = _short_and_long(
        apps, _token(demo), JOB
    )
    assert (status, long_status) == (201, 201), (made, by_session)
    if apps.lean:
        assert statements == 0  # decided and written on the event loop, no session
    assert made["site_id"] == "jkt1"  # its lease is there
    assert made["dispatch"] == by_session["dispatch"]
    assert made["dispatch"]["asked"] == ["bkk1", "jhb1", "jkt1", "sgp1"]
    assert MALAYSIA in _passed(made)["jhb1"]  # INF Tech is refused in Johor, in words
    assert _rows(ctx, made["id"]) == _rows(ctx, by_session["id"])
    ignore = {"id", "created_by"}
    assert {k: v for k, v in made.items() if k not in ignore} == {
        k: v for k, v in by_session.items() if k not in ignore
    }


def test_a_named_set_of_sites_refused_everywhere_is_refused_alike(
    apps: Apps, demo: list[DemoUser]
) -> None:
    """Johor refuses the tenant, Singapore cannot hold 64 GPUs in one gang: 403 with every
    site's reason, on either path."""
    body = dict(JOB, gpus=64, topology="required", sites=["jhb1", "sgp1"])
    (status, refused, _), (long_status, by_session, _) = _short_and_long(apps, _token(demo), body)
    assert (status, long_status) == (403, 403), refused
    assert refused == by_session
    assert refused["code"] == "not_approved"
    assert set(refused["details"]["sites"]) == {"jhb1", "sgp1"}
    assert MALAYSIA in refused["details"]["sites"]["jhb1"]


@pytest.mark.parametrize(
    "body",
    [
        dict(JOB, gpus=0),
        dict(JOB, purpose="  "),
        dict(JOB, sites=["jkt1", "nowhere"]),
        dict(JOB, sites=["jkt1", "jkt1"]),
        dict(JOB, site_id="jkt1", sites=["sgp1"]),
        dict(JOB, priority="critical"),
        dict(JOB, gpus=144, topology="required"),
        {k: v for k, v in JOB.items() if k != "command"},
        dict(JOB, gpus="eight"),
    ],
    ids=[
        "no-gpus",
        "no-purpose",
        "unknown-site",
        "site-twice",
        "site-and-sites",
        "priority",
        "never-fits",
        "nothing-to-run",
        "not-a-number",
    ],
)
def test_a_bad_submission_gets_the_same_error_on_either_path(
    apps: Apps, demo: list[DemoUser], body: dict[str, Any]
) -> None:
    (status, error, _), (long_status, by_session, _) = _short_and_long(apps, _token(demo), body)
    assert status in (403, 422), error
    assert (status, error) == (long_status, by_session)


def _site_less(apps: Apps, client: TestClient) -> tuple[dict[str, Any], int]:
    status, made, statements = _post(apps, client, JOB)
    assert status == 201, made
    return made, statements


def test_a_pack_change_is_seen_at_once(
    ctx: ServiceContext, apps: Apps, demo: list[DemoUser]
) -> None:
    client = apps.client(_token(demo))
    _site_less(apps, client)
    before, statements = _site_less(apps, client)
    assert _passed(before)["sgp1"].startswith("admitted")
    if apps.lean:
        assert statements == 0
    singapore = parse_pack(
        """
id = "sg-test-rule"
version = "1"
title = "t"
source = "s"
scope = { countries = ["SG"] }
status = [{ state = "in_force", from = 2026-01-01 }]
[[rules]]
id = "no-cn"
kind = "tenant_countries"
title = "no tenants headquartered in China (test)"
countries = ["CN"]
""",
        origin="test",
    )
    ctx.cache["policy_set"] = kyc.policy_set(ctx).with_packs(singapore)  # a pack change
    after, statements = _site_less(apps, client)
    assert "sg-test-rule@1" in _passed(after)["sgp1"]
    if apps.lean:
        assert statements == 0  # decided on the event loop, under the new packs


def test_a_change_of_the_tenants_standing_is_seen_at_once(
    ctx: ServiceContext, apps: Apps, demo: list[DemoUser]
) -> None:
    client = apps.client(_token(demo))
    first, _ = _site_less(apps, client)
    assert MALAYSIA in _passed(first)["jhb1"]  # headquartered in China
    tenant_id = first["tenant_id"]
    with ctx.db.transaction() as tx:
        tenant = tx.require(Tenant, tenant_id, "tenant")
        tenant.country = "SG"  # a KYC correction: Johor's rule no longer applies
    moved, _ = _site_less(apps, client)
    assert _passed(moved)["jhb1"].startswith("admitted")
    again, statements = _site_less(apps, client)
    assert _passed(again)["jhb1"].startswith("admitted")
    if apps.lean:
        assert statements == 0
    with ctx.db.transaction() as tx:
        tx.require(Tenant, tenant_id, "tenant").approval = "suspended"
    status, refused, _ = _post(apps, client, JOB)
    assert status == 403, refused
    assert "not approved" in refused["message"]
    assert set(refused["details"]["sites"]) == {"bkk1", "jhb1", "jkt1", "sgp1"}


def test_the_sites_sums_kept_for_a_tenant_are_read_again_once_they_change(
    ctx: ServiceContext, apps: Apps, demo: list[DemoUser]
) -> None:
    """The short path decides on every site's sums as it last read them and inserts only
    while they still read so: Singapore's nodes going down changes its idle GPUs, and the
    next job is decided on that (one more statement, still no session)."""
    client = apps.client(_token(demo))
    _site_less(apps, client)
    first, _ = _site_less(apps, client)
    assert "starts now on idle capacity" in _passed(first)["sgp1"]
    with ctx.db.transaction() as tx:
        for node in tx.all(select(Node).where(Node.site_id == "sgp1")):
            node.state = NodeState.DOWN.value
    moved, statements = _site_less(apps, client)
    assert "waits for capacity to borrow" in _passed(moved)["sgp1"]
    if apps.lean:
        assert statements == 0


def test_a_change_of_a_site_is_seen_at_once(
    ctx: ServiceContext, apps: Apps, demo: list[DemoUser], operator: Principal
) -> None:
    client = apps.client(_token(demo))
    _site_less(apps, client)
    first, _ = _site_less(apps, client)
    assert _passed(first)["sgp1"].startswith("admitted")
    with ctx.db.transaction() as tx:  # Singapore's row now says Malaysia (its packs apply)
        tx.require(Site, "sgp1", "site").country = "MY"
    moved, _ = _site_less(apps, client)
    assert MALAYSIA in _passed(moved)["sgp1"]
    again, statements = _site_less(apps, client)
    assert MALAYSIA in _passed(again)["sgp1"]
    if apps.lean:
        assert statements == 0  # the sites' list read again, then kept
    elsewhere = ServiceContext(ctx.db, settings=ctx.settings, clock=ctx.clock)  # another process
    inventory.register_site(
        elsewhere,
        operator,
        site_id="hkg1",
        name="Hong Kong",
        country="HK",
        city="Hong Kong",
        hardware="hgx-8gpu",
        racks=1,
        serial_prefix="HKG",
        timezone="Asia/Hong_Kong",
    )
    added, _ = _site_less(apps, client)
    assert "hkg1" in added["dispatch"]["asked"]


def test_an_admission_kept_for_an_approval_is_not_used_past_its_expiry(
    ctx: ServiceContext, regional: list[str]
) -> None:
    now = ctx.now()
    [site] = [s for s in sites.cached_infos(ctx) if s.site_id == "sgp1"]
    standing = Standing("t1", "approved", now + timedelta(hours=1), ("financial-services-ai",))
    assert sites.refusal_at(ctx, standing, site, "financial AI", now) is None
    later = now + timedelta(hours=2)
    refused = sites.refusal_at(ctx, standing, site, "financial AI", later)
    assert refused is not None
    assert "not approved" in refused
    narrowed = replace(standing, end_uses=())
    assert sites.refusal_at(ctx, narrowed, site, "financial AI", now) is not None


def test_a_revoked_kept_token_is_refused_before_anything_else_is_said_or_counted(
    ctx: ServiceContext, apps: Apps, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _token(demo))
    issued = tokens.issue(ctx, admin, admin.user_id, label="revoked")
    client = apps.client(issued.token)
    assert client.post("/jobs", json=JOB).status_code == 201  # kept by the app
    tokens.revoke(ctx, admin, issued.row.id)
    limits = client.app.state.limits  # type: ignore[attr-defined]
    key = f"tenant {admin.tenant_id}"
    counted = limits.submissions.limit._windows[key].count
    for body in (
        dict(JOB, gpus="eight"),  # FastAPI would answer 422
        dict(JOB, priority="critical"),  # 403 for a tenant
        dict(JOB, gpus=144, topology="required"),  # 422: never fits
        dict(JOB, sites=["jhb1", "sgp1"], gpus=64, topology="required"),  # 403 at every site
        JOB,
    ):
        answer = client.post("/jobs", json=body)
        assert answer.status_code == 401, (body, answer.text)
    assert limits.submissions.limit._windows[key].count == counted  # nothing used up
