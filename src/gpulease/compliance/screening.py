"""The screening of one KYC case: its declared parties and edges, the lists, the policy, a day.

Design. :func:`screen_case` is pure: given the case's facts (every declared party, the
ownership and control edges among them, the declared end uses, the customer-identification
fields provided), an index of the lists in force, the matching thresholds and the policy in
force on the day (``policy.as_of``), it returns a :class:`ScreeningResult`: the verdict
(:class:`ScreeningVerdict`), every reason, each party's outcome and hits, what blocks the case
and under which rule and list (:class:`Block`), the ownership assessment, the end-use
decisions, the missing customer fields. :meth:`ScreeningResult.record` is the one place the
result becomes the JSON stored on the case (the shape readers of ``kyc_cases.screening``
know; see :func:`recorded_rules` and :func:`recorded_hit_keys` for what re-screening reads).

Every declared party is screened, linked to the tenant's chain or not: a listed party
declared beside the chain (in a cycle of its own, say) is a finding, marked as not linked.

Invariants. A case screened while no list is in force is never clear (its verdict is at
least review, its first reason and each party's say so). Verdicts only worsen within one
screening (:func:`worse`). A block always names the rule that blocks (a policy rule ref, or
``listed`` for a party on a list itself) and the lists behind it: a tenant blocked under the
BIS affiliates rule says so, not "sdn". The parties are screened in a fixed order (the
organisation first, then by name and id), so the same inputs give the same record. An
ownership graph that cannot be assessed (it should have been refused at submission) makes
the verdict review with the error as its reason; it never raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

from gpulease.compliance.countries import home_country
from gpulease.compliance.end_uses import (
    PurposeDecision,
    PurposeOutcome,
    check_purpose,
    check_statement,
)
from gpulease.compliance.matching import Outcome, decide
from gpulease.compliance.matching import Verdict as NameVerdict
from gpulease.compliance.model import Hit, ListEntry, Party
from gpulease.compliance.ownership import (
    ControlEdge,
    ListedParty,
    OwnershipAssessment,
    OwnershipEdge,
    OwnershipRestriction,
    chain_members,
    format_percent,
    restriction_for_entry,
)
from gpulease.compliance.policy import CountryTier, EffectivePolicy
from gpulease.domain.errors import InvalidRequest

NO_LIST_REASON = (
    "no screening list was in force: no party was screened against any list; import the "
    "lists (`gpulease lists import`) and the case is screened again"
)
NO_LIST_PARTY = "not screened: no screening list was in force"
LISTED = "listed"  # the rule of a block by a party's own listing
NOT_LINKED = "declared in the case but not linked to the tenant's ownership or control chain"
HITS_KEPT = 5  # hits recorded per party


class ScreeningVerdict(StrEnum):
    """clear < review < block: an officer decides review; nobody can approve block."""

    CLEAR = "clear"
    REVIEW = "review"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, text: str | None) -> ScreeningVerdict | None:
        """A stored verdict ("" or an unknown word: None, never screened)."""
        return next((v for v in cls if v.value == text), None)


_RANK = {ScreeningVerdict.CLEAR: 0, ScreeningVerdict.REVIEW: 1, ScreeningVerdict.BLOCK: 2}


def worse(a: ScreeningVerdict, b: ScreeningVerdict) -> ScreeningVerdict:
    return a if a.rank >= b.rank else b


class PartyIndex(Protocol):
    """The lists in force, indexed (``compliance.matching.ScreeningIndex`` is one)."""

    def screen(
        self, party: Party, *, review_threshold: float, block_threshold: float
    ) -> Sequence[Hit]: ...


@dataclass(frozen=True, slots=True)
class Thresholds:
    review: float
    block: float


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """What a case declares, as the core needs it (ids are the parties' stored ids)."""

    subject: str  # the organisation's party
    parties: tuple[Party, ...]  # every declared party, the subject among them
    ownership: tuple[OwnershipEdge, ...] = ()
    control: tuple[ControlEdge, ...] = ()
    end_uses: tuple[str, ...] = ()
    end_use_statement: str = ""
    identification: frozenset[str] = frozenset()  # names of the filled customer fields
    operator_country: str = "US"


@dataclass(frozen=True, slots=True)
class PartyScreening:
    party_id: str
    name: str
    outcome: Outcome
    reason: str
    hits: tuple[Hit, ...]
    linked: bool  # reached from the tenant by ownership or control
    listing: ListedParty | None  # a block-level hit on a list inside the 50 % ordering


@dataclass(frozen=True, slots=True)
class Block:
    """Why nobody may approve the case: the rule that blocks and the lists behind it."""

    rule: str  # a policy rule ref ("pack@version/rule"), or LISTED
    lists: tuple[str, ...]  # e.g. "BIS Entity List (csl 29a0f33b5cc39bdf)"
    parties: tuple[str, ...]  # the listed or owning parties behind it
    reason: str


@dataclass(frozen=True, slots=True)
class ScreeningResult:
    as_of: date
    verdict: ScreeningVerdict
    reasons: tuple[str, ...]
    parties: tuple[PartyScreening, ...]
    blocks: tuple[Block, ...]
    ownership: OwnershipAssessment | None  # None: the graph could not be assessed
    end_uses: tuple[PurposeDecision, ...]
    missing_fields: tuple[str, ...]
    foreign: bool
    country_tier: CountryTier | None
    policy: EffectivePolicy
    lists_in_force: bool

    @property
    def hit_keys(self) -> tuple[str, ...]:
        return tuple(
            sorted({f"{h.entry.source}:{h.entry.entry_id}" for p in self.parties for h in p.hits})
        )

    def record(self) -> dict[str, Any]:
        """The JSON stored on the case (``kyc_cases.screening``) and shown to officers."""
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "parties": [_party_record(p, self.lists_in_force) for p in self.parties],
            "hit_keys": list(self.hit_keys),
            "blocks": [
                {
                    "rule": b.rule,
                    "lists": list(b.lists),
                    "parties": list(b.parties),
                    "reason": b.reason,
                }
                for b in self.blocks
            ],
            "ownership": None if self.ownership is None else self.ownership.record(),
            "end_uses": [d.record() for d in self.end_uses],
            "missing_fields": list(self.missing_fields),
            "foreign": self.foreign,
            "country_tier": None
            if self.country_tier is None
            else {
                "tier": self.country_tier.tier,
                "licence_required": self.country_tier.licence_required,
            },
            "policy": self.policy.record(),
            "as_of": self.as_of.isoformat(),
        }


def _party_record(p: PartyScreening, lists_in_force: bool) -> dict[str, Any]:
    return {
        "party_id": p.party_id,
        "name": p.name,
        "outcome": p.outcome.value if lists_in_force else Outcome.REVIEW.value,
        "reason": p.reason if lists_in_force else NO_LIST_PARTY,
        "linked": p.linked,
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
                "list": list_label(h.entry),
                "features": [
                    {"name": f.name, "detail": f.detail, "weight": f.weight} for f in h.features
                ],
            }
            for h in p.hits[:HITS_KEPT]
        ],
    }


def recorded_rules(record: Mapping[str, Any] | None) -> frozenset[str] | None:
    """The policy rules in force when a stored screening was made (None: none recorded)."""
    policy = (record or {}).get("policy")
    rules = policy.get("rules") if isinstance(policy, Mapping) else None
    return frozenset(str(r) for r in rules) if isinstance(rules, list) else None


def recorded_hit_keys(record: Mapping[str, Any] | None) -> frozenset[str]:
    keys = (record or {}).get("hit_keys")
    return frozenset(str(k) for k in keys) if isinstance(keys, list) else frozenset()


def list_label(entry: ListEntry) -> str:
    """Which list an entry is on, in words: its component list, else its level, else source."""
    level = restriction_for_entry(entry)
    return entry.list_name or (level.label if level is not None else entry.source)


# ---------------------------------------------------------------- the screening


def screen_case(
    facts: CaseFacts,
    *,
    index: PartyIndex,
    lists_in_force: bool,
    thresholds: Thresholds,
    policy: EffectivePolicy,
) -> ScreeningResult:
    """Screen ``facts`` on ``policy.as_of`` (the module docstring gives the rules)."""
    by_id = {p.id: p for p in facts.parties}
    subject = by_id[facts.subject]
    linked = chain_members(
        facts.subject,
        ((e.owner, e.owned) for e in facts.ownership),
        ((c.person_or_org, c.org) for c in facts.control),
    )
    verdict = ScreeningVerdict.CLEAR
    reasons: list[str] = []
    if not lists_in_force:
        verdict = ScreeningVerdict.REVIEW
        reasons.append(NO_LIST_REASON)

    screened = tuple(
        _screen_party(p, index, thresholds, p.id in linked)
        for p in sorted(facts.parties, key=lambda p: (p.id != facts.subject, p.name, p.id))
    )
    for party in screened:
        if party.outcome is not Outcome.CLEAR:
            verdict = worse(verdict, ScreeningVerdict.REVIEW)
            reasons.append(f"{party.name}: {party.reason}")

    names = {p.id: p.name for p in facts.parties}
    blocks: list[Block] = []
    assessment: OwnershipAssessment | None = None
    listed = [p.listing for p in screened if p.listing is not None]
    try:
        assessment = policy.assess_ownership(
            facts.subject,
            ownership=facts.ownership,
            listed=listed,
            control=facts.control,
            headquarters={p.id: p.countries[0] for p in facts.parties if p.countries},
            names=names,
        )
    except InvalidRequest as error:  # refused at submission; an older case may still have it
        verdict = worse(verdict, ScreeningVerdict.REVIEW)
        message = error.message
        for pid, name in names.items():  # the officer reads names, not party ids
            message = message.replace(pid, name)
        reasons.append(f"the ownership could not be assessed: {message}")
        own = next((x for x in listed if x.party == facts.subject), None)
        if own is not None:
            blocks.append(_listed_block(own, names))
    if assessment is not None:
        if assessment.listing is not None:
            blocks.append(_listed_block(assessment.listing, names))
        blocks += [
            _rule_block(i, assessment, listed, facts.ownership, names) for i in assessment.inherited
        ]
        if assessment.inherited or assessment.listing is not None:
            reasons += [b.reason for b in blocks]
            reasons.append(assessment.reason)
        elif assessment.flags:
            verdict = worse(verdict, ScreeningVerdict.REVIEW)
            reasons += [f.reason for f in assessment.flags]
    elif blocks:
        reasons += [b.reason for b in blocks]

    home = home_country(
        subject.countries,
        operator_country=facts.operator_country,
        high_risk=policy.high_risk_countries,
    )
    country = home.country
    if home.flags:  # missing, unknown, or in the policy's high-risk set
        verdict = worse(verdict, ScreeningVerdict.REVIEW)
        reasons += list(home.flags)
    tier = policy.country_tier(country) if country else None
    if tier is not None and tier.licence_required:
        why = f"{country} is a tier-{tier.tier} country: a licence is required"
        blocks.append(Block(", ".join(tier.rules), (), (facts.subject,), why))
        reasons.append(f"{why} ({', '.join(tier.rules)})")

    decisions: list[PurposeDecision] = []
    for code in facts.end_uses:
        decision = check_purpose(code, facts.end_uses, policy)
        decisions.append(decision)
        if decision.outcome is PurposeOutcome.REFUSE:
            rules = ", ".join(decision.policy_rules) or "prohibited end use"
            blocks.append(Block(rules, (), (facts.subject,), decision.reason))
            reasons.append(decision.reason)
    if facts.end_use_statement and facts.end_uses:
        statement = check_statement(facts.end_use_statement, facts.end_uses, policy)
        if statement.outcome is PurposeOutcome.REFUSE:
            why = f"end-use statement: {statement.reason}"
            blocks.append(Block("prohibited end use", (), (facts.subject,), why))
            reasons.append(why)
        elif statement.outcome is PurposeOutcome.REVIEW:
            verdict = worse(verdict, ScreeningVerdict.REVIEW)
            reasons.append(f"end-use statement: {statement.reason}")

    foreign = home.foreign
    missing = policy.missing_customer_fields(facts.identification, foreign=foreign)
    if missing:
        verdict = worse(verdict, ScreeningVerdict.REVIEW)
        reasons.append("customer identification lacks " + ", ".join(missing))
    if blocks:
        verdict = ScreeningVerdict.BLOCK
    if not reasons:
        reasons.append("no hit, no ownership link to a restricted party, end uses allowed")
    return ScreeningResult(
        as_of=policy.as_of,
        verdict=verdict,
        reasons=tuple(reasons),
        parties=screened,
        blocks=tuple(blocks),
        ownership=assessment,
        end_uses=tuple(decisions),
        missing_fields=missing,
        foreign=foreign,
        country_tier=tier,
        policy=policy,
        lists_in_force=lists_in_force,
    )


def party_reason(found: NameVerdict) -> str:
    """Why a name screened as it did: the matcher's reason and, unless clear, the list its best
    hit is on (a case's party and an officer's ad-hoc screening say it alike)."""
    if found.hits and found.outcome is not Outcome.CLEAR:
        return f"{found.reason}; on the {list_label(found.hits[0].entry)}"
    return found.reason


def _screen_party(
    party: Party, index: PartyIndex, thresholds: Thresholds, linked: bool
) -> PartyScreening:
    hits = index.screen(party, review_threshold=thresholds.review, block_threshold=thresholds.block)
    found = decide(hits, thresholds.review, thresholds.block)
    listing: ListedParty | None = None
    reason = party_reason(found)
    if found.hits and found.outcome is not Outcome.CLEAR:
        top = found.hits[0].entry
        level = restriction_for_entry(top)
        if found.outcome is Outcome.BLOCK and level is not None:
            listing = ListedParty(
                party.id, level, f"{list_label(top)}, {top.source} {top.entry_id}"
            )
    if not linked and found.outcome is not Outcome.CLEAR:
        reason += f" ({NOT_LINKED})"
    return PartyScreening(
        party.id, party.name, found.outcome, reason, tuple(found.hits), linked, listing
    )


def _listed_block(listing: ListedParty, names: Mapping[str, str]) -> Block:
    who = names.get(listing.party, listing.party)
    return Block(
        LISTED,
        (listing.basis,),
        (listing.party,),
        f"{who} is itself listed: {listing.basis} ({listing.restriction.label}).",
    )


def _rule_block(
    found: OwnershipRestriction,
    assessment: OwnershipAssessment,
    listed: Sequence[ListedParty],
    ownership: Sequence[OwnershipEdge],
    names: Mapping[str, str],
) -> Block:
    """A block by ownership under one 50 % rule: the rule, the stakes and their lists (an
    owner restricted through its own owners names the lists of the listed parties above)."""
    basis = {x.party: x.basis for x in listed}
    owners: dict[str, set[str]] = {}
    for edge in ownership:
        if edge.held_on(assessment.as_of):
            owners.setdefault(edge.owned, set()).add(edge.owner)
    parts: list[str] = []
    lists: list[str] = []
    for stake in found.stakes:
        who = names.get(stake.owner, stake.owner)
        if stake.owner_listed and stake.owner in basis:
            lists.append(basis[stake.owner])
            parts.append(f"{format_percent(stake.percent)} by {who} ({basis[stake.owner]})")
            continue
        above = sorted(p for p in _ancestors(stake.owner, owners) if p in basis)
        lists += [basis[p] for p in above]
        by = ", ".join(names.get(p, p) for p in above) or "listed parties"
        parts.append(
            f"{format_percent(stake.percent)} by {who} (itself restricted under "
            f"{found.rule_id} through {by})"
        )
    subject = names.get(assessment.subject, assessment.subject)
    reason = (
        f"{subject} is blocked under {found.rule_id}: {format_percent(found.total)} owned by "
        f"listed parties and their affiliates ({'; '.join(parts)})."
    )
    return Block(
        found.rule_id,
        tuple(dict.fromkeys(lists)),
        tuple(s.owner for s in found.stakes),
        reason,
    )


def _ancestors(party: str, owners: Mapping[str, set[str]]) -> set[str]:
    found: set[str] = set()
    todo = [party]
    while todo:
        for owner in owners.get(todo.pop(), ()):
            if owner not in found and owner != party:
                found.add(owner)
                todo.append(owner)
    return found
