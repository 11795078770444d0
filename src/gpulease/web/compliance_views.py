"""The compliance pages' view models: typed, ready to print, built from what services return.

Design. Templates print; they decide nothing. Each builder here turns a service's answer into
frozen dataclasses of strings and numbers:

* :func:`queue_view` (``services.case_review.ReviewQueue``): a row per case waiting for an
  officer (tenant, verdict, round, approvals so far of those needed, parties flagged) and a
  row per pending purpose review;
* :func:`case_view` (``services.case_review.CaseDossier``): one case: its reasons and blocks,
  each party's potential matches explained side by side (:class:`MatchView`: our name and the
  list entry's, the score, the words aligned one to one by the same scorer the matcher uses,
  the words only one side has, the list and programmes, the features that weighed), the
  ownership and control graph (:class:`~gpulease.web.ownership_svg.OwnershipGraph`, every
  party marked listed / possible match / blocked / not linked), the stakes and roles as a
  table, the officers' decisions, and whether the viewer may decide it now (and if approval
  is impossible, why: a blocked case, missing identification);
* :func:`policy_view` (``compliance.policy.EffectivePolicy``): the packs and rules in force on
  a day, and the rules that are not (suspended, not yet, expired, rescinded) with their dates;
* :func:`tenant_cases_view`: a tenant's own cases through ``compliance.disclosure``'s tenant
  view only (state, status in plain words, what to supply): never a score, a list entry, an
  officer's reason or another tenant.

Invariants. A stored screening record is read, never trusted to be well formed: missing or
mistyped fields give empty values, never an exception (a record written by an older version
still renders). Every text a tenant typed (names, statements) or that quotes one (reasons) is
passed through :func:`~gpulease.web.svg_text.visible`: a right-to-left override or a
zero-width character is shown, not obeyed, so the officer reads the name that was screened
(the templates escape the rest). The officer's view shows screening internals; nothing built by
:func:`tenant_cases_view` reads the screening record except through the tenant's view.
Pure: no I/O, no clock (``today`` is an argument).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from gpulease.compliance.disclosure import CaseRecord, tenant_case_view
from gpulease.compliance.name_scoring import align
from gpulease.compliance.names import normalize_name
from gpulease.compliance.policy import EffectivePolicy
from gpulease.compliance.screening import CaseFacts
from gpulease.domain.states import KycState
from gpulease.services.case_review import CaseDossier, ReviewQueue
from gpulease.web.ownership_svg import (
    EdgeKind,
    GraphEdge,
    GraphNode,
    NodeMark,
    OwnershipGraph,
    distances,
    role_words,
    stake_label,
)
from gpulease.web.svg_text import visible

LISTED_RULE = "listed"


# ------------------------------------------------------------------ the queue
@dataclass(frozen=True, slots=True)
class QueueRow:
    case_id: str
    tenant_id: str
    tenant_name: str
    verdict: str
    round: int
    approvals: str  # "1 of 2"
    flagged: int  # parties whose screening is not clear
    submitted_at: datetime
    reason: str  # the first reason of the screening


@dataclass(frozen=True, slots=True)
class PurposeRow:
    review_id: str
    tenant_name: str
    subject: str  # "job job-..."
    purpose: str
    code: str
    reason: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class QueueView:
    cases: tuple[QueueRow, ...]
    purposes: tuple[PurposeRow, ...]
    purposes_visible: bool
    more_cases: bool


def queue_view(queue: ReviewQueue) -> QueueView:
    """The review queue for the page."""
    so_far = queue.approvals
    rows = []
    for case in queue.cases:
        record = _mapping(case.screening)
        parties = [_mapping(p) for p in _list(record.get("parties"))]
        reasons = [str(r) for r in _list(record.get("reasons"))]
        rows.append(
            QueueRow(
                case_id=case.id,
                tenant_id=case.tenant_id,
                tenant_name=visible(queue.tenant_names.get(case.tenant_id, "") or case.tenant_id),
                verdict=case.verdict or "not screened",
                round=case.round,
                approvals=f"{so_far.get(case.id, 0)} of {case.approvals_needed}",
                flagged=sum(1 for p in parties if p.get("outcome") not in (None, "clear")),
                submitted_at=case.submitted_at,
                reason=visible(reasons[0] if reasons else case.state_reason),
            )
        )
    purposes = tuple(
        PurposeRow(
            review_id=r.id,
            tenant_name=visible(queue.tenant_names.get(r.tenant_id, "") or r.tenant_id),
            subject=f"{r.subject_type} {r.subject_id}",
            purpose=visible(r.purpose),
            code=r.code,
            reason=visible(r.reason),
            opened_at=r.opened_at,
        )
        for r in queue.purposes
    )
    return QueueView(tuple(rows), purposes, queue.purposes_visible, queue.more_cases)


# ------------------------------------------------------------------ one case
@dataclass(frozen=True, slots=True)
class WordPair:
    ours: str
    theirs: str
    similarity: float  # 1.0 equal words


@dataclass(frozen=True, slots=True)
class FeatureView:
    name: str
    detail: str
    weight: float


@dataclass(frozen=True, slots=True)
class MatchView:
    """One potential match: our party's name beside the list entry's, explained."""

    party_id: str
    party_name: str
    our_name: str  # which of the party's names matched
    listed_name: str  # which of the entry's names
    score: float
    source: str
    entry_id: str
    list_label: str
    programs: tuple[str, ...]
    identifier_match: bool
    words: tuple[WordPair, ...]  # aligned one to one, in the order of our name's words
    ours_only: tuple[str, ...]
    listed_only: tuple[str, ...]
    features: tuple[FeatureView, ...]


@dataclass(frozen=True, slots=True)
class PartyView:
    party_id: str
    name: str
    kind: str
    countries: tuple[str, ...]
    outcome: str  # clear / review / block
    reason: str
    linked: bool
    matches: tuple[MatchView, ...]


@dataclass(frozen=True, slots=True)
class BlockView:
    rule: str
    lists: tuple[str, ...]
    parties: tuple[str, ...]  # names
    reason: str


@dataclass(frozen=True, slots=True)
class EdgeRow:
    source: str  # names
    target: str
    kind: str  # stake / role
    label: str
    period: str  # "" or "since 2020-01-01 until 2025-06-30"
    current: bool


@dataclass(frozen=True, slots=True)
class DecisionView:
    officer_id: str
    decision: str
    reason: str
    round: int
    at: datetime


@dataclass(frozen=True, slots=True)
class CaseView:
    case_id: str
    tenant_id: str
    tenant_name: str
    state: str
    state_reason: str
    verdict: str
    round: int
    as_of: str  # the screening's day
    reasons: tuple[str, ...]
    blocks: tuple[BlockView, ...]
    parties: tuple[PartyView, ...]
    graph: OwnershipGraph | None
    edges: tuple[EdgeRow, ...]
    unreadable: str
    end_uses: tuple[str, ...]
    end_use_statement: str
    missing_fields: tuple[str, ...]
    policy_packs: tuple[str, ...]
    lists_screened: tuple[str, ...]
    decisions: tuple[DecisionView, ...]
    approvals_this_round: int
    approvals_needed: int
    open: bool  # needs_review: an officer may decide it
    approvable: bool
    why_not_approvable: str


def case_view(dossier: CaseDossier, *, today: date) -> CaseView:
    """One case for an officer (see the module docstring)."""
    case = dossier.case
    record = _mapping(case.screening)
    names = _party_names(dossier.facts)
    parties = tuple(_party_view(_mapping(p), dossier.facts) for p in _list(record.get("parties")))
    blocks = tuple(
        BlockView(
            rule=str(b.get("rule", "")),
            lists=tuple(str(x) for x in _list(b.get("lists"))),
            parties=tuple(visible(names.get(str(x), str(x))) for x in _list(b.get("parties"))),
            reason=visible(str(b.get("reason", ""))),
        )
        for b in (_mapping(x) for x in _list(record.get("blocks")))
    )
    as_of = _day(record.get("as_of")) or today
    graph = None if dossier.facts is None else ownership_graph(dossier.facts, record, as_of)
    this_round = [d for d in dossier.decisions if d.screening_round == case.round]
    missing = tuple(str(f) for f in _list(record.get("missing_fields")))
    why_not = ""
    if case.verdict == "block":
        why_not = "a blocked case can only be rejected"
    elif missing:
        why_not = "customer identification lacks " + ", ".join(missing)
    return CaseView(
        case_id=case.id,
        tenant_id=case.tenant_id,
        tenant_name=visible(dossier.tenant_name or case.tenant_id),
        state=case.state,
        state_reason=visible(case.state_reason),
        verdict=case.verdict or "not screened",
        round=case.round,
        as_of=as_of.isoformat(),
        reasons=tuple(visible(str(r)) for r in _list(record.get("reasons"))),
        blocks=blocks,
        parties=parties,
        graph=graph,
        edges=() if dossier.facts is None else _edge_rows(dossier.facts, as_of),
        unreadable=dossier.unreadable,
        end_uses=tuple(case.end_uses),
        end_use_statement=visible(case.end_use_statement),
        missing_fields=missing,
        policy_packs=tuple(case.policy_versions),
        lists_screened=tuple(case.lists_screened),
        decisions=tuple(
            DecisionView(d.officer_id, d.decision, visible(d.reason), d.screening_round, d.at)
            for d in dossier.decisions
        ),
        approvals_this_round=sum(1 for d in this_round if d.decision == "approve"),
        approvals_needed=dossier.approvals_needed,
        open=case.state == KycState.NEEDS_REVIEW,
        approvable=case.state == KycState.NEEDS_REVIEW and not why_not,
        why_not_approvable=why_not,
    )


def ownership_graph(facts: CaseFacts, record: Mapping[str, Any], as_of: date) -> OwnershipGraph:
    """The case's parties and edges, each party marked from the stored screening."""
    outcome = {
        str(p.get("party_id")): str(p.get("outcome", ""))
        for p in (_mapping(x) for x in _list(record.get("parties")))
    }
    blocked = {
        str(party)
        for b in (_mapping(x) for x in _list(record.get("blocks")))
        for party in _list(b.get("parties"))
    }
    notes = {
        str(p.get("party_id")): _best_hit_note(p)
        for p in (_mapping(x) for x in _list(record.get("parties")))
    }
    edges = tuple(
        GraphEdge(e.owner, e.owned, EdgeKind.STAKE, stake_label(e.percent), e.held_on(as_of))
        for e in facts.ownership
    ) + tuple(
        GraphEdge(c.person_or_org, c.org, EdgeKind.ROLE, role_words(c.role.value), c.held_on(as_of))
        for c in facts.control
    )
    linked = distances(OwnershipGraph(facts.subject, (), edges))
    nodes = []
    for party in facts.parties:
        marks: set[NodeMark] = set()
        if party.id == facts.subject:
            marks.add(NodeMark.SUBJECT)
        if outcome.get(party.id) == "block":
            marks.add(NodeMark.LISTED)
        elif outcome.get(party.id) == "review" and notes.get(party.id):
            marks.add(NodeMark.POSSIBLE)
        if party.id in blocked and NodeMark.LISTED not in marks:
            marks.add(NodeMark.BLOCKED)
        if party.id == facts.subject and record.get("verdict") == "block":
            marks.add(NodeMark.BLOCKED)
        if party.id not in linked:
            marks.add(NodeMark.NOT_LINKED)
        nodes.append(
            GraphNode(
                party.id, party.name, party.kind.value, frozenset(marks), notes.get(party.id, "")
            )
        )
    return OwnershipGraph(facts.subject, tuple(nodes), edges)


def _best_hit_note(party: Mapping[str, Any]) -> str:
    hits = [_mapping(h) for h in _list(party.get("hits"))]
    if not hits or party.get("outcome") in (None, "clear"):
        return ""
    top = hits[0]
    return (
        f"{top.get('listed_name', '')} on the {top.get('list', top.get('source', ''))} "
        f"({top.get('source', '')} {top.get('entry_id', '')}), score {top.get('score', '')}"
    )


def _party_view(record: Mapping[str, Any], facts: CaseFacts | None) -> PartyView:
    pid = str(record.get("party_id", ""))
    model = next((p for p in facts.parties if p.id == pid), None) if facts else None
    name = str(record.get("name", "")) or (model.name if model else pid)
    return PartyView(
        party_id=pid,
        name=visible(name),
        kind=model.kind.value if model else "",
        countries=model.countries if model else (),
        outcome=str(record.get("outcome", "")),
        reason=visible(str(record.get("reason", ""))),
        linked=bool(record.get("linked", True)),
        matches=tuple(match_view(pid, name, _mapping(h)) for h in _list(record.get("hits"))),
    )


def match_view(party_id: str, party_name: str, hit: Mapping[str, Any]) -> MatchView:
    """One stored hit explained: the two names' words aligned one to one (the matcher's
    alignment, with even word weights: the pairs it draws, not the weights it scored)."""
    ours, theirs = str(hit.get("our_name", "")), str(hit.get("listed_name", ""))
    alignment = align(normalize_name(ours), normalize_name(theirs))
    return MatchView(
        party_id=party_id,
        party_name=visible(party_name),
        our_name=visible(ours),
        listed_name=visible(theirs),
        score=_number(hit.get("score")),
        source=str(hit.get("source", "")),
        entry_id=str(hit.get("entry_id", "")),
        list_label=str(hit.get("list", "") or hit.get("list_name", "") or hit.get("source", "")),
        programs=tuple(str(p) for p in _list(hit.get("programs"))),
        identifier_match=bool(hit.get("identifier_match", False)),
        words=tuple(WordPair(visible(a), visible(b), float(s)) for a, b, s in alignment.pairs),
        ours_only=alignment.extra,
        listed_only=alignment.missing,
        features=tuple(
            FeatureView(
                str(f.get("name", "")), visible(str(f.get("detail", ""))), _number(f.get("weight"))
            )
            for f in (_mapping(x) for x in _list(hit.get("features")))
        ),
    )


def _edge_rows(facts: CaseFacts, as_of: date) -> tuple[EdgeRow, ...]:
    names = _party_names(facts)
    stakes = [
        EdgeRow(
            names.get(e.owner, e.owner),
            names.get(e.owned, e.owned),
            EdgeKind.STAKE.value,
            stake_label(e.percent),
            _period(e.since, e.until),
            e.held_on(as_of),
        )
        for e in facts.ownership
    ]
    roles = [
        EdgeRow(
            names.get(c.person_or_org, c.person_or_org),
            names.get(c.org, c.org),
            EdgeKind.ROLE.value,
            role_words(c.role.value),
            _period(c.since, c.until),
            c.held_on(as_of),
        )
        for c in facts.control
    ]
    return tuple(stakes + roles)


def _party_names(facts: CaseFacts | None) -> dict[str, str]:
    return {} if facts is None else {p.id: visible(p.name) for p in facts.parties}


def _period(since: date | None, until: date | None) -> str:
    parts = ([f"since {since}"] if since else []) + ([f"until {until}"] if until else [])
    return " ".join(parts)


# ------------------------------------------------------------------ policy
@dataclass(frozen=True, slots=True)
class RuleView:
    ref: str
    kind: str
    title: str
    status: str  # "in_force since 2025-09-29, suspended from 2025-11-10"


@dataclass(frozen=True, slots=True)
class PackView:
    ref: str
    title: str
    source: str
    citation: str
    rules: tuple[RuleView, ...]


@dataclass(frozen=True, slots=True)
class PolicyView:
    as_of: str
    packs: tuple[PackView, ...]  # in force on the day, with their rules in force
    inactive: tuple[RuleView, ...]  # rules not in force that day, with their status


def policy_view(policy: EffectivePolicy) -> PolicyView:
    """The policy in force on ``policy.as_of``, pack by pack."""
    packs: dict[str, PackView] = {}
    for active in policy.rules:
        pack = active.pack
        view = packs.get(pack.ref) or PackView(pack.ref, pack.title, pack.source, pack.citation, ())
        rule = RuleView(
            active.ref,
            active.rule.kind.value,
            active.rule.title,
            active.rule.describe_status(policy.as_of),
        )
        packs[pack.ref] = PackView(
            view.ref, view.title, view.source, view.citation, (*view.rules, rule)
        )
    return PolicyView(
        as_of=policy.as_of.isoformat(),
        packs=tuple(packs[ref] for ref in sorted(packs)),
        inactive=tuple(RuleView(r.ref, "", "", r.detail) for r in policy.inactive),
    )


# ------------------------------------------------------------------ a tenant's own
@dataclass(frozen=True, slots=True)
class TenantCaseRow:
    case_id: str
    state: str
    status: str
    missing_identification: tuple[str, ...]
    prohibited_end_uses: tuple[str, ...]
    end_uses: tuple[str, ...]
    approved_end_uses: tuple[str, ...]
    submitted_at: datetime
    decided_at: datetime | None
    expires_at: datetime | None


def tenant_cases_view(cases: Iterable[CaseRecord]) -> tuple[TenantCaseRow, ...]:
    """A tenant's cases as its users may read them (``compliance.disclosure`` only)."""
    rows = []
    for case in cases:
        view = tenant_case_view(case)
        rows.append(
            TenantCaseRow(
                case_id=view.id,
                state=view.state,
                status=view.status,
                missing_identification=view.missing_identification,
                prohibited_end_uses=view.prohibited_end_uses,
                end_uses=view.end_uses,
                approved_end_uses=view.approved_end_uses,
                submitted_at=view.submitted_at,
                decided_at=view.decided_at,
                expires_at=view.expires_at,
            )
        )
    return tuple(rows)


# ------------------------------------------------------------------ reading records
def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _number(value: Any) -> float:
    try:
        found = float(value)
    except (TypeError, ValueError):
        return 0.0
    return found if found == found and abs(found) != float("inf") else 0.0


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
