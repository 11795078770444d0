"""KYC screening on a real database (SQLite and PostgreSQL), through the service and the
in-process API: a change of the policy in force re-screens approved tenants from the
scheduler's pass; a case is validated whole at submission and a stored case that cannot be
screened goes to review; the declared parties are a graph and every one is screened; a block
names its rule and lists."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_kyc import (
    AFFILIATES_BACK,
    CSL_SAMPLE,
    EL_CN,
    EL_HK,
    SDN_US,
    SUSPENDED_DAY,
    advance_to,
    case_of,
    case_row,
    new_tenant,
    tenant_audit,
    tenant_row,
)

from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import KycState, TenantStanding
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence.tables import KycCase, OwnershipRow, PartyRow
from gpulease.services import identity, kyc, purpose_reviews, rescreening, screening_lists
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler

AFFILIATES_RULE = "us-affiliates-rule-2025@1/affiliates-50"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Api = Callable[[str | None], TestClient]
MINUTE = timedelta(minutes=1)


@pytest.fixture
def winter(ctx: ServiceContext, clock: ManualClock) -> ServiceContext:
    """The test's context with its clock on a day the affiliates rule is suspended."""
    advance_to(clock, SUSPENDED_DAY)
    return ctx


@pytest.fixture
def people(ctx: ServiceContext) -> tuple[Principal, Principal, str, str]:
    """An operator and a compliance officer, with their API tokens."""
    admin, op_token = identity.bootstrap_operator(ctx, name="Ops", email="ops@op.example")
    operator = identity.principal_of(admin)
    user, officer_token = identity.create_user(
        ctx,
        operator,
        name="Compliance",
        email="kyc@op.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    return operator, identity.principal_of(user), op_token, officer_token


def count(ctx: ServiceContext, table: type[KycCase] | type[PartyRow]) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(table)) or 0)


# ------------------------------------------------------------------ defect 1: policy change
def test_a_policy_change_rescreens_approved_tenants_from_the_scheduler_pass(
    winter: ServiceContext, clock: ManualClock, people: tuple[Principal, Principal, str, str]
) -> None:
    """A tenant approved while the affiliates rule was suspended, 50 % owned by an Entity
    List party, is re-screened and suspended by the first scheduler pass once the rule is
    back in force; a clean tenant keeps its approval; the step is idempotent and a restarted
    process (an empty cache) finds nothing left to do."""
    ctx = winter
    operator, officer, _, _ = people
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    owners = ((*EL_CN, 50), ("Local partner", "SG", 50))  # 50 %: the threshold itself
    early, early_admin = new_tenant(ctx, operator, "Early Bird", "SG")
    listed = kyc.submit_case(ctx, early_admin, early.id, case_of("Early Bird", "SG", owners))
    clean, clean_admin = new_tenant(ctx, operator, "Clean Co", "SG")
    plain = kyc.submit_case(ctx, clean_admin, clean.id, case_of("Clean Co", "SG"))
    assert listed.verdict == "review"  # the suspended rule does not count the owner
    for case in (listed, plain):
        kyc.decide_case(ctx, officer, case.id, approve=True, reason="reviewed")
    scheduler = LiveScheduler(ctx, SimulatedExecutor(ctx.clock))
    scheduler.tick()  # the same rules in force: nothing to re-screen
    assert tenant_row(ctx, early.id).approval == TenantStanding.APPROVED
    assert case_row(ctx, listed.id).round == 1

    advance_to(clock, AFFILIATES_BACK)
    scheduler.tick()
    again = case_row(ctx, listed.id)
    assert again.state == KycState.NEEDS_REVIEW
    assert again.verdict == "block"
    assert again.screening is not None
    assert again.screening["blocks"][0]["rule"] == AFFILIATES_RULE
    assert AFFILIATES_RULE in again.screening["policy"]["rules"]
    assert AFFILIATES_RULE in again.state_reason  # "now in force: ..."
    tenant = tenant_row(ctx, early.id)
    assert tenant.approval == TenantStanding.SUSPENDED
    with pytest.raises(kyc.NotApproved):  # its work is held
        purpose_reviews.decide(ctx, tenant, "drug discovery")
    assert tenant_row(ctx, clean.id).approval == TenantStanding.APPROVED
    kept = case_row(ctx, plain.id)
    assert kept.state == KycState.APPROVED
    assert kept.screening is not None
    assert AFFILIATES_RULE in kept.screening["policy"]["rules"]  # recorded: not taken again

    trail = len(tenant_audit(ctx, early.id)) + len(tenant_audit(ctx, clean.id))
    scheduler.tick()
    restarted = ServiceContext(ctx.db, settings=ctx.settings, clock=ctx.clock)
    assert rescreening.on_policy_change(restarted, restarted.now()) == []
    assert len(tenant_audit(ctx, early.id)) + len(tenant_audit(ctx, clean.id)) == trail


def test_a_case_screened_elsewhere_just_before_midnight_is_caught_after_the_check(
    ctx: ServiceContext, clock: ManualClock, people: tuple[Principal, Principal, str, str]
) -> None:
    """Another process screens a case under yesterday's rules and commits it after this
    process checked every case against today's: the passes of the first minutes of the
    day still take it."""
    operator, officer, _, _ = people
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    midnight = AFFILIATES_BACK.replace(hour=0)
    advance_to(clock, midnight + timedelta(minutes=1))
    assert rescreening.on_policy_change(ctx, ctx.now()) == []  # nothing yet: checked
    late = ServiceContext(ctx.db, settings=ctx.settings, clock=ManualClock(midnight - MINUTE))
    tenant, admin = new_tenant(late, operator, "Late Night", "SG")
    owners = ((*EL_CN, 60), ("Local partner", "SG", 40))
    case = kyc.submit_case(late, admin, tenant.id, case_of("Late Night", "SG", owners))
    kyc.decide_case(late, officer, case.id, approve=True, reason="reviewed")
    advance_to(clock, midnight + 2 * MINUTE)
    [done] = rescreening.on_policy_change(ctx, ctx.now())
    assert (done.case_id, done.outcome) == (case.id, "suspended")
    assert tenant_row(ctx, tenant.id).approval == TenantStanding.SUSPENDED


# ------------------------------------------------------- defect 2: the whole case validated
INTERMEDIATE_130 = {
    "organization": {"name": "Overcount Pte", "countries": ["SG"]},
    "end_uses": ["drug-discovery"],
    "parties": [
        {"ref": "mid", "name": "Midway Holdings"},
        {"ref": "x", "name": "Xavier Capital"},
        {"ref": "y", "name": "Yarra Partners"},
    ],
    "ownership": [
        {"owner": "mid", "owns": "tenant", "percent": 100},
        {"owner": "x", "owns": "mid", "percent": 70},
        {"owner": "y", "owns": "mid", "percent": 60},
    ],
}
LEGACY_130 = {
    "organization": {"name": "Overcount Pte", "countries": ["SG"]},
    "end_uses": ["drug-discovery"],
    "owners": [
        {"ref": "mid", "party": {"name": "Midway Holdings"}, "percent": 100},
        {"ref": "x", "party": {"name": "Xavier Capital"}, "owns": "mid", "percent": 70},
        {"ref": "y", "party": {"name": "Yarra Partners"}, "owns": "mid", "percent": 60},
    ],
}
DANGLING = {
    "organization": {"name": "Overcount Pte", "countries": ["SG"]},
    "end_uses": ["drug-discovery"],
    "parties": [{"ref": "mid", "name": "Midway Holdings"}],
    "ownership": [{"owner": "mid", "owns": "tenant", "percent": 50}],
    "control": [{"party": "ceo", "role": "director"}],
}


@pytest.mark.parametrize(
    ("body", "field", "refs"),
    [
        (INTERMEDIATE_130, "ownership", ["mid", "x", "y"]),
        (LEGACY_130, "ownership", ["mid", "x", "y"]),
        (DANGLING, "control[0].party", ["ceo"]),
    ],
    ids=["graph-130-percent", "list-form-130-percent", "dangling-ref"],
)
def test_a_case_that_cannot_be_screened_is_refused_whole(
    ctx: ServiceContext,
    api: Api,
    people: tuple[Principal, Principal, str, str],
    body: dict[str, object],
    field: str,
    refs: list[str],
) -> None:
    operator, _, op_token, _ = people
    tenant, _ = new_tenant(ctx, operator, "Overcount Pte", "SG")
    parties = count(ctx, PartyRow)
    answer = api(op_token).post("/kyc/cases", json={**body, "tenant_id": tenant.id})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert (error["details"]["field"], error["details"]["refs"]) == (field, refs)
    assert count(ctx, KycCase) == 0  # nothing stored: the tenant may submit again
    assert count(ctx, PartyRow) == parties


def test_a_stored_case_that_cannot_be_screened_goes_to_review_saying_why(
    ctx: ServiceContext,
    people: tuple[Principal, Principal, str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A case stored before validation (130 % at an intermediate owner), left ``submitted``:
    the scheduler's retry puts it before an officer with the error as the reason, once,
    without a traceback; the officer can reject it and the tenant submit again."""
    operator, officer, _, _ = people
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    tenant, admin = new_tenant(ctx, operator, "Overcount Pte", "SG")
    case = kyc.submit_case(
        ctx, admin, tenant.id, case_of("Overcount Pte", "SG", (("Mid", "SG", 100),))
    )
    with ctx.db.transaction() as tx:  # data from before validation, and a process that died
        stored = tx.require(KycCase, case.id, "kyc case")
        assert stored.declared_parties is not None
        mid = stored.declared_parties["owner0"]
        for name, pct in (("Xavier Capital", 70), ("Yarra Partners", 60)):
            party = PartyRow(
                id=f"party-{name[0]}", kind="organization", name=name, aliases=[],
                countries=[], identifiers=[], addresses=[], created_at=ctx.now(),
            )  # fmt: skip
            tx.add(party)
            tx.flush()
            tx.add(OwnershipRow(owner_id=party.id, owned_id=mid, percent=Decimal(pct)))
            stored.declared_parties = {**stored.declared_parties, name: party.id}
        stored.state = KycState.SUBMITTED.value
    with caplog.at_level(logging.WARNING):
        kyc.screen_unscreened(ctx)
        kyc.screen_unscreened(ctx)
    assert not [r for r in caplog.records if r.exc_info]
    again = case_row(ctx, case.id)
    assert again.state == KycState.NEEDS_REVIEW
    assert again.verdict == "review"
    assert again.round == 2  # screened once more, not every pass
    assert "could not be assessed" in again.state_reason
    assert "130 %" in again.state_reason
    assert "Xavier Capital" in again.state_reason  # names, not party ids
    kyc.decide_case(ctx, officer, case.id, approve=False, reason="ownership does not add up")
    assert case_row(ctx, case.id).state == KycState.REJECTED
    with pytest.raises(InvalidRequest):  # the same figures are refused now, nothing stored
        kyc.submit_case(
            ctx,
            admin,
            tenant.id,
            kyc.CaseSubmission(
                organization=kyc.PartyInput("Overcount Pte", countries=("SG",)),
                end_uses=("drug-discovery",),
                owners=(
                    kyc.OwnerInput("mid", kyc.PartyInput("Mid"), "tenant", Decimal(100)),
                    kyc.OwnerInput("x", kyc.PartyInput("Xavier Capital"), "mid", Decimal(70)),
                    kyc.OwnerInput("y", kyc.PartyInput("Yarra Partners"), "mid", Decimal(60)),
                ),
            ),
        )
    assert count(ctx, KycCase) == 1


# ------------------------------------------------ defect 3: the declared parties as a graph
def test_a_graph_case_screens_every_declared_party(
    ctx: ServiceContext, clock: ManualClock, api: Api, people: tuple[Principal, Principal, str, str]
) -> None:
    """One fund declared once with stakes in two entities; one person, director of the
    tenant and of its listed 10 % owner (a shared controller); a listed party in a cycle of
    its own, linked to nothing: every party is screened, the unlinked one is a finding."""
    operator, officer, op_token, officer_token = people
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    tenant, _ = new_tenant(ctx, operator, "Graph Labs", "SG")
    body = {
        "tenant_id": tenant.id,
        "organization": {"name": "Graph Labs", "countries": ["SG"]},
        "end_uses": ["drug-discovery"],
        "parties": [
            {"ref": "fund", "name": "Merlion Growth Fund", "countries": ["SG"]},
            {"ref": "holdco", "name": "Raffles Holdco", "countries": ["SG"]},
            {"ref": "listed", "name": EL_CN[0], "countries": [EL_CN[1]]},
            {"ref": "ceo", "name": "Tan Example", "kind": "person", "countries": ["SG"]},
            {"ref": "island", "name": EL_HK[0], "countries": [EL_HK[1]]},
            {"ref": "islet", "name": "Harbour Islet Trading", "countries": ["HK"]},
        ],
        "ownership": [
            {"owner": "fund", "owns": "tenant", "percent": 40},
            {"owner": "fund", "owns": "holdco", "percent": 100},
            {"owner": "holdco", "owns": "tenant", "percent": 50},
            {"owner": "listed", "owns": "tenant", "percent": 10},
            {"owner": "island", "owns": "islet", "percent": 50},
            {"owner": "islet", "owns": "island", "percent": 50},
        ],
        "control": [
            {"party": "ceo", "role": "director"},
            {"party": "ceo", "role": "director", "of": "listed"},
        ],
        "identification": {"name": "Graph Labs", "payment_source": "Graph Labs"},
    }
    made = api(op_token).post("/kyc/cases", json=body)
    assert made.status_code == 201, made.text
    case = api(officer_token).get(f"/kyc/cases/{made.json()['id']}").json()
    screening = case["screening"]
    parties = {p["name"]: p for p in screening["parties"]}
    assert len(parties) == 7  # the organisation and the six declared, each once
    assert parties[EL_HK[0]]["linked"] is False
    assert parties[EL_HK[0]]["outcome"] == "block"
    assert any(EL_HK[0] in r and "not linked" in r for r in screening["reasons"])
    assert parties[EL_CN[0]]["linked"] is True
    flags = {f["kind"] for f in screening["ownership"]["flags"]}
    assert "shared_controller" in flags
    assert case["verdict"] == "review"
    with ctx.db.transaction(write=False) as tx:
        stored = tx.require(KycCase, case["id"], "kyc case")
        assert stored.declared_parties is not None
        assert set(stored.declared_parties) == {
            "tenant", "fund", "holdco", "listed", "ceo", "island", "islet"
        }  # fmt: skip
        fund = stored.declared_parties["fund"]
        held = tx.all(select(OwnershipRow).where(OwnershipRow.owner_id == fund))
    assert len(held) == 2  # one party, two stakes


def test_the_example_cases_are_accepted_and_screened(
    ctx: ServiceContext, api: Api, people: tuple[Principal, Principal, str, str]
) -> None:
    operator, officer, op_token, officer_token = people
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    verdicts = {}
    for name, country in (("case.json", "ID"), ("case-listed-owner.json", "AE")):
        tenant, _ = new_tenant(ctx, operator, name.removesuffix(".json"), country)
        body = json.loads((EXAMPLES / name).read_text()) | {"tenant_id": tenant.id}
        made = api(op_token).post("/kyc/cases", json=body)
        assert made.status_code == 201, made.text
        case = api(officer_token).get(f"/kyc/cases/{made.json()['id']}").json()
        verdicts[name] = case["verdict"]
        if name == "case-listed-owner.json":
            [block] = case["screening"]["blocks"]
            assert block["rule"] == "baseline@1/ofac-50"
            assert any(SDN_US[0] in r and "ofac-50" in r for r in case["screening"]["reasons"])
    assert verdicts["case-listed-owner.json"] == "block"
    assert verdicts["case.json"] == "clear"


# ------------------------------------------------------ defect 10: which rule, which list
def test_a_block_under_the_affiliates_rule_names_the_rule_and_the_lists(
    ctx: ServiceContext, clock: ManualClock, people: tuple[Principal, Principal, str, str]
) -> None:
    """30 % by an SDN entry and 30 % by an Entity List entry: blocked under the BIS affiliates
    rule only; the case says that rule and both lists, and never "restricted (sdn)"."""
    operator, officer, _, _ = people
    screening_lists.import_list(ctx, officer, CSL_SAMPLE, "csl-csv")
    advance_to(clock, AFFILIATES_BACK)
    tenant, admin = new_tenant(ctx, operator, "Mixed Owners", "SG")
    owners = ((*SDN_US, 30), (*EL_CN, 30), ("Local partner", "SG", 40))
    case = kyc.submit_case(ctx, admin, tenant.id, case_of("Mixed Owners", "SG", owners))
    assert case.verdict == "block"
    assert case.screening is not None
    [block] = case.screening["blocks"]
    assert block["rule"] == AFFILIATES_RULE
    assert any("Entity List" in item for item in block["lists"])
    assert any("Specially Designated Nationals" in item for item in block["lists"])
    assert not any("(sdn)" in r or "sdn under" in r for r in case.screening["reasons"])
    assert any(
        r.startswith(f"Mixed Owners is blocked under {AFFILIATES_RULE}")
        for r in case.screening["reasons"]
    )
