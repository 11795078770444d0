"""The point-in-time disclosure (issue 14, defect 8), on SQLite and PostgreSQL: a report as of
a past moment shows what was true then (standing, case state, screening round and its hits,
end uses, lists and packs in force, compute, access, parties), never today's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from gpulease.compliance.case_graph import TENANT, DeclaredParty, DeclaredRole, DeclaredStake
from gpulease.compliance.policy import CUSTOMER_FIELDS
from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.persistence.tables import KycCase, OwnershipRow, PartyRow
from gpulease.services import (
    identity,
    kyc,
    report_disclosure,
    report_templates,
    rescreening,
    screening_lists,
)
from gpulease.services.context import ServiceContext
from support.lists import entity_list_of

OWNER = "Harbour Crane Holdings"
AFFILIATES_BACK = datetime(2026, 11, 11, 9, 0, tzinfo=UTC)  # the affiliates rule in force


def _staff(ctx: ServiceContext) -> tuple[Principal, Principal]:
    admin_user, _ = identity.bootstrap_operator(ctx, name="Ops", email="ops@op.example")
    admin = identity.principal_of(admin_user)
    officer_user, _ = identity.create_user(
        ctx,
        admin,
        name="Officer",
        email="kyc@op.example",
        role=Role.COMPLIANCE_OFFICER,
        tenant_id=None,
    )
    return admin, identity.principal_of(officer_user)


def test_as_of_shows_the_past_not_the_present(
    ctx: ServiceContext, clock: ManualClock, tmp_path: Path
) -> None:
    admin, officer = _staff(ctx)
    first = screening_lists.import_list(
        ctx,
        officer,
        entity_list_of(tmp_path / "a.csv", ["Unrelated Institute"]),
        "csl-csv",
        label="A",
    )
    tenant = identity.create_tenant(ctx, admin, name="Harbour AI", country="SG", kind="lab")
    tenant_user, _ = identity.create_user(
        ctx,
        admin,
        name="T",
        email="t@harbour.example",
        role=Role.TENANT_ADMIN,
        tenant_id=tenant.id,
    )
    tenant_p: Principal = identity.principal_of(tenant_user)
    identity.note_access(ctx, tenant_p, "198.51.100.7")
    case = kyc.submit_case(
        ctx,
        admin,
        tenant.id,
        kyc.CaseSubmission(
            organization=kyc.PartyInput("Harbour AI", countries=("SG",)),
            end_uses=("drug-discovery", "health-research"),
            owners=(
                kyc.OwnerInput(
                    "o1", kyc.PartyInput(OWNER, countries=("CN",)), "tenant", Decimal(60)
                ),
            ),
            identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
        ),
    )
    clock.advance(600)
    kyc.decide_case(ctx, officer, case.id, approve=True, reason="fine", end_uses=["drug-discovery"])
    clock.advance(600)
    moment = clock.now()
    then_packs = list(kyc.policy_on(ctx, moment).packs)
    then = report_disclosure.end_user_disclosure(ctx, officer, tenant.id, as_of=moment)

    # --- later: the affiliates rule is back, a new list names the owner, the tenant is
    # re-screened and suspended, it uses the API again, a party is declared
    clock.advance((AFFILIATES_BACK - clock.now()).total_seconds())
    identity.note_access(ctx, tenant_p, "198.51.100.7")
    second = screening_lists.import_list(
        ctx, officer, entity_list_of(tmp_path / "b.csv", [OWNER]), "csl-csv", label="B"
    )
    rescreening.rescreen_all(ctx, officer.user_id, "new list B")
    with ctx.db.transaction() as tx:  # an owner declared later (e.g. by an amendment)
        tx.add(
            PartyRow(
                id="party-later00000",
                kind="organization",
                name="Later Party",
                aliases=[],
                countries=[],
                identifiers=[],
                addresses=[],
                created_at=clock.now(),
            )
        )
        tx.flush()
        tx.add(
            OwnershipRow(owner_id="party-later00000", owned_id=case.party_id, percent=Decimal(5))
        )
        stored = tx.require(KycCase, case.id, "kyc case")
        stored.declared_parties = {**(stored.declared_parties or {}), "later": "party-later00000"}
    now_report = report_disclosure.end_user_disclosure(ctx, officer, tenant.id)
    assert now_report["standing"]["approval"] == "suspended"
    assert now_report["restricted_links"]["hits"]
    assert list(kyc.policy_on(ctx, clock.now()).packs) != then_packs

    again = report_disclosure.end_user_disclosure(ctx, officer, tenant.id, as_of=moment)
    assert again["standing"] == then["standing"]  # the same report, whatever happened since
    assert again["decisions"] == then["decisions"]
    assert again["restricted_links"] == then["restricted_links"]
    assert again["in_force"] == then["in_force"]
    assert again["access"] == [
        a | {"last_seen": None, "requests": None, "used_after_as_of": True} for a in then["access"]
    ]

    standing = again["standing"]
    assert standing["approval"] == "approved"
    assert standing["approved_end_uses"] == ["drug-discovery"]
    assert standing["case_id"] == case.id
    assert standing["expired"] is False
    [shown] = again["decisions"]
    assert shown["state"] == "approved"
    assert shown["verdict"] == then["decisions"][0]["verdict"] != "block"
    assert [r["round"] for r in shown["rounds"]] == [1]
    assert [s["id"] for s in shown["lists"]] == [first.snapshot.id]
    assert again["restricted_links"]["hits"] == []
    assert [u["code"] for u in again["why"]["approved_end_uses"]] == ["drug-discovery"]
    assert [x["id"] for x in again["in_force"]["lists"]] == [first.snapshot.id]
    assert second.snapshot.id not in str(again)
    assert again["in_force"]["policy_packs"] == then_packs
    [address] = again["access"]
    assert address["ip"] == "198.51.100.7"
    assert "Later Party" not in str(again)
    assert "Later Party" in str(now_report)
    assert now_report["decisions"][0]["state"] == "needs_review"
    assert again["as_of"] == moment.isoformat()
    assert moment < clock.now() - timedelta(days=200)


def _graph_case(unlinked: str) -> kyc.CaseSubmission:
    """Harbour AI 60 % owned by a holding; ``unlinked`` holds 30 % of a fund whose director
    is a person, none of them linked to the tenant's chain (declared all the same)."""
    return kyc.CaseSubmission(
        organization=kyc.PartyInput("Harbour AI", countries=("SG",)),
        end_uses=("drug-discovery",),
        parties=(
            DeclaredParty("hold", kyc.PartyInput("Harbour Holdings", countries=("SG",))),
            DeclaredParty("side", kyc.PartyInput(unlinked, countries=("CN",))),
            DeclaredParty("fund", kyc.PartyInput(f"{unlinked} Fund", countries=("CN",))),
            DeclaredParty("boss", kyc.PartyInput("Li Wei", kind="person", countries=("CN",))),
        ),
        ownership=(
            DeclaredStake("hold", TENANT, Decimal(60)),
            DeclaredStake("side", "fund", Decimal(30)),
        ),
        control=(DeclaredRole("boss", "fund", "director"),),
        identification=dict.fromkeys(CUSTOMER_FIELDS, "given"),
    )


def test_disclosure_shows_every_declared_party_then_and_now(
    ctx: ServiceContext, clock: ManualClock
) -> None:
    """Parties a case declared without linking them to the tenant's chain are disclosed with
    their edges (they were screened); as of a past moment, those of the case then."""
    admin, officer = _staff(ctx)
    tenant = identity.create_tenant(ctx, admin, name="Harbour AI", country="SG", kind="lab")
    first = kyc.submit_case(ctx, admin, tenant.id, _graph_case("Side Investor One"))
    clock.advance(600)
    moment = clock.now()
    kyc.decide_case(ctx, officer, first.id, approve=False, reason="resubmit")
    clock.advance(600)
    kyc.submit_case(ctx, admin, tenant.id, _graph_case("Side Investor Two"))

    def shown(report: dict[str, Any]) -> tuple[set[str], list[tuple[str, str, str]]]:
        names = {p["name"] for p in report["who"]["parties"]}
        outside = [
            (e["name"], e["percent"] or e["role"], e["of"])
            for e in report["ownership"]["outside_chain"]
        ]
        return names, outside

    then = report_disclosure.end_user_disclosure(ctx, officer, tenant.id, as_of=moment)
    now = report_disclosure.end_user_disclosure(ctx, officer, tenant.id)
    for report, side, other in ((then, "One", "Two"), (now, "Two", "One")):
        names, outside = shown(report)
        assert names == {
            "Harbour AI",
            "Harbour Holdings",
            f"Side Investor {side}",
            f"Side Investor {side} Fund",
            "Li Wei",
        }
        assert outside == [
            (f"Side Investor {side}", "30", f"Side Investor {side} Fund"),
            ("Li Wei", "director", f"Side Investor {side} Fund"),
        ]
        assert f"Side Investor {other}" not in str(report["who"])
        assert [o["owner"] for o in report["ownership"]["owners"]] == ["Harbour Holdings"]
        assert report["restricted_links"]["screened_parties"] == 5
    page = report_templates.render_html(now, "disclosure")
    assert "Declared outside the chain" in page
    assert "Side Investor Two Fund" in page
