"""Screening one KYC case: every party of its ownership chain against the lists in force.

Design. :func:`screen` is the one screening step of the KYC procedure (a case's first
screening, a re-screening after a list import or a policy change, a retry): it reads the
case's ownership and control graph, screens each party of the chain (the organisation, its
owners up the chain, their officers) with the current lists' index, applies the 50 % rules
and red flags of the policy in force, the declared end uses, the country tier and the
customer-identification fields, and returns the case's ``screening`` record (verdict,
reasons, each party's outcome and hits, hit keys, lists and policy packs used). It writes
nothing: the caller moves the case and audits the move.

Invariants: a case screened while no list is in force is never clear (its verdict is at
least review, its first reason and each party's say so); verdicts only worsen within one
screening (:func:`worse`); the parties are screened in a fixed order (the organisation
first, then by name), so the same inputs give the same record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gpulease.compliance.countries import home_country
from gpulease.compliance.end_uses import PurposeOutcome, check_purpose, check_statement
from gpulease.compliance.matching import Outcome, decide
from gpulease.compliance.model import Address, Party, PartyKind
from gpulease.compliance.ownership import (
    ControlEdge,
    ControlRole,
    ListedParty,
    OwnershipEdge,
    Verdict,
    restriction_for_entry,
)
from gpulease.compliance.policy import EffectivePolicy
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AccessRecord, ControlRow, KycCase, OwnershipRow, PartyRow
from gpulease.services.context import ServiceContext
from gpulease.services.screening_lists import CurrentLists

NO_LIST_REASON = (
    "no screening list was in force: no party was screened against any list; import the "
    "lists (`gpulease lists import`) and the case is screened again"
)
NO_LIST_PARTY = "not screened: no screening list was in force"


def screen(
    ctx: ServiceContext,
    tx: Tx,
    case: KycCase,
    policy: EffectivePolicy,
    lists: CurrentLists,
    now: datetime,
) -> dict[str, Any]:
    settings = ctx.settings
    index = lists.index
    edges = tx.all(tx.select(OwnershipRow))
    controls = tx.all(tx.select(ControlRow))
    members = chain_members(case.party_id, edges, controls)
    parties = {p.id: p for p in tx.all(tx.select(PartyRow).where(PartyRow.id.in_(members)))}
    reasons: list[str] = []
    verdict = "clear"
    unscreened = not lists.snapshot_ids  # no list in force: nothing can be called clear
    if unscreened:
        verdict = "review"
        reasons.append(NO_LIST_REASON)
    listed: list[ListedParty] = []
    party_results = []
    hit_keys: list[str] = []
    for pid in sorted(parties, key=lambda p: (p != case.party_id, parties[p].name)):
        row = parties[pid]
        hits = index.screen(
            party_model(row),
            review_threshold=settings.review_threshold,
            block_threshold=settings.block_threshold,
        )
        found = decide(hits, settings.review_threshold, settings.block_threshold)
        hit_keys += [f"{h.entry.source}:{h.entry.entry_id}" for h in found.hits]
        level = restriction_for_entry(found.hits[0].entry) if found.hits else None
        if found.outcome is Outcome.BLOCK and level is not None:
            listed.append(
                ListedParty(
                    pid, level, f"{found.hits[0].entry.source} {found.hits[0].entry.entry_id}"
                )
            )
        if found.outcome is not Outcome.CLEAR:
            reasons.append(f"{row.name}: {found.reason}")
            verdict = worse(verdict, "review")
        party_results.append(
            {
                "party_id": pid,
                "name": row.name,
                "outcome": "review" if unscreened else found.outcome.value,
                "reason": NO_LIST_PARTY if unscreened else found.reason,
                "hits": [
                    {
                        "source": h.entry.source,
                        "entry_id": h.entry.entry_id,
                        "listed_name": h.listed_name,
                        "our_name": h.our_name,
                        "score": round(h.score, 1),
                        "identifier_match": h.identifier_match,
                        "programs": list(h.entry.programs),
                        "list_name": h.entry.list_name,
                        "features": [
                            {"name": f.name, "detail": f.detail, "weight": f.weight}
                            for f in h.features
                        ],
                    }
                    for h in found.hits[:5]
                ],
            }
        )
    as_of = now.date()
    assessment = policy.assess_ownership(
        case.party_id,
        ownership=[
            OwnershipEdge(
                e.owner_id,
                e.owned_id,
                e.percent,
                e.since.date() if e.since else None,
                e.until.date() if e.until else None,
            )
            for e in edges
            if e.owner_id in members and e.owned_id in members
        ],
        listed=listed,
        control=[
            ControlEdge(c.person_id, c.org_id, ControlRole(c.role))
            for c in controls
            if c.org_id in members
        ],
        headquarters={p.id: p.countries[0] for p in parties.values() if p.countries},
        names={p.id: p.name for p in parties.values()},
    )
    if assessment.verdict is Verdict.RESTRICTED:
        verdict = "block"
        reasons.append(assessment.reason)
    elif assessment.verdict is Verdict.FLAGGED:
        verdict = worse(verdict, "review")
        reasons += [f.reason for f in assessment.flags]
    tenant_party = parties[case.party_id]
    home = home_country(
        tenant_party.countries,
        operator_country=settings.operator_country,
        high_risk=policy.high_risk_countries,
    )
    country = home.country
    if home.flags:  # missing, unknown, or the policy's high-risk set
        verdict = worse(verdict, "review")
        reasons += list(home.flags)
    tier = policy.country_tier(country) if country else None
    if tier is not None and tier.licence_required:
        verdict = "block"
        reasons.append(
            f"{country} is a tier-{tier.tier} country: a licence is required "
            f"({', '.join(tier.rules)})"
        )
    end_use_results = []
    for code in case.end_uses:
        decision = check_purpose(code, case.end_uses, policy)
        end_use_results.append(decision.record())
        if decision.outcome is PurposeOutcome.REFUSE:
            verdict = "block"
            reasons.append(decision.reason)
    if case.end_use_statement:
        statement = check_statement(case.end_use_statement, case.end_uses, policy)
        if statement.outcome is not PurposeOutcome.ALLOW:
            refused = statement.outcome is PurposeOutcome.REFUSE
            verdict = worse(verdict, "block" if refused else "review")
            reasons.append(f"end-use statement: {statement.reason}")
    foreign = home.foreign
    provided = {k for k, v in case.identification.items() if v}
    if tx.first(tx.select(AccessRecord).where(AccessRecord.tenant_id == case.tenant_id)):
        provided.add("access_ips_with_times")
    missing = list(policy.missing_customer_fields(provided, foreign=foreign))
    if missing:
        verdict = worse(verdict, "review")
        reasons.append("customer identification lacks " + ", ".join(missing))
    if not reasons:
        reasons.append("no hit, no ownership link to a restricted party, end uses allowed")
    return {
        "verdict": verdict,
        "reasons": reasons,
        "parties": party_results,
        "hit_keys": sorted(set(hit_keys)),
        "ownership": assessment.record(),
        "end_uses": end_use_results,
        "missing_fields": missing,
        "foreign": foreign,
        "country_tier": None
        if tier is None
        else {"tier": tier.tier, "licence_required": tier.licence_required},
        "policy": policy.record(),
        "as_of": as_of.isoformat(),
    }


def chain_members(root: str, edges: list[OwnershipRow], controls: list[ControlRow]) -> set[str]:
    """The root, its owners up the chain, and the officers of any of them."""
    owners: dict[str, list[str]] = {}
    for edge in edges:
        owners.setdefault(edge.owned_id, []).append(edge.owner_id)
    found, todo = {root}, [root]
    while todo:
        for owner in owners.get(todo.pop(), []):
            if owner not in found:
                found.add(owner)
                todo.append(owner)
    found |= {c.person_id for c in controls if c.org_id in found}
    return found


def party_model(row: PartyRow) -> Party:
    return Party(
        id=row.id,
        kind=PartyKind(row.kind),
        name=row.name,
        aliases=tuple(row.aliases),
        countries=tuple(row.countries),
        identifiers=tuple((k, v) for k, v in row.identifiers),
        addresses=tuple(Address(**a) for a in row.addresses),
    )


def rank(verdict: str) -> int:
    return {"": 0, "clear": 0, "review": 1, "block": 2}.get(verdict, 0)


def worse(a: str, b: str) -> str:
    return a if rank(a) >= rank(b) else b
