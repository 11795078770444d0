"""Four-eyes on a real database (SQLite and PostgreSQL): the setting in force at the decision
counts, and two approvals count only when no one person could act as both officers (issue 14,
defect 6). The rule itself is tested pure at the end."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_kyc import case_of

from gpulease.compliance.four_eyes import Approver, refusal
from gpulease.domain.access import Principal, Role
from gpulease.domain.errors import Denied
from gpulease.domain.states import KycState
from gpulease.persistence.tables import AuditRecord, KycCase, KycDecision, Tenant
from gpulease.services import identity, kyc, report_disclosure, report_templates, tokens
from gpulease.services.context import ServiceContext


def _strict(ctx: ServiceContext) -> ServiceContext:
    """The same installation with four-eyes switched on (as after a restart with the setting)."""
    return ServiceContext(
        ctx.db, settings=ctx.settings.model_copy(update={"kyc_approvals": 2}), clock=ctx.clock
    )


def _officer(ctx: ServiceContext, admin: Principal, name: str) -> tuple[Principal, str]:
    user, token = identity.create_user(
        ctx,
        admin,
        name=name,
        email=f"{name.lower().replace(' ', '.')}@op.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    return identity.principal_of(user), token


def _own_token(ctx: ServiceContext, officer: Principal) -> None:
    """The officer issues itself a token and revokes every token someone else issued."""
    tokens.issue(ctx, officer, officer.user_id, label="my own")
    for view in tokens.list_tokens(ctx, officer, officer.user_id):
        if view.created_by != officer.user_id and view.revoked_at is None:
            tokens.revoke(ctx, officer, view.id, "issued by my creator")


def _pending_case(ctx: ServiceContext, admin: Principal, name: str) -> tuple[Tenant, KycCase]:
    tenant = identity.create_tenant(ctx, admin, name=name, country="SG", kind="ai-startup")
    case = kyc.submit_case(ctx, admin, tenant.id, case_of(name, "SG"))
    assert case.state == KycState.NEEDS_REVIEW
    return tenant, case


def _state(ctx: ServiceContext, case_id: str) -> str:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(KycCase, case_id, "kyc case").state


@pytest.fixture
def admin(ctx: ServiceContext) -> Principal:
    user, _token = identity.bootstrap_operator(ctx, name="Ops", email="ops@op.example")
    return identity.principal_of(user)


def test_four_eyes_switched_on_later_applies_to_pending_cases(
    ctx: ServiceContext, admin: Principal
) -> None:
    alice, _ = _officer(ctx, admin, "Alice Officer")
    bob, _ = _officer(ctx, admin, "Bob Officer")
    _own_token(ctx, alice)
    _own_token(ctx, bob)
    tenant, case = _pending_case(ctx, admin, "Waiting Works")  # submitted under one approval
    assert case.approvals_needed == 1

    strict = _strict(ctx)  # four-eyes switched on while the case waits
    after_one = kyc.decide_case(strict, alice, case.id, approve=True, reason="fine")
    assert after_one.state == KycState.NEEDS_REVIEW
    assert after_one.approvals_needed == 2
    assert "1 of 2 approvals" in after_one.state_reason
    with strict.db.transaction(write=False) as tx:
        assert tx.require(Tenant, tenant.id, "tenant").approval == "none"

    done = kyc.decide_case(strict, bob, case.id, approve=True, reason="fine too")
    assert done.state == KycState.APPROVED


def test_an_admin_holding_both_officers_tokens_is_one_pair_of_eyes(
    ctx: ServiceContext, admin: Principal
) -> None:
    strict = _strict(ctx)
    alice, _ = _officer(strict, admin, "Alice Officer")
    bob, _ = _officer(strict, admin, "Bob Officer")  # the admin saw both first tokens
    _tenant, case = _pending_case(strict, admin, "Careful Capital")
    kyc.decide_case(strict, alice, case.id, approve=True, reason="first look")
    with pytest.raises(Denied, match="could act as both") as refused:
        kyc.decide_case(strict, bob, case.id, approve=True, reason="second look")
    assert admin.user_id in str(refused.value)
    assert _state(strict, case.id) == KycState.NEEDS_REVIEW

    # Bob's credentials become his own: the admin's token of him revoked, his own issued
    _own_token(strict, bob)
    # ...but Alice approved while the admin held a live token of hers, and the admin mints
    # Bob a new token: the admin could act as both again
    tokens.issue(strict, admin, bob.user_id, label="spare")
    with pytest.raises(Denied, match="could act as both"):
        kyc.decide_case(strict, bob, case.id, approve=True, reason="second look")
    for view in tokens.list_tokens(strict, bob, bob.user_id):
        if view.label == "spare":
            tokens.revoke(strict, bob, view.id, "not mine")
    done = kyc.decide_case(strict, bob, case.id, approve=True, reason="second look")
    assert done.state == KycState.APPROVED

    with strict.db.transaction(write=False) as tx:
        decisions = tx.all(
            select(KycDecision).where(KycDecision.case_id == case.id).order_by(KycDecision.id)
        )
        audits = tx.all(
            select(AuditRecord).where(AuditRecord.action == "kyc.approve").order_by(AuditRecord.id)
        )
    assert [d.controllers for d in decisions] == [
        sorted([alice.user_id, admin.user_id]),
        [bob.user_id],
    ]
    assert [a.after["officer_created_by"] for a in audits] == [admin.user_id] * 2
    assert [a.after["approvals_needed"] for a in audits] == [2, 2]


def test_the_creator_is_recorded_and_shown(ctx: ServiceContext, admin: Principal) -> None:
    strict = _strict(ctx)
    alice, _ = _officer(strict, admin, "Alice Officer")
    bob, _ = _officer(strict, admin, "Bob Officer")
    _own_token(strict, alice)
    _own_token(strict, bob)
    tenant, case = _pending_case(strict, admin, "Shown Systems")
    kyc.decide_case(strict, alice, case.id, approve=True, reason="a")
    kyc.decide_case(strict, bob, case.id, approve=True, reason="b")

    users = {u.id: u for u in identity.list_users(strict, admin)}
    assert users[alice.user_id].created_by == admin.user_id
    assert users[admin.user_id].created_by == identity.BOOTSTRAP
    # a tenant user is told "the operator", never a staff id
    member, _ = identity.create_user(
        strict, admin, name="T", email="t@t.example", role=Role.TENANT_ADMIN, tenant_id=tenant.id
    )
    as_tenant = identity.principal_of(member)
    assert identity.creators_shown(strict, as_tenant, [member]) == {member.id: "the operator"}
    assert identity.creators_shown(strict, admin, [member]) == {member.id: admin.user_id}

    report = report_disclosure.end_user_disclosure(strict, admin, tenant.id)
    [shown] = [c for c in report["decisions"] if c["case_id"] == case.id]
    assert [(d["officer_id"], d["officer_created_by"]) for d in shown["decisions"]] == [
        (alice.user_id, admin.user_id),
        (bob.user_id, admin.user_id),
    ]
    assert shown["decisions"][1]["controllers"] == [bob.user_id]
    page = report_templates.render_html(report, "disclosure")
    assert f"account created by <code>{admin.user_id}</code>" in page


# ---------------------------------------------------------------------- the pure rule
def test_refusal_rule() -> None:
    alice = Approver.of("alice", "admin", ["alice"])
    bob = Approver.of("bob", "admin", ["bob"])
    assert refusal([alice], bob) is None  # same creator, own tokens: two people
    assert "already approved" in (refusal([alice], alice) or "")
    created_by_alice = Approver.of("carol", "alice", ["carol"])
    assert "created by alice" in (refusal([alice], created_by_alice) or "")
    assert "you created" in (refusal([created_by_alice], alice) or "")
    minted = Approver.of("dave", "admin", ["admin"])
    held = Approver.of("erin", "admin", ["erin", "admin"])
    assert "admin could act as both" in (refusal([held], minted) or "")
    # a token of one officer issued by the other: the issuer can act as both
    by_alice = Approver.of("frank", "admin", ["alice"])
    assert "could act as both" in (refusal([alice], by_alice) or "")
    assert "could act as both" in (refusal([by_alice], alice) or "")
    assert refusal([], alice) is None
