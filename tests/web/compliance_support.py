"""Helpers of the compliance pages' tests: a case that waits for officers, officers that are
(or are not) independent for four-eyes. Everything through the real services."""

from __future__ import annotations

from decimal import Decimal

from gpulease.compliance.case_graph import TENANT, DeclaredParty, DeclaredRole, DeclaredStake
from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.data import locate, shipped_lists
from gpulease.domain.access import Principal, Role
from gpulease.persistence.tables import KycCase
from gpulease.services import identity, kyc, screening_lists, tokens
from gpulease.services.context import ServiceContext

LISTED = "54th Research Institute of China"  # on the Entity List of the shipped CSL sample
HOSTILE = '<script>alert("pwned")</script> & <b>Sons</b>'  # a party name a tenant typed
TENANT_NAME = "Harbour Compute"


def import_csl(ctx: ServiceContext, officer: Principal) -> None:
    found = locate(shipped_lists() / "csl-legacy-sample.csv")
    assert found is not None
    screening_lists.import_list(ctx, officer, found, "csl-csv", label="test")


def waiting_case(ctx: ServiceContext, operator: Principal, officer: Principal) -> KycCase:
    """A new tenant's case with a listed 60 % owner, a director, and a 40 % owner whose name
    is markup; screened against the CSL sample: it waits for an officer (review: the
    affiliates rule is suspended on the demo's day)."""
    import_csl(ctx, officer)
    tenant = identity.create_tenant(ctx, operator, name=TENANT_NAME, country="SG", kind="lab")
    case = kyc.submit_case(
        ctx,
        operator,
        tenant.id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput(TENANT_NAME, countries=("SG",)),
            end_uses=("scientific-computing", "drug-discovery"),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
            parties=(
                DeclaredParty("inst", kyc.PartyInput(LISTED, countries=("CN",))),
                DeclaredParty("odd", kyc.PartyInput(HOSTILE, countries=("SG",))),
                DeclaredParty("ceo", kyc.PartyInput("Mei Tan", kind="person", countries=("SG",))),
            ),
            ownership=(
                DeclaredStake("inst", TENANT, Decimal(60)),
                DeclaredStake("odd", TENANT, Decimal("40.00")),
            ),
            control=(DeclaredRole("ceo", TENANT, "director"),),
        ),
    )
    assert case.verdict == "review"
    return case


def new_officer(ctx: ServiceContext, operator: Principal, name: str) -> tuple[Principal, str]:
    """An officer created by the operator admin, holding the token the admin was shown."""
    user, token = identity.create_user(
        ctx,
        operator,
        name=name,
        email=f"{name.lower().replace(' ', '.')}@op.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    return identity.principal_of(user), token


def own_token(ctx: ServiceContext, officer: Principal) -> str:
    """The officer issues itself a token and revokes those others issued: from then on only
    it can act as itself (four-eyes counts it independent). Its new token."""
    issued = tokens.issue(ctx, officer, officer.user_id, label="my own")
    for view in tokens.list_tokens(ctx, officer, officer.user_id):
        if view.created_by != officer.user_id and view.revoked_at is None:
            tokens.revoke(ctx, officer, view.id, "issued by my creator")
    return issued.token
