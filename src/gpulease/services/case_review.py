"""What a compliance officer reads to review KYC cases: the queue, and one case whole.

Design. Read-only use cases for the dashboard's compliance pages (and any other edge):

* :func:`review_queue`: the KYC cases waiting for an officer (``needs_review``, oldest
  first) with their tenants' names, and, for those who may read it, the pending purpose
  reviews (``services.purpose_reviews``);
* :func:`dossier`: one case as an officer reviews it: the case row (its stored screening:
  each party's hits, blocks, ownership assessment), its declared parties with the stakes and
  roles among them (read exactly as the screening reads them,
  :func:`gpulease.services.kyc_screening.load_facts`), the officers' decisions so far and the
  number of approvals a decision taken now needs (the setting in force, as
  :func:`gpulease.services.kyc.decide_case` counts it).

Who. Both are screening internals: operator staff only (``Action.SCREENING_READ``); a case
of another tenant is *not found* to a tenant user before anything else is checked (through
:func:`gpulease.services.kyc.get_case`), its own case is *denied* (a tenant reads its case
through the tenant's view, ``compliance.disclosure``). Purpose reviews are listed only for
``Action.PURPOSE_REVIEW_READ`` (compliance officers). Deciding goes through the same
services as the API (``kyc.decide_case``, ``purpose_reviews.decide_review``), so four-eyes
and every other rule hold whatever the edge.

Invariant: reads only; a case whose stored parties cannot be read is still shown, with the
error in ``unreadable`` and no graph (it was screened to review with that error as reason).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpulease.compliance.screening import CaseFacts
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import DomainError, InvalidRequest
from gpulease.domain.states import KycState, PurposeReviewState
from gpulease.persistence.tables import KycCase, KycDecision, PurposeReview
from gpulease.services import kyc, kyc_screening, names, purpose_reviews
from gpulease.services.context import ServiceContext

QUEUE_LIMIT = 200  # cases and purpose reviews shown in the queue, each


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    cases: tuple[KycCase, ...]  # needs_review, oldest first
    tenant_names: dict[str, str]  # of the cases' and reviews' tenants
    purposes: tuple[PurposeReview, ...]  # pending, oldest first (empty: may not read them)
    purposes_visible: bool
    more_cases: bool  # more than QUEUE_LIMIT cases wait
    approvals: dict[str, int]  # case id -> approvals given in its current round


@dataclass(frozen=True, slots=True)
class CaseDossier:
    case: KycCase
    tenant_name: str
    facts: CaseFacts | None  # None: the stored parties could not be read
    unreadable: str  # why (empty when they could)
    decisions: tuple[KycDecision, ...]  # every round's, oldest first
    approvals_needed: int  # what a decision taken now needs (the setting in force)


def review_queue(ctx: ServiceContext, actor: Principal, *, limit: int = QUEUE_LIMIT) -> ReviewQueue:
    """The cases and purposes waiting for an officer (see the module docstring)."""
    actor.scope(Action.SCREENING_READ)
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000", field="limit")
    waiting = sorted(
        kyc.list_cases(ctx, actor, KycState.NEEDS_REVIEW.value),
        key=lambda c: (c.submitted_at, c.id),
    )
    purposes: list[PurposeReview] = []
    visible = actor.can(Action.PURPOSE_REVIEW_READ)
    if visible:
        purposes = purpose_reviews.list_reviews(
            ctx, actor, state=PurposeReviewState.PENDING.value, limit=limit
        )
    shown = waiting[:limit]
    rounds = {c.id: c.round for c in shown}
    approvals = dict.fromkeys(rounds, 0)
    with ctx.db.transaction(write=False) as tx:
        for decision in tx.all(
            tx.select(KycDecision).where(
                KycDecision.case_id.in_(sorted(rounds)), KycDecision.decision == "approve"
            )
        ):
            if decision.screening_round == rounds[decision.case_id]:
                approvals[decision.case_id] += 1
    tenants = names.tenant_names(
        ctx, {c.tenant_id for c in shown} | {p.tenant_id for p in purposes}
    )
    return ReviewQueue(
        tuple(shown), tenants, tuple(purposes), visible, len(waiting) > limit, approvals
    )


def dossier(ctx: ServiceContext, actor: Principal, case_id: str) -> CaseDossier:
    """One case as an officer reviews it (see the module docstring)."""
    case = kyc.get_case(ctx, actor, case_id)  # not found for another tenant's case
    actor.scope(Action.SCREENING_READ)
    facts: CaseFacts | None = None
    unreadable = ""
    with ctx.db.transaction(write=False) as tx:
        try:
            facts = kyc_screening.load_facts(ctx, tx, case)
        except (DomainError, *kyc_screening.UNREADABLE) as error:
            unreadable = str(getattr(error, "message", error))
        decisions = tx.all(
            tx.select(KycDecision)
            .where(KycDecision.case_id == case.id)
            .order_by(KycDecision.at, KycDecision.id)
        )
    return CaseDossier(
        case=case,
        tenant_name=names.tenant_name(ctx, case.tenant_id),
        facts=facts,
        unreadable=unreadable,
        decisions=tuple(decisions),
        approvals_needed=ctx.settings.kyc_approvals,
    )
