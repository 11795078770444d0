"""The KYC procedure on a real database (SQLite and PostgreSQL): the reference case end to
end, the same steps for every tenant, ownership under the 50 % rules, four-eyes, re-screening
after a list import (suspension of leases and jobs, resumption), expiry, policy dates, and the
demo screened against the real lists."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gpulease.compliance.case_graph import TENANT, DeclaredParty, DeclaredStake
from gpulease.compliance.model import Address
from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.data import read_bytes, shipped_lists
from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, Denied, InvalidRequest
from gpulease.domain.states import KYC_TRANSITIONS, JobState, KycState, LeaseState
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.tables import (
    AuditRecord,
    Job,
    KycCase,
    KycDecision,
    Lease,
    ListSnapshotRow,
    OwnershipRow,
    PartyRow,
    Tenant,
)
from gpulease.services import demo as demo_service
from gpulease.services import (
    identity,
    jobs,
    kyc,
    kyc_screening,
    leases,
    rescreening,
    screening_lists,
    tokens,
)
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from support.lists import entity_list_csv

LISTS = shipped_lists()
CSL_SAMPLE = LISTS / "csl-legacy-sample.csv.xz"
# Entity List entries of the CSL legacy sample (exact names and countries)
EL_CN = ("54th Research Institute of China", "CN")
EL_HK = ("32 Group China Ltd.", "HK")
SDN_US = ("200G PSA HOLDINGS LLC", "US")  # an SDN entry of the same sample
SUSPENDED_DAY = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)  # affiliates rule suspended
AFFILIATES_BACK = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # in force again
FULL_ID = dict.fromkeys(CUSTOMER_FIELDS, "given")


# ------------------------------------------------------------------------------ helpers
@pytest.fixture
def staff(ctx: ServiceContext) -> tuple[Principal, Principal]:
    """An operator and a compliance officer in an empty installation (no demo)."""
    admin, _ = identity.bootstrap_operator(ctx, name="Ops", email="ops@op.example")
    operator = identity.principal_of(admin)
    officer, _ = identity.create_user(
        ctx,
        operator,
        name="Compliance",
        email="kyc@op.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    return operator, identity.principal_of(officer)


def new_tenant(
    ctx: ServiceContext, operator: Principal, name: str, country: str
) -> tuple[Tenant, Principal]:
    tenant = identity.create_tenant(ctx, operator, name=name, country=country, kind="ai-startup")
    slug = "".join(ch for ch in name.lower() if ch.isalnum())
    _user, token = identity.create_user(
        ctx,
        operator,
        name=f"{name} admin",
        email=f"admin@{slug}.example",
        role=Role.TENANT_ADMIN,
        tenant_id=tenant.id,
    )
    return tenant, identity.authenticate(ctx, token)


def case_of(
    name: str,
    country: str,
    owners: tuple[tuple[str, str, Decimal | int], ...] = (),
    end_uses: tuple[str, ...] = ("drug-discovery",),
    statement: str = "",
) -> kyc.CaseSubmission:
    return kyc.CaseSubmission(
        organization=kyc.PartyInput(name, countries=(country,)),
        end_uses=end_uses,
        end_use_statement=statement,
        owners=tuple(
            kyc.OwnerInput(f"owner{i}", kyc.PartyInput(n, countries=(c,)), "tenant", Decimal(p))
            for i, (n, c, p) in enumerate(owners)
        ),
        identification=dict(FULL_ID),
    )


def tenant_row(ctx: ServiceContext, tenant_id: str) -> Tenant:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Tenant, tenant_id, "tenant")


def case_row(ctx: ServiceContext, case_id: str) -> KycCase:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(KycCase, case_id, "kyc case")


def lease_row(ctx: ServiceContext, lease_id: str) -> Lease:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Lease, lease_id, "lease")


def job_row(ctx: ServiceContext, job_id: str) -> Job:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Job, job_id, "job")


def tenant_audit(ctx: ServiceContext, tenant_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(AuditRecord)
            .where(AuditRecord.subject_type == "tenant", AuditRecord.subject_id == tenant_id)
            .order_by(AuditRecord.id)
        )


def kyc_actions(ctx: ServiceContext, tenant_id: str) -> list[str]:
    return [r.action for r in tenant_audit(ctx, tenant_id) if r.action.startswith("kyc.")]


def snapshot_count(ctx: ServiceContext) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(ListSnapshotRow)) or 0)


def lease_of(ctx: ServiceContext, tenant_id: str) -> Lease:
    with ctx.db.transaction(write=False) as tx:
        [lease] = tx.all(select(Lease).where(Lease.tenant_id == tenant_id))
    return lease


def write_csl(path: Path, rows: list[tuple[str, str]], *, current: bool = False) -> Path:
    """A CSL CSV (legacy 28 columns, or current 29 with ``_id``) of Entity List rows."""
    return entity_list_csv(
        path,
        (
            {
                "name": name,
                "addresses": f"1 Test Road, Jakarta, {country}",
                "federal_register_notice": "91 FR 12345",
                "start_date": "2026-03-01",
                "license_requirement": "For all items subject to the EAR.",
                "license_policy": "Presumption of denial.",
            }
            | ({"_id": f"test-el-{i}"} if current else {})
            for i, (name, country) in enumerate(rows)
        ),
        with_ids=current,
    )


def advance_to(clock: ManualClock, moment: datetime) -> None:
    clock.advance((moment - clock.now()).total_seconds())


# ------------------------------------------------------------- 1. the reference case
def test_reference_case_end_to_end(
    ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    imported = screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv", label="sample")
    tenant, admin = new_tenant(ctx, operator, "Shanghai Inference Lab", "CN")
    # before any case: no work at all
    with pytest.raises(kyc.NotApproved) as refused:
        jobs.submit(ctx, admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="x"))
    assert refused.value.code == "not_approved"
    assert "no KYC case has been approved" in str(refused.value)

    submission = kyc.CaseSubmission(
        organization=kyc.PartyInput(
            "Shanghai Inference Lab",
            aliases=("SIL Technology (Shanghai) Co., Ltd.",),
            countries=("CN",),
            identifiers=(("registration", "SH-2021-0042"),),
        ),
        end_uses=("financial-services-ai", "health-research", "drug-discovery"),
        end_use_statement="training models for financial AI and for health research "
        "including drug discovery",
        owners=(
            kyc.OwnerInput(
                "founder",
                kyc.PartyInput("Lab founder", kind="person", countries=("US",)),
                "tenant",
                Decimal(60),
            ),
            kyc.OwnerInput(
                "esop",
                kyc.PartyInput("Lab employee platform", countries=("CN",)),
                "tenant",
                Decimal(40),
            ),
        ),
        officers=(kyc.OfficerInput(kyc.PartyInput("Lab founder", kind="person"), role="director"),),
        identification=dict(FULL_ID),
    )
    case = kyc.submit_case(ctx, admin, tenant.id, submission)
    assert case.state == KycState.NEEDS_REVIEW
    assert case.round == 1
    assert kyc_actions(ctx, tenant.id) == ["kyc.submit", "kyc.screening", "kyc.needs_review"]
    # the case records the policy packs in force on the day and the list snapshots used
    assert case.policy_versions == ["baseline@1", "iaas-customer-identification@1"]
    assert case.lists_screened == [imported.snapshot.id]
    assert case.screening is not None
    assert case.screening["foreign"] is True
    assert case.screening["missing_fields"] == []
    assert case.screening["as_of"] == "2026-03-02"
    assert {p["name"] for p in case.screening["parties"]} >= {
        "Shanghai Inference Lab",
        "Lab founder",
        "Lab employee platform",
    }
    # the CN-headquartered owner is a red flag: review, not block
    assert case.verdict == "review"
    assert any("Lab employee platform" in r and "high-risk" in r for r in case.screening["reasons"])
    screened = next(r for r in tenant_audit(ctx, tenant.id) if r.action == "kyc.needs_review")
    assert screened.after is not None
    assert screened.after["lists"] == [imported.snapshot.id]
    assert "baseline@1" in screened.after["policy"]
    assert "screening verdict review" in screened.reason

    # not approved yet: the tenant still cannot submit work
    with pytest.raises(kyc.NotApproved):
        jobs.submit(ctx, admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="x"))
    # the officer may only narrow to declared end uses
    with pytest.raises(InvalidRequest, match="education"):
        kyc.decide_case(
            ctx, officer, case.id, approve=True, reason="verified", end_uses=["education"]
        )
    with pytest.raises(InvalidRequest):
        kyc.decide_case(ctx, officer, case.id, approve=True, reason="  ")
    approved = kyc.decide_case(
        ctx,
        officer,
        case.id,
        approve=True,
        reason="owners and end uses verified; health research left out",
        end_uses=["financial-services-ai", "drug-discovery"],
    )
    assert approved.state == KycState.APPROVED
    assert approved.expires_at == ctx.now() + timedelta(days=ctx.settings.kyc_validity_days)
    assert kyc_actions(ctx, tenant.id) == [
        "kyc.submit",
        "kyc.screening",
        "kyc.needs_review",
        "kyc.approve",
        "kyc.approved",
    ]
    stored = tenant_row(ctx, tenant.id)
    assert stored.approval == "approved"
    assert stored.approved_end_uses == ["financial-services-ai", "drug-discovery"]
    assert stored.approval_case_id == case.id
    with ctx.db.transaction(write=False) as tx:
        [decision] = tx.all(select(KycDecision).where(KycDecision.case_id == case.id))
    assert (decision.officer_id, decision.decision) == (officer.user_id, "approve")
    assert decision.screening_round == 1

    # health research was declared but not approved: refused, saying why
    with pytest.raises(kyc.NotApproved) as outside:
        jobs.submit(
            ctx, admin, jobs.JobSubmission(gpus=8, purpose="health-research", command="fold")
        )
    assert outside.value.code == "not_approved"
    assert "health-research" in str(outside.value)
    assert "approved" in str(outside.value)
    job = jobs.submit(
        ctx, admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="dock")
    )
    assert job.state == JobState.QUEUED
    assert job.purpose == "drug discovery"


# ------------------------------------------------------- 2. no path skips the steps
def test_same_steps_for_domestic_and_foreign_tenants(
    ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    sequences = {}
    for name, country in (("Jakarta Robotics", "ID"), ("Hangzhou Vision", "CN"), ("Ohio ML", "US")):
        tenant, admin = new_tenant(ctx, operator, name, country)
        case = kyc.submit_case(ctx, admin, tenant.id, case_of(name, country))
        assert case.screening is not None
        assert case.screening["foreign"] is (country != "ID")
        kyc.decide_case(ctx, officer, case.id, approve=True, reason="verified")
        assert tenant_row(ctx, tenant.id).approval == "approved"
        sequences[country] = kyc_actions(ctx, tenant.id)
    assert sequences["ID"] == [
        "kyc.submit",
        "kyc.screening",
        "kyc.needs_review",
        "kyc.approve",
        "kyc.approved",
    ]
    assert sequences["CN"] == sequences["ID"] == sequences["US"]
    # the transition table has no shortcut: approval only from needs_review
    assert [s for s, targets in KYC_TRANSITIONS.items() if KycState.APPROVED in targets] == [
        KycState.NEEDS_REVIEW
    ]


def test_foreign_customer_without_identification_cannot_be_approved(
    ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    tenant, admin = new_tenant(ctx, operator, "Sparse Data", "US")
    partial = kyc.CaseSubmission(
        organization=kyc.PartyInput("Sparse Data", countries=("US",)),
        end_uses=("drug-discovery",),
        identification={"name": "Sparse Data", "address": "Ohio"},
    )
    case = kyc.submit_case(ctx, admin, tenant.id, partial)
    assert case.verdict == "review"
    assert case.screening is not None
    assert "payment_means" in case.screening["missing_fields"]
    with pytest.raises(Denied, match="payment_means"):
        kyc.decide_case(ctx, officer, case.id, approve=True, reason="looks fine")
    assert case_row(ctx, case.id).state == KycState.NEEDS_REVIEW


def test_unapproved_tenant_gets_no_work_and_only_officers_decide(
    ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    tenant, admin = new_tenant(ctx, operator, "Pending Labs", "SG")
    with pytest.raises(kyc.NotApproved) as refused:
        jobs.submit(ctx, admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="x"))
    assert refused.value.code == "not_approved"
    # a lease may be requested and approved, but it does not activate while not approved
    start = ctx.now()
    lease = leases.request_lease(
        ctx,
        admin,
        leases.LeaseRequest(
            site_id=demo_service.SITE_ID, start=start, end=start + timedelta(days=30), gpus=64
        ),
    )
    leases.decide(ctx, operator, lease.id, LeaseState.APPROVED, "capacity ok")
    leases.tick(ctx, ctx.now())
    held = lease_row(ctx, lease.id)
    assert held.state == LeaseState.SCHEDULED
    assert "the tenant is not approved" in held.state_reason
    assert "no KYC case has been approved" in held.state_reason

    case = kyc.submit_case(ctx, admin, tenant.id, case_of("Pending Labs", "SG"))
    with pytest.raises(Conflict):  # one open case at a time
        kyc.submit_case(ctx, admin, tenant.id, case_of("Pending Labs", "SG"))
    for who in (operator, admin):
        with pytest.raises(Denied, match="compliance-officer"):
            kyc.decide_case(ctx, who, case.id, approve=True, reason="self-approval")
    assert case_row(ctx, case.id).state == KycState.NEEDS_REVIEW
    leases.tick(ctx, ctx.now())
    assert lease_row(ctx, lease.id).state == LeaseState.SCHEDULED

    kyc.decide_case(ctx, officer, case.id, approve=True, reason="verified")
    with pytest.raises(Conflict, match="approved, not needs_review"):
        kyc.decide_case(ctx, officer, case.id, approve=True, reason="again")
    with pytest.raises(Conflict):
        kyc.decide_case(ctx, officer, case.id, approve=False, reason="changed my mind")
    leases.tick(ctx, ctx.now())
    assert lease_row(ctx, lease.id).state == LeaseState.ACTIVE
    jobs.submit(ctx, admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="x"))

    # a rejection is final for its case and leaves the tenant without standing
    other, other_admin = new_tenant(ctx, operator, "Rejected Labs", "SG")
    rejected = kyc.submit_case(ctx, other_admin, other.id, case_of("Rejected Labs", "SG"))
    kyc.decide_case(ctx, officer, rejected.id, approve=False, reason="documents forged")
    assert case_row(ctx, rejected.id).state == KycState.REJECTED
    assert tenant_row(ctx, other.id).approval == "rejected"
    with pytest.raises(Conflict, match="rejected"):
        kyc.decide_case(ctx, officer, rejected.id, approve=True, reason="second thoughts")
    # the tenant is told it was rejected; the officer's reason stays with the officers
    assert "documents forged" in tenant_row(ctx, other.id).approval_reason
    with pytest.raises(kyc.NotApproved, match="rejected by the compliance team") as refused:
        jobs.submit(
            ctx, other_admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="x")
        )
    assert "documents forged" not in refused.value.message


def test_owner_restricted_by_the_fifty_percent_rule_blocks_the_case(
    ctx: ServiceContext, clock: ManualClock, staff: tuple[Principal, Principal]
) -> None:
    operator, officer = staff
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    advance_to(clock, AFFILIATES_BACK)  # the affiliates rule counts Entity List owners
    tenant, admin = new_tenant(ctx, operator, "Front Company", "SG")
    case = kyc.submit_case(
        ctx,
        admin,
        tenant.id,
        case_of("Front Company", "SG", ((*EL_CN, 60), ("Local partner", "SG", 40))),
    )
    assert case.state == KycState.NEEDS_REVIEW  # even a block goes before an officer
    assert case.verdict == "block"
    assert "us-affiliates-rule-2025@1" in case.policy_versions
    with pytest.raises(Denied, match="cannot approve a blocked case") as denied:
        kyc.decide_case(ctx, officer, case.id, approve=True, reason="looks fine")
    message = str(denied.value)
    assert "54th Research Institute of China" in message  # the chain: who, how much, why
    assert "60 %" in message
    assert "entity_list" in message
    assert "affiliates-50" in message
    assert case_row(ctx, case.id).state == KycState.NEEDS_REVIEW
    assert tenant_row(ctx, tenant.id).approval == "none"
    kyc.decide_case(ctx, officer, case.id, approve=False, reason="owned by a listed entity")
    assert case_row(ctx, case.id).state == KycState.REJECTED

    # an SDN owner is caught by the OFAC rule of the baseline pack on any day
    sdn_owned, sdn_admin = new_tenant(ctx, operator, "Miami Shell", "US")
    blocked = kyc.submit_case(
        ctx, sdn_admin, sdn_owned.id, case_of("Miami Shell", "US", ((*SDN_US, 60),))
    )
    assert blocked.verdict == "block"
    assert blocked.screening is not None
    assert any(
        "ofac-50" in r and "200G PSA HOLDINGS LLC" in r for r in blocked.screening["reasons"]
    )


# ------------------------------------------------------------- 3. one-third owner
def test_one_third_listed_owner_is_a_flag_not_a_block(
    ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    tenant, admin = new_tenant(ctx, operator, "Server Builder", "US")
    case = kyc.submit_case(
        ctx,
        admin,
        tenant.id,
        case_of(
            "Server Builder",
            "US",
            ((*EL_CN, Decimal(100) / 3), ("Valley Founders", "US", Decimal(200) / 3)),
        ),
    )
    assert case.verdict == "review"
    assert case.screening is not None
    assert case.screening["ownership"]["verdict"] == "flagged"
    flags = [f for f in case.screening["ownership"]["flags"] if f["kind"] == "minority_stake"]
    assert len(flags) == 1
    assert any(
        "54th Research Institute of China" in r and "33.33 %" in r and "red-flag" in r
        for r in case.screening["reasons"]
    )
    approved = kyc.decide_case(
        ctx, officer, case.id, approve=True, reason="minority stake reviewed; no control"
    )
    assert approved.state == KycState.APPROVED
    assert tenant_row(ctx, tenant.id).approval == "approved"


# ------------------------------------------------------------------ 4. joint venture
def test_joint_venture_of_two_listed_parties_is_blocked(
    ctx: ServiceContext, clock: ManualClock, staff: tuple[Principal, Principal]
) -> None:
    operator, officer = staff
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    advance_to(clock, AFFILIATES_BACK)
    verdicts = {}
    for name, owners in (
        ("Even JV", ((*EL_CN, 50), (*EL_HK, 50))),
        # neither stake alone reaches 50 %: blocked only in the aggregate
        ("Aggregate JV", ((*EL_CN, 30), (*EL_HK, 30), ("Clean Investor", "SG", 40))),
    ):
        tenant, admin = new_tenant(ctx, operator, name, "SG")
        case = kyc.submit_case(ctx, admin, tenant.id, case_of(name, "SG", owners))
        assert case.screening is not None
        verdicts[name] = case.verdict
        assert case.screening["ownership"]["verdict"] == "restricted"
        with pytest.raises(Denied, match=r"32 Group China Ltd\.") as denied:
            kyc.decide_case(ctx, officer, case.id, approve=True, reason="fine")
        assert "54th Research Institute of China" in str(denied.value)
    assert verdicts == {"Even JV": "block", "Aggregate JV": "block"}


# ------------------------------------------------------------------- 5. four-eyes
def test_four_eyes_needs_two_distinct_officers(
    ctx: ServiceContext, operator: Principal, officer: Principal
) -> None:
    strict = ServiceContext(
        ctx.db, settings=ctx.settings.model_copy(update={"kyc_approvals": 2}), clock=ctx.clock
    )
    second_user, token = identity.create_user(
        strict,
        operator,
        name="Second officer",
        email="second@indosat.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    second = identity.authenticate(strict, token)
    # the operator saw both officers' first tokens: each holds only its own before four-eyes
    # can count them as two people (tests/services/test_kyc_four_eyes.py)
    for person in (officer, second):
        tokens.issue(strict, person, person.user_id, label="my own")
        for view in tokens.list_tokens(strict, person, person.user_id):
            if view.created_by != person.user_id and view.revoked_at is None:
                tokens.revoke(strict, person, view.id, "issued by the operator")
    tenant, admin = new_tenant(strict, operator, "Careful Capital", "SG")
    case = kyc.submit_case(strict, admin, tenant.id, case_of("Careful Capital", "SG"))
    assert case.approvals_needed == 2

    first = kyc.decide_case(strict, officer, case.id, approve=True, reason="first look: fine")
    assert first.state == KycState.NEEDS_REVIEW
    assert "1 of 2 approvals" in first.state_reason
    assert tenant_row(strict, tenant.id).approval == "none"
    with pytest.raises(Conflict, match="four-eyes"):
        kyc.decide_case(strict, officer, case.id, approve=True, reason="me again")
    assert case_row(strict, case.id).state == KycState.NEEDS_REVIEW

    done = kyc.decide_case(strict, second, case.id, approve=True, reason="second look: fine")
    assert done.state == KycState.APPROVED
    assert tenant_row(strict, tenant.id).approval == "approved"
    with strict.db.transaction(write=False) as tx:
        decisions = tx.all(
            select(KycDecision).where(KycDecision.case_id == case.id).order_by(KycDecision.id)
        )
    assert [d.officer_id for d in decisions] == [officer.user_id, second_user.id]
    assert kyc_actions(strict, tenant.id) == [
        "kyc.submit",
        "kyc.screening",
        "kyc.needs_review",
        "kyc.approve",
        "kyc.approve",
        "kyc.approved",
    ]


# ----------------------------------------------------------------- 6. re-screening
def test_list_import_rescreens_suspends_and_reapproval_resumes(
    ctx: ServiceContext,
    tmp_path: Path,
    clock: ManualClock,
    operator: Principal,
    officer: Principal,
    bank: Principal,
    scheduler: LiveScheduler,
    executor: SimulatedExecutor,
) -> None:
    assert bank.tenant_id is not None
    live = scheduler
    assert live.ctx.settings.suspended_running == "drain"
    lease = lease_of(ctx, bank.tenant_id)
    assert lease.state == LeaseState.ACTIVE
    case_id = tenant_row(ctx, bank.tenant_id).approval_case_id
    assert case_id is not None

    # approved against lists that do not name its owner: unchanged
    first = screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv", label="sample")
    outcomes = {
        r.tenant_id: r.outcome for r in rescreening.rescreen_all(ctx, officer.user_id, "import")
    }
    assert outcomes[bank.tenant_id] == "unchanged"
    assert case_row(ctx, case_id).lists_screened == [first.snapshot.id]

    running = jobs.submit(
        ctx,
        bank,
        jobs.JobSubmission(
            gpus=8, purpose="financial AI: credit risk", command="x", duration_s=3600
        ),
    )
    live.tick()
    assert job_row(ctx, running.id).state == JobState.RUNNING
    queued = jobs.submit(
        ctx,
        bank,
        jobs.JobSubmission(gpus=8, purpose="financial AI: fraud", command="y", duration_s=3600),
    )

    # a malformed file is refused with its line and reason; nothing is written
    before = snapshot_count(ctx)
    broken = tmp_path / "broken.csv"
    broken.write_bytes(read_bytes(CSL_SAMPLE)[:300])
    with pytest.raises(InvalidRequest) as bad:
        screening_lists.import_list(ctx, officer, broken, "csl-csv")
    assert bad.value.code == "invalid_list"
    assert "line" in str(bad.value)
    assert snapshot_count(ctx) == before
    # the same file twice is refused, naming the earlier snapshot
    with pytest.raises(Conflict, match=first.snapshot.id):
        screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    assert snapshot_count(ctx) == before

    # a new snapshot names the bank's owner on the Entity List
    clock.advance(60)
    listed = write_csl(tmp_path / "csl-new.csv", [("Nusantara Holdings (demo)", "ID")])
    second = screening_lists.import_list(ctx, officer, listed, "csl-csv", label="new")
    assert second.previous == first.snapshot.id
    assert snapshot_count(ctx) == before + 1
    change = screening_lists.diff_snapshots(ctx, officer, first.snapshot.id, second.snapshot.id)
    assert [e.name for e in change.added] == ["Nusantara Holdings (demo)"]
    results = {r.tenant_id: r for r in rescreening.rescreen_all(ctx, officer.user_id, "csl import")}
    assert results[bank.tenant_id].outcome == "suspended"
    assert "new hit" in results[bank.tenant_id].reason
    assert {r.outcome for t, r in results.items() if t != bank.tenant_id} == {"unchanged"}

    case = case_row(ctx, case_id)
    assert case.state == KycState.NEEDS_REVIEW
    assert case.round == 2
    assert case.lists_screened == [second.snapshot.id]
    assert case.screening is not None
    assert any("Nusantara Holdings (demo)" in r for r in case.screening["reasons"])
    standing = tenant_row(ctx, bank.tenant_id)
    assert standing.approval == "suspended"
    assert "new hit" in standing.approval_reason
    suspended = lease_row(ctx, lease.id)
    assert suspended.state == LeaseState.SUSPENDED
    assert suspended.state_reason.startswith("the tenant is not approved")
    assert kyc_actions(ctx, bank.tenant_id)[-2:] == ["kyc.screening", "kyc.needs_review"]
    with pytest.raises(kyc.NotApproved):
        jobs.submit(
            ctx, bank, jobs.JobSubmission(gpus=8, purpose="financial AI: credit risk", command="z")
        )

    [report] = live.tick()
    assert running.id in report.requeued
    assert running.id not in report.started
    assert queued.id not in report.started
    for job_id in (running.id, queued.id):
        row = job_row(ctx, job_id)
        assert row.state == JobState.QUEUED
        assert row.wait_reason.startswith("held: the tenant is not approved")
        assert "suspended pending review" in row.wait_reason
    assert executor.active() == set()

    # the officer re-approves: the lease resumes and the work runs again
    clock.advance(60)
    kyc.decide_case(ctx, officer, case_id, approve=True, reason="holding is a namesake")
    assert tenant_row(ctx, bank.tenant_id).approval == "approved"
    resumed = lease_row(ctx, lease.id)
    assert resumed.state == LeaseState.ACTIVE
    assert resumed.state_reason == "the tenant is approved again"
    [report] = live.tick()
    assert set(report.started) == {running.id, queued.id}
    assert job_row(ctx, running.id).starts == 2


def test_current_layout_csl_file_is_imported_too(
    ctx: ServiceContext, tmp_path: Path, staff: tuple[Principal, Principal]
) -> None:
    operator, officer = staff
    path = write_csl(tmp_path / "current.csv", [("Orbital Holdings", "SG")], current=True)
    report = screening_lists.import_list(ctx, officer, path, "csl-csv")
    assert report.snapshot.entries == 1
    tenant, admin = new_tenant(ctx, operator, "Orbital Labs", "SG")
    case = kyc.submit_case(
        ctx, admin, tenant.id, case_of("Orbital Labs", "SG", (("Orbital Holdings", "SG", 100),))
    )
    assert case.verdict == "review"
    assert case.screening is not None
    assert case.screening["hit_keys"] == ["csl:test-el-0"]
    with pytest.raises(Denied, match="may import a screening list"):
        screening_lists.import_list(ctx, admin, path, "csl-csv")


# ---------------------------------------------------------- 7. expiry, policy dates
def test_expiry_suspends_and_rescreens(
    ctx: ServiceContext, clock: ManualClock, operator: Principal, officer: Principal
) -> None:
    brief = ServiceContext(
        ctx.db, settings=ctx.settings.model_copy(update={"kyc_validity_days": 2}), clock=clock
    )
    tenant, admin = new_tenant(brief, operator, "Short Term AI", "SG")
    case = kyc.submit_case(brief, admin, tenant.id, case_of("Short Term AI", "SG"))
    approved = kyc.decide_case(brief, officer, case.id, approve=True, reason="verified")
    assert approved.expires_at == clock.now() + timedelta(days=2)
    start = clock.now()
    lease = leases.request_lease(
        brief,
        admin,
        leases.LeaseRequest(
            site_id=demo_service.SITE_ID, start=start, end=start + timedelta(days=30), gpus=64
        ),
    )
    leases.decide(brief, operator, lease.id, LeaseState.APPROVED, "ok")
    assert lease_row(brief, lease.id).state == LeaseState.ACTIVE

    clock.advance(24 * 3600)
    assert kyc.expire(brief, clock.now()) == []
    clock.advance(24 * 3600 + 1)
    assert kyc.expire(brief, clock.now()) == [case.id]
    assert kyc.expire(brief, clock.now()) == []  # once
    expired = case_row(brief, case.id)
    assert expired.state == KycState.NEEDS_REVIEW
    assert expired.round == 2
    assert kyc_actions(brief, tenant.id)[-3:] == [
        "kyc.expired",
        "kyc.screening",
        "kyc.needs_review",
    ]
    standing = tenant_row(brief, tenant.id)
    assert standing.approval == "suspended"
    assert "expired" in standing.approval_reason
    held = lease_row(brief, lease.id)
    assert held.state == LeaseState.SUSPENDED
    assert "expired" in held.state_reason
    with pytest.raises(kyc.NotApproved, match="expired"):
        jobs.submit(brief, admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="x"))
    # an operator cannot resume the lease over the tenant's standing
    with pytest.raises(Conflict, match="cannot be resumed"):
        leases.decide(brief, operator, lease.id, LeaseState.ACTIVE, "please")
    assert lease_row(brief, lease.id).state == LeaseState.SUSPENDED
    # nor approve a tenant for nothing
    with pytest.raises(InvalidRequest, match="at least one end use"):
        kyc.decide_case(brief, officer, case.id, approve=True, reason="x", end_uses=[])

    renewed = kyc.decide_case(brief, officer, case.id, approve=True, reason="renewed")
    assert renewed.expires_at == clock.now() + timedelta(days=2)
    assert lease_row(brief, lease.id).state == LeaseState.ACTIVE


def test_decisions_record_the_policy_in_force_on_their_day(
    ctx: ServiceContext, clock: ManualClock, staff: tuple[Principal, Principal]
) -> None:
    operator, officer = staff
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    winter = ServiceContext(ctx.db, settings=ctx.settings, clock=ManualClock(SUSPENDED_DAY))
    owners = ((*EL_CN, 60), ("Local partner", "SG", 40))
    early, early_admin = new_tenant(ctx, operator, "Early Bird", "SG")
    first = kyc.submit_case(winter, early_admin, early.id, case_of("Early Bird", "SG", owners))
    assert first.screening is not None
    assert first.screening["as_of"] == "2026-01-01"
    assert first.policy_versions == ["baseline@1", "iaas-customer-identification@1"]
    # while the affiliates rule is suspended, a 60 % Entity List owner is a red flag only
    assert first.verdict == "review"
    assert "us-affiliates-rule-2025@1/affiliates-50" in first.screening["policy"]["inactive"]

    advance_to(clock, AFFILIATES_BACK)
    late, late_admin = new_tenant(ctx, operator, "Late Comer", "SG")
    second = kyc.submit_case(ctx, late_admin, late.id, case_of("Late Comer", "SG", owners))
    assert second.policy_versions == [
        "baseline@1",
        "iaas-customer-identification@1",
        "us-affiliates-rule-2025@1",
    ]
    assert set(second.policy_versions) != set(first.policy_versions)
    assert second.verdict == "block"
    screened = [r for r in tenant_audit(ctx, late.id) if r.action == "kyc.needs_review"][-1]
    assert screened.after is not None
    assert "us-affiliates-rule-2025@1" in screened.after["policy"]

    kyc.decide_case(winter, officer, first.id, approve=True, reason="minority risk accepted")
    assert tenant_row(ctx, early.id).approval == "approved"

    # the early approval, re-screened under the rule back in force, is a block: no new list
    # entry, but a worse verdict reopens the case and suspends the tenant
    results = {
        r.case_id: r for r in rescreening.rescreen_all(ctx, officer.user_id, "policy change")
    }
    assert results[first.id].outcome == "suspended"
    assert "review -> block" in results[first.id].reason
    again = case_row(ctx, first.id)
    assert again.state == KycState.NEEDS_REVIEW
    assert again.verdict == "block"
    assert "us-affiliates-rule-2025@1" in again.policy_versions
    assert tenant_row(ctx, early.id).approval == "suspended"
    with pytest.raises(Denied, match="blocked"):
        kyc.decide_case(ctx, officer, first.id, approve=True, reason="as before")


# ------------------------------------------------------------- 7b. no list in force
def test_screening_with_no_list_in_force_is_never_clear(
    ctx: ServiceContext, operator: Principal, officer: Principal, clock: ManualClock
) -> None:
    """With no screening list imported, a case is not called clear: its verdict is review,
    its first reason and every party's say that no list was in force; once a list is in
    force, re-screening screens it for real."""
    tenant, admin = new_tenant(ctx, operator, "Quiet Harbour Analytics", "ID")
    case = kyc.submit_case(ctx, admin, tenant.id, case_of("Quiet Harbour Analytics", "ID"))
    assert case.state == KycState.NEEDS_REVIEW
    assert case.lists_screened == []
    assert case.verdict == "review"
    assert case.screening is not None
    assert case.screening["reasons"][0] == kyc_screening.NO_LIST_REASON
    assert "no screening list was in force" in case.state_reason
    assert [(p["outcome"], p["reason"]) for p in case.screening["parties"]] == [
        ("review", kyc_screening.NO_LIST_PARTY)
    ]
    assert tenant_row(ctx, tenant.id).approval != "approved"  # nothing approves it but an officer

    clock.advance(60)
    imported = screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    rescreening.rescreen_all(ctx, officer.user_id, "list imported")
    again = case_row(ctx, case.id)
    assert again.lists_screened == [imported.snapshot.id]
    assert again.screening is not None
    assert kyc_screening.NO_LIST_REASON not in again.screening["reasons"]
    assert again.verdict == "clear"
    assert [p["reason"] for p in again.screening["parties"]] == [
        "no list entry resembles the party"
    ]


# ------------------------------------------------------------------------ 8. the demo
def test_demo_with_real_lists_approves_every_tenant(ctx: ServiceContext) -> None:
    demo_service.create_demo(ctx, lists_dir=LISTS)
    with ctx.db.transaction(write=False) as tx:
        tenants = {t.name: t for t in tx.all(select(Tenant))}
        snapshots = tx.all(select(ListSnapshotRow))
        cases = {c.tenant_id: c for c in tx.all(select(KycCase))}
    assert {s.source for s in snapshots} == {"ofac-sdn", "csl", "bis-dpl"}
    assert set(tenants) == {"INF Tech", "Bank Nusantara Digital", "Universitas Teknologi Jakarta"}
    assert all(t.approval == "approved" for t in tenants.values())
    assert all(c.state == KycState.APPROVED for c in cases.values())
    inf = cases[tenants["INF Tech"].id]
    assert sorted(inf.lists_screened) == sorted(s.id for s in snapshots)
    assert inf.policy_versions == ["baseline@1", "iaas-customer-identification@1"]
    assert inf.verdict in ("clear", "review")
    assert inf.screening is not None
    assert inf.screening["verdict"] == inf.verdict
    assert inf.screening["reasons"]
    assert inf.screening["missing_fields"] == []
    assert any("employee platform" in r for r in inf.screening["reasons"])
    assert tenants["INF Tech"].approved_end_uses == [
        "financial-services-ai",
        "health-research",
        "drug-discovery",
    ]
    assert kyc_actions(ctx, tenants["INF Tech"].id) == [
        "kyc.submit",
        "kyc.screening",
        "kyc.needs_review",
        "kyc.approve",
        "kyc.approved",
    ]
    with ctx.db.transaction(write=False) as tx:
        active = tx.all(select(Lease).where(Lease.state == LeaseState.ACTIVE.value))
    assert len(active) == 3


# ------------------------------------------------------- a second case while approved
def test_pending_amendment_does_not_suspend_an_approved_tenant(
    ctx: ServiceContext, clock: ManualClock, operator: Principal, officer: Principal
) -> None:
    tenant, admin = new_tenant(ctx, operator, "Growing Labs", "SG")
    first = kyc.submit_case(ctx, admin, tenant.id, case_of("Growing Labs", "SG"))
    kyc.decide_case(ctx, officer, first.id, approve=True, reason="verified")
    # the tenant asks for one more end use: a second case, pending, while approved
    amendment = kyc.submit_case(
        ctx,
        admin,
        tenant.id,
        case_of("Growing Labs", "SG", end_uses=("drug-discovery", "health-research")),
    )
    assert amendment.state == KycState.NEEDS_REVIEW
    # an import that names nobody of theirs changes nothing for them
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    outcomes = {
        r.case_id: r.outcome for r in rescreening.rescreen_all(ctx, officer.user_id, "import")
    }
    assert outcomes[first.id] == "unchanged"
    assert outcomes[amendment.id] != "suspended"
    assert tenant_row(ctx, tenant.id).approval == "approved"
    jobs.submit(ctx, admin, jobs.JobSubmission(gpus=8, purpose="drug discovery", command="x"))

    # approving the amendment supersedes the first approval: its expiry suspends nobody
    clock.advance(30 * 24 * 3600)
    kyc.decide_case(ctx, officer, amendment.id, approve=True, reason="amended")
    assert tenant_row(ctx, tenant.id).approval_case_id == amendment.id
    assert case_row(ctx, first.id).state != KycState.APPROVED
    clock.advance(340 * 24 * 3600)  # past the first case's expiry, not the amendment's
    due = kyc.expire(ctx, clock.now())  # the demo tenants' approvals do expire
    assert first.id not in due
    assert amendment.id not in due
    assert tenant_row(ctx, tenant.id).approval == "approved"
    jobs.submit(ctx, admin, jobs.JobSubmission(gpus=8, purpose="health research", command="x"))


def test_a_stake_sold_before_the_screening_day_does_not_count(
    ctx: ServiceContext, clock: ManualClock, staff: tuple[Principal, Principal]
) -> None:
    operator, officer = staff
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    tenant, admin = new_tenant(ctx, operator, "Bought Out Ltd", "US")
    today = clock.now().date()
    sold = kyc.CaseSubmission(
        organization=kyc.PartyInput("Bought Out Ltd", countries=("US",)),
        end_uses=("drug-discovery",),
        owners=(
            kyc.OwnerInput(
                "old",
                kyc.PartyInput(SDN_US[0], countries=(SDN_US[1],)),
                "tenant",
                Decimal(60),
                since=today.replace(year=today.year - 3),
                until=today.replace(year=today.year - 1),
            ),
            kyc.OwnerInput(
                "new",
                kyc.PartyInput("New Owner Inc", countries=("US",)),
                "tenant",
                Decimal(60),
                since=today.replace(year=today.year - 1),
            ),
        ),
        identification=dict(FULL_ID),
    )
    case = kyc.submit_case(ctx, admin, tenant.id, sold)
    assert case.screening is not None
    assert case.screening["ownership"]["verdict"] == "clear"  # the SDN stake ended
    assert case.verdict != "block"
    with pytest.raises(InvalidRequest, match=r"until \(.*\) must be after since"):
        kyc.submit_case(
            ctx,
            admin,
            tenant.id,
            kyc.CaseSubmission(
                organization=kyc.PartyInput("Bought Out Ltd", countries=("US",)),
                end_uses=("drug-discovery",),
                owners=(
                    kyc.OwnerInput(
                        "x", kyc.PartyInput("X"), "tenant", Decimal(10), since=today, until=today
                    ),
                ),
            ),
        )


def test_countries_are_stored_as_iso_codes_as_through_the_api(
    ctx: ServiceContext, staff: tuple[Principal, Principal]
) -> None:
    """A case submitted through the service (the CLI, the demo) stores countries as the API
    does: names and alpha-3 codes become alpha-2 codes; an unknown country is a 422 naming
    the field and the ref, and nothing of the case is stored."""
    operator, _ = staff
    tenant, admin = new_tenant(ctx, operator, "Harbour Compute", "SG")
    submission = kyc.CaseSubmission(
        organization=kyc.PartyInput(
            "Harbour Compute",
            countries=("Singapore", "idn"),
            addresses=(Address(street="1 Bay Road", city="Singapore", country="SGP"),),
        ),
        end_uses=("drug-discovery",),
        parties=(DeclaredParty("owner", kyc.PartyInput("Gulf Holdings", countries=("Iran",))),),
        ownership=(DeclaredStake("owner", TENANT, Decimal(40)),),
        identification=dict(FULL_ID),
    )
    case = kyc.submit_case(ctx, admin, tenant.id, submission)
    assert case.declared_parties is not None
    with ctx.db.transaction(write=False) as tx:
        org = tx.require(PartyRow, case.party_id, "party")
        owner = tx.require(PartyRow, case.declared_parties["owner"], "party")
    assert org.countries == ["SG", "ID"]
    assert org.addresses[0]["country"] == "SG"
    assert owner.countries == ["IR"]
    assert case.screening is not None
    assert not any("ISO 3166" in r for r in case.screening["reasons"])

    other, other_admin = new_tenant(ctx, operator, "Atlantis Compute", "SG")
    bad = replace(
        submission,
        parties=(DeclaredParty("owner", kyc.PartyInput("Gulf Holdings", countries=("Atlantis",))),),
    )
    with pytest.raises(InvalidRequest) as refused:
        kyc.submit_case(ctx, other_admin, other.id, bad)
    assert refused.value.details["field"] == "parties[0].countries[0]"
    assert refused.value.details["refs"] == ["owner"]
    assert "'Atlantis' is not a country" in refused.value.message
    with ctx.db.transaction(write=False) as tx:
        assert tx.all(tx.select(KycCase).where(KycCase.tenant_id == other.id)) == []
        assert len(tx.all(tx.select(PartyRow))) == 2  # the first case's two, nothing more


def _in_list_form(case: kyc.CaseSubmission) -> kyc.CaseSubmission:
    """The same case in the older owners/officers form (a party per edge)."""
    details = {p.ref: p.details for p in case.parties}
    return replace(
        case,
        parties=(),
        ownership=(),
        control=(),
        owners=tuple(
            kyc.OwnerInput(s.owner, details[s.owner], s.owned, s.percent, s.since, s.until)
            for s in case.ownership
        ),
        officers=tuple(kyc.OfficerInput(details[r.holder], r.role, r.org) for r in case.control),
    )


def test_demo_cases_declare_parties_once_and_the_list_form_is_stored_alike(
    ctx: ServiceContext, staff: tuple[Principal, Principal]
) -> None:
    """The demo's cases are written as declared parties with edges; the older list form of
    the same case is still accepted and stored and screened the same way."""
    operator, _ = staff
    screening_lists.import_list(ctx, staff[1], CSL_SAMPLE, "csl-csv")
    assert all(not c.owners and not c.officers for c in demo_service.CASES.values())
    assert sum(len(c.parties) for c in demo_service.CASES.values()) == 3

    def stored(case: KycCase) -> tuple[object, ...]:
        assert case.declared_parties is not None
        assert case.screening is not None
        refs = {pid: ref for ref, pid in case.declared_parties.items()}
        with ctx.db.transaction(write=False) as tx:
            parties = tx.all(select(PartyRow).where(PartyRow.id.in_(list(refs))))
            edges = tx.all(select(OwnershipRow).where(OwnershipRow.owned_id.in_(list(refs))))
        return (
            sorted((refs[p.id], p.name, p.kind, tuple(p.countries)) for p in parties),
            sorted((refs[e.owner_id], refs[e.owned_id], e.percent) for e in edges),
            case.verdict,
            sorted((p["name"], p["outcome"]) for p in case.screening["parties"]),
        )

    for key, graph_case in demo_service.CASES.items():
        first, first_admin = new_tenant(ctx, operator, f"{key} graph", "ID")
        second, second_admin = new_tenant(ctx, operator, f"{key} list", "ID")
        as_graph = kyc.submit_case(ctx, first_admin, first.id, graph_case)
        as_list = kyc.submit_case(ctx, second_admin, second.id, _in_list_form(graph_case))
        assert stored(as_list) == stored(as_graph)
