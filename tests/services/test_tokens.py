"""The token lifecycle and user disabling, on the real databases and through the API."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, Denied, InvalidRequest, NotFound, Unauthenticated
from gpulease.persistence.tables import AuditRecord
from gpulease.services import identity, jobs, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Api = Callable[[str | None], TestClient]


def _who(ctx: ServiceContext, demo: list[DemoUser], email: str) -> Principal:
    return identity.authenticate(ctx, next(u for u in demo if u.email == email).token)


def _member(ctx: ServiceContext, admin: Principal, email: str) -> tuple[Principal, str]:
    user, token = identity.create_user(
        ctx, admin, name="m", email=email, role=Role.TENANT_MEMBER, tenant_id=admin.tenant_id
    )
    return identity.principal_of(user), token


def _actions(ctx: ServiceContext, subject_id: str) -> list[str]:
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(
            select(AuditRecord).where(AuditRecord.subject_id == subject_id).order_by(AuditRecord.id)
        )
    return [r.action for r in rows]


def test_tokens_expire(ctx: ServiceContext, clock: ManualClock, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    issued = tokens.issue(ctx, admin, admin.user_id, label="ci", ttl_days=2)
    assert issued.row.expires_at == ctx.now() + timedelta(days=2)
    assert identity.authenticate(ctx, issued.token) == admin
    clock.advance(2 * 86400 - 1)
    assert identity.authenticate(ctx, issued.token) == admin
    clock.advance(1)
    with pytest.raises(Unauthenticated, match="expired"):
        identity.authenticate(ctx, issued.token)
    with pytest.raises(InvalidRequest, match="1 to"):
        tokens.issue(ctx, admin, admin.user_id, ttl_days=ctx.settings.token_ttl_days + 1)


def test_new_tokens_never_outlive_the_setting(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    _member_p, _token = _member(ctx, admin, "m1@bank.example")
    made = tokens.list_tokens(ctx, admin, _member_p.user_id)
    assert [t.expires_at for t in made] == [ctx.now() + timedelta(days=ctx.settings.token_ttl_days)]


def test_revocation_is_immediate_and_audited(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    member, member_token = _member(ctx, admin, "m2@bank.example")
    (row,) = tokens.list_tokens(ctx, member, member.user_id)
    assert identity.authenticate(ctx, member_token) == member
    tokens.revoke(ctx, admin, row.id, "left the team")
    with pytest.raises(Unauthenticated, match="revoked"):
        identity.authenticate(ctx, member_token)
    with pytest.raises(Conflict, match="already revoked"):
        tokens.revoke(ctx, admin, row.id)
    assert _actions(ctx, member.user_id) == ["token.issue", "user.create", "token.revoke"]
    (listed,) = tokens.list_tokens(ctx, admin, member.user_id)
    assert (listed.revoked_by, listed.revoked_at) == (admin.user_id, ctx.now())


def test_members_manage_only_their_own_tokens(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    one, _t1 = _member(ctx, admin, "one@bank.example")
    two, _t2 = _member(ctx, admin, "two@bank.example")
    tokens.issue(ctx, one, one.user_id)  # its own: fine
    with pytest.raises(Denied):
        tokens.issue(ctx, one, two.user_id)
    with pytest.raises(Denied):
        tokens.list_tokens(ctx, one, two.user_id)
    (two_row,) = tokens.list_tokens(ctx, admin, two.user_id)
    with pytest.raises(Denied):
        tokens.revoke(ctx, one, two_row.id)
    other_admin = _who(ctx, demo, "admin@university.example")
    with pytest.raises(NotFound):  # another tenant's: not even seen
        tokens.revoke(ctx, other_admin, two_row.id)


def test_live_tokens_are_capped(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    member, _token = _member(ctx, admin, "cap@bank.example")
    cap = ctx.settings.max_tokens_per_user
    for _ in range(cap - 1):  # the first token came with the user
        tokens.issue(ctx, member, member.user_id)
    with pytest.raises(Conflict, match="revoke one first"):
        tokens.issue(ctx, member, member.user_id)
    oldest = tokens.list_tokens(ctx, member, member.user_id)[-1]
    tokens.revoke(ctx, member, oldest.id)
    tokens.issue(ctx, member, member.user_id)  # room again


def test_disabled_users_stop_at_once(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    member, member_token = _member(ctx, admin, "gone@bank.example")
    identity.set_disabled(ctx, admin, member.user_id, disabled=True, reason="contract ended")
    # disabling revoked the token: it answers like any revoked or unknown token (whoever
    # holds a leaked one learns nothing of its user)
    with pytest.raises(Unauthenticated, match="revoked"):
        identity.authenticate(ctx, member_token)
    with pytest.raises(Conflict, match="disabled"):
        tokens.issue(ctx, admin, member.user_id)
    with pytest.raises(InvalidRequest, match="yourself"):
        identity.set_disabled(ctx, admin, admin.user_id, disabled=True, reason="oops")
    operator = _who(ctx, demo, "ops@indosat.example")
    with pytest.raises(NotFound):  # a tenant-admin cannot reach operator staff
        identity.set_disabled(ctx, admin, operator.user_id, disabled=True, reason="takeover")
    identity.set_disabled(ctx, admin, member.user_id, disabled=False, reason="rehired")
    with pytest.raises(Unauthenticated, match="revoked"):  # disabling revoked its tokens
        identity.authenticate(ctx, member_token)
    fresh = tokens.issue(ctx, admin, member.user_id)
    assert identity.authenticate(ctx, fresh.token) == member
    assert _actions(ctx, member.user_id)[-3:] == ["user.disable", "user.enable", "token.issue"]


def test_only_staff_enable_a_user_staff_disabled(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    operator = _who(ctx, demo, "ops@indosat.example")
    member, _token = _member(ctx, admin, "held@bank.example")
    identity.set_disabled(ctx, operator, member.user_id, disabled=True, reason="investigation")
    with pytest.raises(Denied, match="ask the operator"):
        identity.set_disabled(ctx, admin, member.user_id, disabled=False, reason="we disagree")
    identity.set_disabled(ctx, operator, member.user_id, disabled=False, reason="cleared")


def test_only_operator_admins_create_staff(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    officer = _who(ctx, demo, "compliance@indosat.example")
    for actor in (admin, officer):
        with pytest.raises(Denied):
            identity.create_user(
                ctx,
                actor,
                name="x",
                email=f"x-{actor.role.value}@example.com",
                role=Role.OPERATOR_ADMIN,
                tenant_id=None,
            )


def test_email_clash_names_nobody(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    with pytest.raises(Conflict) as caught:
        _member(ctx, admin, "admin@inftech.example")
    assert "inftech" not in str(caught.value.details)
    assert "user-" not in caught.value.message


@pytest.mark.parametrize(
    ("email", "priority", "allowed"),
    [
        ("member", "critical", False),
        ("member", "high", False),
        ("member", "normal", True),
        ("admin@bank.example", "critical", False),
        ("admin@bank.example", "high", True),
        ("ops@indosat.example", "critical", True),
    ],
)
def test_priority_classes_follow_the_roles_setting(
    ctx: ServiceContext, demo: list[DemoUser], email: str, priority: str, allowed: bool
) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    actor = (
        _member(ctx, admin, "p@bank.example")[0] if email == "member" else _who(ctx, demo, email)
    )
    sub = jobs.JobSubmission(
        gpus=4,
        purpose="financial AI: credit risk models",
        command="true",
        priority=priority,
        tenant_id=admin.tenant_id,
    )
    if allowed:
        assert jobs.submit(ctx, actor, sub).priority == priority
    else:
        with pytest.raises(Denied, match="lower class"):
            jobs.submit(ctx, actor, sub)


def test_tenants_read_the_operator_as_the_operator(
    ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    admin = _who(ctx, demo, "admin@bank.example")
    operator = _who(ctx, demo, "ops@indosat.example")
    sub = jobs.JobSubmission(gpus=4, purpose="financial AI: risk", command="true")
    job = jobs.submit(ctx, admin, sub)
    cancelled = jobs.cancel(ctx, operator, job.id)
    assert cancelled.end_reason == "cancelled by the operator"
    assert operator.user_id not in cancelled.end_reason


def test_token_endpoints(api: Api, demo: list[DemoUser]) -> None:
    admin = next(u for u in demo if u.email == "admin@bank.example")
    client = api(admin.token)
    me = client.get("/me").json()["user_id"]
    made = client.post(f"/users/{me}/tokens", json={"label": "laptop", "ttl_days": 7})
    assert made.status_code == 201, made.text
    new = made.json()
    listed = client.get(f"/users/{me}/tokens").json()
    assert {t["label"] for t in listed} >= {"laptop"}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    assert api(new["token"]).get("/me").status_code == 200
    assert client.post(f"/tokens/{new['id']}/revoke", json={"reason": "lost"}).status_code == 200
    refused = api(new["token"]).get("/me")
    assert refused.status_code == 401
    assert "revoked" in refused.json()["message"]
    assert client.post(f"/users/{me}/tokens", json={"ttl_days": True}).status_code == 422
