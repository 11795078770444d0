"""The officer's review queue and case dossier (``services.case_review``) on the demo, on SQLite
and PostgreSQL: what waits, what it holds, who may read it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpulease.compliance.case_graph import TENANT, DeclaredParty, DeclaredRole, DeclaredStake
from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.data import locate, shipped_lists
from gpulease.domain.access import Principal, Role
from gpulease.domain.errors import Denied, NotFound
from gpulease.persistence.tables import KycCase
from gpulease.services import case_review, identity, jobs, kyc, screening_lists
from gpulease.services.context import ServiceContext

LISTED = "54th Research Institute of China"  # on the Entity List of the shipped CSL sample


def waiting_case(ctx: ServiceContext, operator: Principal, officer: Principal) -> KycCase:
    """A tenant of its own with a listed 60 % owner (to review: the affiliates rule is
    suspended on the demo's day), screened against the shipped CSL sample."""
    found = locate(shipped_lists() / "csl-legacy-sample.csv")
    assert found is not None
    screening_lists.import_list(ctx, officer, found, "csl-csv", label="test")
    tenant = identity.create_tenant(ctx, operator, name="Harbour Compute", country="SG", kind="lab")
    return kyc.submit_case(
        ctx,
        operator,
        tenant.id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput("Harbour Compute", countries=("SG",)),
            end_uses=("scientific-computing",),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
            parties=(
                DeclaredParty("inst", kyc.PartyInput(LISTED, countries=("CN",))),
                DeclaredParty("ceo", kyc.PartyInput("Mei Tan", kind="person", countries=("SG",))),
            ),
            ownership=(DeclaredStake("inst", TENANT, Decimal(60)),),
            control=(DeclaredRole("ceo", TENANT, "director"),),
        ),
    )


def test_the_queue_and_the_dossier_for_an_officer(
    ctx: ServiceContext, operator: Principal, officer: Principal, inftech: Principal
) -> None:
    case = waiting_case(ctx, operator, officer)
    assert case.verdict == "review"
    outcomes = {p["name"]: p["outcome"] for p in (case.screening or {})["parties"]}
    assert outcomes == {"Harbour Compute": "clear", LISTED: "block", "Mei Tan": "clear"}
    held = jobs.submit(
        ctx,
        inftech,
        jobs.JobSubmission(gpus=8, purpose="drug-discovery: anthrax genomics", command="x"),
    )
    queue = case_review.review_queue(ctx, officer)
    assert [c.id for c in queue.cases] == [case.id]
    assert queue.tenant_names[case.tenant_id] == "Harbour Compute"
    assert queue.approvals == {case.id: 0}
    assert queue.purposes_visible
    assert [p.subject_id for p in queue.purposes] == [held.id]

    found = case_review.dossier(ctx, officer, case.id)
    assert found.tenant_name == "Harbour Compute"
    assert found.facts is not None
    assert {p.name for p in found.facts.parties} == {"Harbour Compute", LISTED, "Mei Tan"}
    assert [(e.percent, e.owned) for e in found.facts.ownership] == [(Decimal(60), case.party_id)]
    assert len(found.facts.control) == 1
    assert found.decisions == ()
    assert found.approvals_needed == ctx.settings.kyc_approvals

    kyc.decide_case(ctx, officer, case.id, approve=False, reason="listed owner")
    assert case_review.review_queue(ctx, officer).cases == ()
    [decision] = case_review.dossier(ctx, officer, case.id).decisions
    assert (decision.decision, decision.reason) == ("reject", "listed owner")


def test_operator_admins_read_cases_but_not_purposes_and_tenants_read_neither(
    ctx: ServiceContext, operator: Principal, officer: Principal, inftech: Principal
) -> None:
    case = waiting_case(ctx, operator, officer)
    queue = case_review.review_queue(ctx, operator)
    assert [c.id for c in queue.cases] == [case.id]
    assert not queue.purposes_visible
    assert queue.purposes == ()
    assert case_review.dossier(ctx, operator, case.id).facts is not None
    with pytest.raises(Denied):
        case_review.review_queue(ctx, inftech)
    with pytest.raises(NotFound):  # another tenant's case: not even its existence
        case_review.dossier(ctx, inftech, case.id)
    own = kyc.list_cases(ctx, inftech)[0]
    with pytest.raises(Denied):  # its own case: through the tenant's view only
        case_review.dossier(ctx, inftech, own.id)


def test_a_member_of_the_tenant_is_refused_the_queue(
    ctx: ServiceContext, operator: Principal, inftech: Principal
) -> None:
    user, _token = identity.create_user(
        ctx,
        inftech,
        name="member",
        email="m@inftech.example",
        role=Role.TENANT_MEMBER,
        tenant_id=inftech.tenant_id,
    )
    with pytest.raises(Denied):
        case_review.review_queue(ctx, identity.principal_of(user))
