"""Screening one KYC case: load its declared parties and edges, call the core, store the result.

Design. The decision is :func:`gpulease.compliance.screening.screen_case` (pure, typed);
this module only loads what it needs (:func:`load_facts`), calls it (:func:`screen`) and
writes the typed result onto the case (:func:`store`, through
:meth:`~gpulease.compliance.screening.ScreeningResult.record`, the one serialisation). The
caller (``kyc.screen_case``, ``rescreening``) moves the case and audits the move.

A case records the parties it declared (``kyc_cases.declared_parties``: ref -> party id), and
every one of them is screened, linked to the tenant's chain or not. A case from before that
column has its parties found as they were then: the organisation, its owners up the chain,
the holders of a role in any of them.

A case whose facts cannot be screened (stored data a submission would now refuse: stakes
above 100 %, a party kind, role or address the code no longer knows) is not left waiting:
:func:`screen` raises it as an :class:`InvalidRequest` (never a ``ValueError`` that would
stop the scheduler's pass at the first such case), and :func:`failed` is a review verdict
whose reason is the error, so an officer sees it, the tenant can be told, and nobody retries
it every pass.
"""

from __future__ import annotations

from datetime import datetime

from gpulease.compliance.model import Address, Party, PartyKind
from gpulease.compliance.ownership import ControlEdge, ControlRole, OwnershipEdge
from gpulease.compliance.ownership import chain_members as walk_chain
from gpulease.compliance.policy import EffectivePolicy
from gpulease.compliance.screening import (
    NO_LIST_PARTY,
    NO_LIST_REASON,
    CaseFacts,
    ScreeningResult,
    ScreeningVerdict,
    Thresholds,
    screen_case,
)
from gpulease.domain.errors import DomainError, InvalidRequest
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AccessRecord, ControlRow, KycCase, OwnershipRow, PartyRow
from gpulease.services import metrics
from gpulease.services.context import ServiceContext
from gpulease.services.screening_lists import CurrentLists

__all__ = [
    "NO_LIST_PARTY",
    "NO_LIST_REASON",
    "case_parties",
    "chain_members",
    "failed",
    "load_facts",
    "party_model",
    "screen",
    "store",
]

SITES_KEY = "sites"  # screening[...]: site id -> that site's last re-screening (rescreening)
ACCESS_FIELD = "access_ips_with_times"  # provided by the API's own access records
# what stored data a submission would now refuse raises when read back into the core's types
UNREADABLE = (ValueError, TypeError, KeyError, ArithmeticError)


def screen(
    ctx: ServiceContext,
    tx: Tx,
    case: KycCase,
    policy: EffectivePolicy,
    lists: CurrentLists,
) -> ScreeningResult:
    """The case screened against ``lists`` under ``policy``, on ``policy``'s day.

    Raises DomainError if the stored facts cannot be screened (see :func:`failed`)."""
    settings = ctx.settings
    try:
        return screen_case(
            load_facts(ctx, tx, case),
            index=lists.index,
            lists_in_force=bool(lists.snapshot_ids),
            thresholds=Thresholds(settings.review_threshold, settings.block_threshold),
            policy=policy,
        )
    except UNREADABLE as error:  # a kind, role or address no longer known: never a crash
        raise InvalidRequest(
            f"its stored parties or edges cannot be read ({error})", case_id=case.id
        ) from None


def failed(policy: EffectivePolicy, lists: CurrentLists, error: DomainError) -> ScreeningResult:
    """The result of a case that could not be screened: review, the error as the reason."""
    return ScreeningResult(
        as_of=policy.as_of,
        verdict=ScreeningVerdict.REVIEW,
        reasons=(f"the case could not be screened: {error.message}",),
        parties=(),
        blocks=(),
        ownership=None,
        end_uses=(),
        missing_fields=(),
        foreign=False,
        country_tier=None,
        policy=policy,
        lists_in_force=bool(lists.snapshot_ids),
    )


def store(
    case: KycCase,
    result: ScreeningResult,
    policy: EffectivePolicy,
    lists: CurrentLists,
    now: datetime,
) -> None:
    """Write the screening onto the case (its record, verdict, policy and lists used); the
    per-site records a site's re-screening keeps there (``sites``) are carried over."""
    kept = (case.screening or {}).get(SITES_KEY)
    case.screening = result.record() | ({SITES_KEY: kept} if isinstance(kept, dict) else {})
    case.verdict = result.verdict.value
    case.policy_versions = list(policy.packs)
    case.lists_screened = list(lists.snapshot_ids)
    case.screened_at = now
    metrics.count_screening("kyc", result.verdict.value)


def load_facts(ctx: ServiceContext, tx: Tx, case: KycCase) -> CaseFacts:
    """Every declared party of the case with the edges among them."""
    if case.declared_parties is not None:
        ids = case_parties(case, [], [])
        edge_rows = tx.all(tx.select(OwnershipRow).where(OwnershipRow.owned_id.in_(sorted(ids))))
        control_rows = tx.all(tx.select(ControlRow).where(ControlRow.org_id.in_(sorted(ids))))
    else:  # a case from before: its chain, as it was screened then
        edge_rows = tx.all(tx.select(OwnershipRow))
        control_rows = tx.all(tx.select(ControlRow))
        ids = case_parties(case, edge_rows, control_rows)
    rows = tx.all(tx.select(PartyRow).where(PartyRow.id.in_(sorted(ids))))
    provided = {k for k, v in case.identification.items() if v}
    if tx.first(tx.select(AccessRecord).where(AccessRecord.tenant_id == case.tenant_id)):
        provided.add(ACCESS_FIELD)
    return CaseFacts(
        subject=case.party_id,
        parties=tuple(party_model(r) for r in sorted(rows, key=lambda r: r.id)),
        ownership=tuple(
            OwnershipEdge(
                e.owner_id,
                e.owned_id,
                e.percent,
                e.since.date() if e.since else None,
                e.until.date() if e.until else None,
            )
            for e in sorted(edge_rows, key=lambda e: e.id)
            if e.owner_id in ids and e.owned_id in ids
        ),
        control=tuple(
            ControlEdge(c.person_id, c.org_id, ControlRole(c.role))
            for c in sorted(control_rows, key=lambda c: c.id)
            if c.person_id in ids and c.org_id in ids
        ),
        end_uses=tuple(case.end_uses),
        end_use_statement=case.end_use_statement,
        identification=frozenset(provided),
        operator_country=ctx.settings.operator_country,
    )


def case_parties(case: KycCase, edges: list[OwnershipRow], controls: list[ControlRow]) -> set[str]:
    """The parties of ``case``: every party it declared (linked to the tenant's chain or
    not), or for a case from before ``declared_parties``, its chain in ``edges`` and
    ``controls`` (:func:`chain_members`). What the case was screened on and is disclosed as."""
    if case.declared_parties is not None:
        return {case.party_id, *case.declared_parties.values()}
    return chain_members(case.party_id, edges, controls)


def chain_members(root: str, edges: list[OwnershipRow], controls: list[ControlRow]) -> set[str]:
    """The root, its owners up the chain, and the officers of any of them (stored rows)."""
    return set(
        walk_chain(
            root,
            ((e.owner_id, e.owned_id) for e in edges),
            ((c.person_id, c.org_id) for c in controls),
        )
    )


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
