"""The compliance pages' view models, built from a case screened by the real core (a real index
of list entries, the shipped policy packs) and rows that are never stored: no database.

What they must show: each potential match side by side with its words aligned, the ownership
graph with every party marked, why a case cannot be approved; what they must survive: a
screening record of an older shape; what a tenant's view must never carry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

from gpulease.compliance.matching import ScreeningIndex
from gpulease.compliance.model import ListEntry, Party, PartyKind
from gpulease.compliance.ownership import ControlEdge, ControlRole, OwnershipEdge
from gpulease.compliance.policy import CUSTOMER_FIELDS, PolicySet
from gpulease.compliance.screening import CaseFacts, Thresholds, screen_case
from gpulease.persistence.tables import KycCase, KycDecision
from gpulease.services.case_review import CaseDossier, ReviewQueue
from gpulease.web.compliance_views import (
    case_view,
    match_view,
    policy_view,
    queue_view,
    tenant_cases_view,
)
from gpulease.web.ownership_svg import NodeMark

EL = "Entity List (EL) - Bureau of Industry and Security"
ENTRIES = (
    ListEntry("csl", "el-1", PartyKind.ORGANIZATION, "Northern Lights Microwave Institute", (),
              ("CN",), programs=("EL",), list_name=EL),
)  # fmt: skip
POLICIES = PolicySet.builtin()
AFFILIATES_DAY = date(2026, 11, 10)  # the affiliates rule in force
WHEN = datetime(2026, 11, 10, 9, tzinfo=UTC)


def _org(pid: str, name: str, country: str = "SG") -> Party:
    return Party(pid, PartyKind.ORGANIZATION, name, countries=(country,))


FACTS = CaseFacts(
    subject="t",
    parties=(
        _org("t", "Harbourfront <Compute> & Co"),
        _org("el", "Northern Lights Microwve Institute", "CN"),  # a typo: still a match
        _org("clean", "Lion City Partners"),
        Party("p", PartyKind.PERSON, "Jane Roe", countries=("SG",)),
        _org("side", "Beside Holdings"),
    ),
    ownership=(
        OwnershipEdge("el", "t", Decimal(60)),
        OwnershipEdge("clean", "t", Decimal("40.00")),
        OwnershipEdge("clean", "side", Decimal(10), until=date(2020, 1, 1)),
    ),
    control=(ControlEdge("p", "t", ControlRole.DIRECTOR),),
    end_uses=("drug-discovery",),
    identification=frozenset(CUSTOMER_FIELDS),
)


def _case(record: dict[str, object] | None, **fields: object) -> KycCase:
    values: dict[str, object] = {
        "id": "kyc-1",
        "tenant_id": "tenant-1",
        "party_id": "t",
        "state": "needs_review",
        "state_reason": "screening verdict block",
        "end_uses": ["drug-discovery"],
        "end_use_statement": "molecules",
        "identification": {},
        "verdict": str((record or {}).get("verdict", "")),
        "screening": record,
        "policy_versions": ["baseline@1"],
        "lists_screened": ["snap-1"],
        "declared_parties": {},
        "approvals_needed": 2,
        "round": 1,
        "submitted_by": "user-1",
        "submitted_at": WHEN,
        "screened_at": WHEN,
        "decided_at": None,
        "expires_at": None,
    }
    return KycCase(**(values | fields))


def _screened() -> dict[str, object]:
    result = screen_case(
        FACTS,
        index=ScreeningIndex(ENTRIES),
        lists_in_force=True,
        thresholds=Thresholds(85.0, 95.0),
        policy=POLICIES.evaluate(AFFILIATES_DAY),
    )
    return result.record()


def _decision(officer: str, decision: str, round_: int) -> KycDecision:
    return KycDecision(
        case_id="kyc-1",
        officer_id=officer,
        decision=decision,
        reason=f"{officer} says {decision}",
        screening_round=round_,
        at=WHEN,
        controllers=[officer],
    )


def _dossier(case: KycCase, facts: CaseFacts | None = FACTS) -> CaseDossier:
    return CaseDossier(
        case=case,
        tenant_name="Harbourfront <Compute> & Co",
        facts=facts,
        unreadable="" if facts else "its stored parties or edges cannot be read (bad kind)",
        decisions=(_decision("alice", "approve", 0), _decision("bob", "approve", 1)),
        approvals_needed=2,
    )


def test_a_blocked_case_shows_its_match_side_by_side_its_graph_and_why_it_cannot_be_approved() -> (
    None
):
    view = case_view(_dossier(_case(_screened())), today=date(2026, 12, 1))
    assert view.verdict == "block"
    assert view.as_of == "2026-11-10"
    assert not view.approvable
    assert view.why_not_approvable == "a blocked case can only be rejected"
    assert view.open
    assert view.approvals_this_round == 1
    assert view.approvals_needed == 2
    [listed] = [p for p in view.parties if p.party_id == "el"]
    assert listed.outcome == "block"
    assert listed.linked
    [match] = listed.matches
    assert match.our_name == "Northern Lights Microwve Institute"
    assert match.listed_name == "Northern Lights Microwave Institute"
    assert match.list_label == EL
    assert match.programs == ("EL",)
    assert match.entry_id == "el-1"
    assert 85 <= match.score <= 100
    pairs = {(w.ours, w.theirs) for w in match.words}
    assert ("microwve", "microwave") in pairs
    assert ("northern", "northern") in pairs
    assert next(w for w in match.words if w.ours == "microwve").similarity < 1
    assert match.features
    assert match.features[0].name == "name"
    # the block names the rule and the party by name, not id
    assert any("affiliates" in b.rule or b.rule == "listed" for b in view.blocks)
    assert any("Northern Lights Microwve Institute" in b.parties for b in view.blocks)

    graph = view.graph
    assert graph is not None
    marks = {n.id: n.marks for n in graph.nodes}
    assert NodeMark.LISTED in marks["el"]
    assert {NodeMark.SUBJECT, NodeMark.BLOCKED} <= marks["t"]
    assert NodeMark.NOT_LINKED in marks["side"]
    assert NodeMark.NOT_LINKED not in marks["p"]
    assert marks["clean"] == frozenset()
    labels = {(e.source, e.target, e.label, e.current) for e in graph.edges}
    assert ("el", "t", "60 %", True) in labels
    assert ("clean", "t", "40 %", True) in labels
    assert ("clean", "side", "10 %", False) in labels  # sold before the screening day
    assert ("p", "t", "director", True) in labels
    rows = {(r.source, r.target, r.label, r.period) for r in view.edges}
    assert ("Lion City Partners", "Beside Holdings", "10 %", "until 2020-01-01") in rows


def test_missing_identification_prevents_approval_and_says_which() -> None:
    record = _screened() | {
        "verdict": "review",
        "blocks": [],
        "missing_fields": ["beneficial_owners"],
    }
    view = case_view(_dossier(_case(record, verdict="review")), today=date(2026, 12, 1))
    assert not view.approvable
    assert view.why_not_approvable == "customer identification lacks beneficial_owners"
    closed = case_view(
        _dossier(_case(record | {"missing_fields": []}, verdict="review", state="approved")),
        today=date(2026, 12, 1),
    )
    assert not closed.open
    assert not closed.approvable


def test_a_spoofed_name_is_shown_as_typed_in_every_view() -> None:
    record = _screened()
    for party in record["parties"]:  # type: ignore[attr-defined]
        if party["party_id"] == "clean":
            party["name"] = "Lion \u202eytiC\u202c Partners"
    view = case_view(_dossier(_case(record)), today=date(2026, 12, 1))
    [clean] = [p for p in view.parties if p.party_id == "clean"]
    assert clean.name == "Lion \u27e8U+202E\u27e9ytiC\u27e8U+202C\u27e9 Partners"


def test_an_old_or_broken_record_still_renders() -> None:
    for record in (None, {}, {"parties": "not a list", "blocks": [None, 3]}, {"as_of": "never"}):
        view = case_view(_dossier(_case(record)), today=date(2026, 12, 1))  # type: ignore[arg-type]
        assert view.parties == ()
        assert view.verdict == "not screened"
        assert view.as_of == "2026-12-01"
    odd_hit = {"our_name": 7, "score": "NaN", "features": [{"weight": "x"}, "junk"]}
    match = match_view("p", "P", odd_hit)
    assert match.score == 0.0
    assert match.features[0].weight == 0.0
    assert len(match.features) == 2
    unreadable = case_view(_dossier(_case(_screened()), facts=None), today=date(2026, 12, 1))
    assert unreadable.graph is None
    assert "cannot be read" in unreadable.unreadable


def test_the_queue_counts_approvals_and_flags() -> None:
    case = _case(_screened())
    queue = ReviewQueue(
        cases=(case,),
        tenant_names={"tenant-1": "Harbourfront"},
        purposes=(),
        purposes_visible=False,
        more_cases=False,
        approvals={"kyc-1": 1},
    )
    [row] = queue_view(queue).cases
    assert row.tenant_name == "Harbourfront"
    assert row.approvals == "1 of 2"
    assert row.flagged == 1
    assert row.verdict == "block"
    assert row.reason


def test_the_policy_on_a_day_groups_rules_by_pack_and_dates_the_others() -> None:
    suspended = policy_view(POLICIES.evaluate(date(2026, 3, 2)))
    in_force = policy_view(POLICIES.evaluate(AFFILIATES_DAY))
    rule = "us-affiliates-rule-2025@1/affiliates-50"
    assert rule in {r.ref for r in suspended.inactive}
    assert "suspended" in next(r.status for r in suspended.inactive if r.ref == rule)
    refs = {r.ref for p in in_force.packs for r in p.rules}
    assert rule in refs
    assert rule not in {r.ref for r in in_force.inactive}
    assert all(p.title for p in in_force.packs)


def test_a_tenant_sees_its_case_in_plain_words_never_the_screening() -> None:
    [row] = tenant_cases_view([_case(_screened())])
    shown = repr(dataclasses.asdict(row))
    assert row.status.endswith("under review by the compliance team")
    for secret in ("Northern", "el-1", "Entity List", "score", "affiliates", "Lion City"):
        assert secret not in shown
