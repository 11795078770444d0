"""Over HTTP: records named by prefix or name, scoped to the caller; errors that say what to do."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
import test_authorization_walk as walk
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.persistence.tables import ApiToken, AuditRecord, Tenant, User
from gpulease.services import jobs, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.services.lookup import FULL_ID
from gpulease.services.scheduling import LiveScheduler

Api = Callable[[str | None], TestClient]


def _token(demo: list[DemoUser], email: str) -> str:
    return next(u.token for u in demo if u.email == email)


def _submit(ctx: ServiceContext, who: Principal, name: str = "", duration: float = 60) -> str:
    submission = jobs.JobSubmission(
        gpus=4, purpose="financial AI", command="true", name=name, duration_s=duration
    )
    return jobs.submit(ctx, who, submission).id


def _audit_count(ctx: ServiceContext) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


def _shape(body: dict[str, Any], ref: str) -> dict[str, Any]:
    """An error body with the reference typed taken out (to compare two answers)."""
    text = repr(body).replace(repr(ref)[1:-1], "<ref>")
    return {"text": text}


def test_prefix_and_name_work_for_own_records(
    api: Api, ctx: ServiceContext, demo: list[DemoUser], bank: Principal
) -> None:
    client = api(_token(demo, "admin@bank.example"))
    job = _submit(ctx, bank, name="risk-model-7")
    assert client.get(f"/jobs/{job[:10]}").json()["id"] == job
    assert client.get(f"/jobs/{job.removeprefix('job-')[:6]}").json()["id"] == job
    assert client.get("/jobs/Risk-Model-7").json()["id"] == job
    assert client.get(f"/jobs/{job[:10]}/logs").json()["job_id"] == job


def test_another_tenants_prefix_answers_like_a_random_one(
    api: Api, ctx: ServiceContext, demo: list[DemoUser], inftech: Principal
) -> None:
    """A tenant cannot tell another tenant's job, lease or tenant from one that does not exist."""
    theirs = _submit(ctx, inftech, name="secret-training")
    client = api(_token(demo, "admin@bank.example"))
    with ctx.db.transaction(write=False) as tx:
        inf = tx.all(tx.select(Tenant).where(Tenant.name == "INF Tech"))[0].id
    probes = [
        ("/jobs/{}", theirs[:10], f"job-{secrets.token_hex(3)}"),
        ("/jobs/{}", "secret-training", "secret-trainin"),
        ("/jobs/{}/cancel", theirs[:12], f"job-{secrets.token_hex(4)}"),
        ("/tenants/{}", "INF Tech", "INF Techs"),
        ("/tenants/{}", inf[:13], f"tenant-{secrets.token_hex(3)}"),
        ("/users?tenant_id={}", "inf tech", "inf tex"),
    ]
    for template, foreign, random in probes:
        method = client.post if template.endswith("cancel") else client.get
        seen = method(template.format(foreign))
        unseen = method(template.format(random))
        assert seen.status_code == unseen.status_code == 404, (template, seen.text)
        assert _shape(seen.json(), foreign) == _shape(unseen.json(), random), template


def test_an_ambiguous_prefix_lists_visible_candidates_and_says_type_more(
    api: Api, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    with ctx.db.transaction() as tx:
        for n in (1, 2):
            tx.add(
                Tenant(
                    id=f"tenant-bbbbbb00000{n}",
                    name=f"Twin {n}",
                    country="SG",
                    kind="lab",
                    created_at=ctx.now(),
                )
            )
    answer = api(_token(demo, "ops@indosat.example")).get("/tenants/tenant-bbbbbb")
    assert answer.status_code == 409
    body = answer.json()
    assert body["code"] == "ambiguous"
    assert "type more characters" in body["message"]
    assert [c["id"] for c in body["details"]["candidates"]] == [
        "tenant-bbbbbb000001",
        "tenant-bbbbbb000002",
    ]
    short = api(_token(demo, "ops@indosat.example")).get("/tenants/tenant-bbb")
    assert short.status_code == 422
    assert "at least 6 characters" in short.json()["message"]


def test_disclosure_report_by_tenant_name(api: Api, demo: list[DemoUser]) -> None:
    client = api(_token(demo, "compliance@indosat.example"))
    answer = client.get("/reports/tenants/INF Tech/disclosure")
    assert answer.status_code == 200, answer.text
    assert "INF Tech" in answer.text


def test_tenants_show_by_name_with_standing_and_kyc_state(
    api: Api, demo: list[DemoUser], bank: Principal
) -> None:
    shown = api(_token(demo, "ops@indosat.example")).get("/tenants/bank nusantara digital")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["id"], body["standing"], body["kyc_state"]) == (
        bank.tenant_id,
        "approved",
        "approved",
    )
    own = api(_token(demo, "admin@bank.example")).get("/tenants").json()
    assert [t["id"] for t in own] == [bank.tenant_id]
    assert "approval_reason" not in own[0]  # officers' words stay with officers


def test_me_names_the_user_and_tenant(api: Api, demo: list[DemoUser]) -> None:
    me = api(_token(demo, "admin@bank.example")).get("/me").json()
    assert me["tenant_name"] == "Bank Nusantara Digital"
    assert me["user_name"]
    staff = api(_token(demo, "ops@indosat.example")).get("/me").json()
    assert (staff["tenant_id"], staff["tenant_name"]) == (None, "")


def test_cancel_twice_is_harmless_and_an_ended_job_says_so(
    api: Api,
    ctx: ServiceContext,
    clock: ManualClock,
    demo: list[DemoUser],
    bank: Principal,
    scheduler: LiveScheduler,
) -> None:
    client = api(_token(demo, "admin@bank.example"))
    job = _submit(ctx, bank)
    first = client.post(f"/jobs/{job}/cancel", json={"reason": "not needed"})
    assert first.status_code == 200
    assert first.json()["state"] == "cancelled"
    written = _audit_count(ctx)
    again = client.post(f"/jobs/{job[:10]}/cancel", json={"reason": "twice"})
    assert again.status_code == 200, again.text
    assert again.json()["end_reason"] == first.json()["end_reason"]  # unchanged
    assert _audit_count(ctx) == written  # nothing happened, nothing recorded

    done = _submit(ctx, bank, duration=10)
    scheduler.tick()
    clock.advance(20)
    scheduler.tick()
    late = client.post(f"/jobs/{done}/cancel", json={})
    assert late.status_code == 409
    assert late.json()["code"] == "already_ended"
    assert late.json()["message"].startswith(f"job {done} already ended (succeeded at ")
    assert late.json()["message"].endswith("; nothing to do")


def test_lease_cancelled_twice_says_nothing_to_do(
    api: Api, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    client = api(_token(demo, "admin@bank.example"))
    start, end = ctx.now().replace(year=2027), ctx.now().replace(year=2027, month=12)
    lease = client.post(
        "/leases", json={"gpus": 8, "start": start.isoformat(), "end": end.isoformat()}
    ).json()
    assert client.post(f"/leases/{lease['id']}/cancel", json={"reason": "no"}).status_code == 200
    again = client.post(f"/leases/{lease['id'][:12]}/cancel", json={"reason": "no"})
    assert again.status_code == 409
    assert again.json()["message"] == f"lease {lease['id']} is already 'cancelled'; nothing to do"


def test_a_token_this_server_does_not_know_says_log_in_again(
    api: Api, ctx: ServiceContext, demo: list[DemoUser], operator: Principal
) -> None:
    unknown = api("glt_" + secrets.token_urlsafe(32)).get("/me")
    assert unknown.status_code == 401
    assert "does not know this token" in unknown.json()["message"]
    assert "gpulease login --url" in unknown.json()["message"]
    assert unknown.json()["details"] == {"reason": "unknown_token"}
    # a revoked token: the very same answer (whether a token existed is not said)
    member = _token(demo, "admin@university.example")
    with ctx.db.transaction(write=False) as tx:
        user = tx.all(select(User).where(User.email == "admin@university.example"))[0]
        (row,) = tx.all(select(ApiToken).where(ApiToken.user_id == user.id))
    tokens.revoke(ctx, operator, row.id, "test")
    revoked = api(member).get("/me")
    assert (revoked.status_code, revoked.json()) == (unknown.status_code, unknown.json())


def test_a_url_that_repeats_api_v1_says_use_the_base_url(api: Api) -> None:
    answer = api(None).get("/api/v1/me")  # the client's base is already .../api/v1
    assert answer.status_code == 404
    assert "use the server's base URL" in answer.json()["message"]
    other = api(None).get("/nonsense")
    assert "/api/v1/docs" in other.json()["message"]


def test_audit_filters_by_actor_record_and_since_in_pages(
    api: Api, ctx: ServiceContext, clock: ManualClock, demo: list[DemoUser], bank: Principal
) -> None:
    first = _submit(ctx, bank, name="audited")
    clock.advance(3600)
    since = ctx.now()
    second = _submit(ctx, bank, name="audited-later")
    client = api(_token(demo, "compliance@indosat.example"))
    by_bank = client.get("/audit", params={"actor": "admin@bank.example"}).json()
    assert {r["subject_id"] for r in by_bank} >= {first, second}
    assert {r["actor"] for r in by_bank} == {bank.user_id}
    of_first = client.get("/audit", params={"subject_id": first[:10]}).json()
    assert [r["subject_id"] for r in of_first] == [first]
    recent = client.get("/audit", params={"since": since.isoformat()}).json()
    assert second in {r["subject_id"] for r in recent}
    assert first not in {r["subject_id"] for r in recent}
    page = client.get("/audit", params={"limit": 2}).json()
    following = client.get("/audit", params={"limit": 2, "before_id": page[-1]["id"]}).json()
    assert [r["id"] for r in following] == [page[-1]["id"] - 1, page[-1]["id"] - 2]
    refused = api(_token(demo, "admin@bank.example")).get("/audit", params={"actor": "x"})
    assert refused.status_code == 403


def _prefixed(values: dict[str, str], *, random: bool) -> dict[str, str]:
    """Each generated id cut to its kind and 8 characters (or a random one of that form)."""
    out = {}
    for key, value in values.items():
        kind, _, rest = value.partition("-")
        if FULL_ID.match(value):
            out[key] = f"{kind}-{secrets.token_hex(4) if random else rest[:8]}"
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.TENANT_MEMBER])
def test_every_route_answers_a_foreign_prefix_like_a_random_one(
    role: Role, api: Api, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    """The authorization walk, with every record named by a prefix instead of its id."""
    tokens_by_role, records = walk._setup(ctx, demo)
    client = api(tokens_by_role[role])
    before = _audit_count(ctx)
    for (method, template), op in sorted(walk.OPERATIONS.items()):
        if op.action is None or "{" not in template:
            continue
        for target in walk._targets(template, op):
            real = records.values(target)
            foreign = template.format(**_prefixed(real, random=False))
            random = template.format(**_prefixed(real, random=True))
            seen_status, seen = walk._call(client, method, foreign, op, records)
            unseen_status, unseen = walk._call(client, method, random, op, records)
            where = f"{role.value} {method} {foreign}"
            assert seen_status in (403, 404), (where, seen)
            assert (seen_status, seen.get("code")) == (unseen_status, unseen.get("code")), where
            refs = [p for p in foreign.split("/") if p not in random.split("/")]
            randoms = [p for p in random.split("/") if p not in foreign.split("/")]
            text_seen, text_unseen = json.dumps(seen), json.dumps(unseen)
            for ref, other in zip(refs, randoms, strict=True):
                text_seen = text_seen.replace(ref, "<ref>")
                text_unseen = text_unseen.replace(other, "<ref>")
            assert text_seen == text_unseen, where
    assert _audit_count(ctx) == before
