"""Purpose reviews: the officer queue for declared purposes, and the audit of refused ones.

Design. A job's declared purpose is decided by ``compliance.end_uses.check_purpose`` (the
code against the tenant's approval, the free text through the purpose classifier):

* **allow**: the job is queued as usual;
* **review** (an agent or a dual-use activity named): the job is queued **held** (the
  scheduler never starts it; its ``wait_reason`` says why, the same words admission gives,
  ``compliance.admission.purpose_refused``) and a :class:`PurposeReview` is opened in the
  same transaction. An officer lists the queue and decides: **approve** clears the purpose
  for its tenant (``tenants.cleared_purposes``, which admission reads: the held work is
  admitted at the scheduler's next pass, and later work declaring the same words is not
  held again); **reject** fails the held work with the officer's reason. A decision settles
  every pending review of the same tenant and words, so one purpose is decided once;
* **refuse**: the request fails (403 ``not_approved``, naming the term, its category and
  source) and an audit record ``purpose.refuse`` is written **in its own transaction**,
  after the request's transaction was rolled back, so nothing else of it is stored.

Who. Only compliance officers list and decide reviews (``Action.PURPOSE_REVIEW_*``); a
review of another tenant's job is never shown to a tenant. Every step is audited: the
review opened (with the job), each decision, each job it failed.

Invariants: a review moves only pending -> approved | rejected
(``PURPOSE_REVIEW_TRANSITIONS``); clearance lifts a review, never a refusal (a code no
longer approved or a prohibited use stays refused whatever was cleared); the cleared list
of a tenant holds at most :data:`CLEARED_LIMIT` purposes (the oldest leave first).
"""

from __future__ import annotations

from datetime import datetime

from gpulease.compliance.admission import REVIEW_HOLD, clip
from gpulease.compliance.end_uses import PurposeDecision, PurposeOutcome, check_purpose
from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.domain.states import (
    PURPOSE_REVIEW_TRANSITIONS,
    JobState,
    PurposeReviewState,
    transition,
)
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AuditRecord, Job, PurposeReview, Tenant
from gpulease.services import audit, kyc, runs
from gpulease.services.context import ServiceContext, new_id
from gpulease.services.standing import is_approved, why_not

CLEARED_LIMIT = 500
REVIEW_FIELDS = ("state", "decided_by", "decision_reason")


class PurposeRefused(kyc.NotApproved):
    """A declared purpose refused by the end-use check (403 ``not_approved``); carries the
    decision so the caller can audit it once its own transaction has ended."""

    def __init__(self, decision: PurposeDecision, tenant_id: str) -> None:
        super().__init__(decision.reason, field="purpose", outcome=decision.outcome.value)
        self.decision = decision
        self.tenant_id = tenant_id


def decide(ctx: ServiceContext, tenant: Tenant, purpose: str) -> PurposeDecision:
    """The purpose decision for work of ``tenant``: raises NotApproved when the tenant is not
    approved, :class:`PurposeRefused` when the purpose is refused; returns the decision
    (allow, or review unless an officer cleared these words for the tenant)."""
    now = ctx.now()
    if not is_approved(tenant, now):
        raise kyc.NotApproved(
            f"tenant {tenant.name} is not approved: {why_not(tenant, now)}",
            tenant_id=tenant.id,
            approval=tenant.approval,
        )
    decision = check_purpose(purpose, tenant.approved_end_uses, kyc.policy_on(ctx, now))
    if decision.outcome is PurposeOutcome.REFUSE:
        raise PurposeRefused(decision, tenant.id)
    if decision.outcome is PurposeOutcome.REVIEW and purpose.strip() in tenant.cleared_purposes:
        return PurposeDecision(
            PurposeOutcome.ALLOW,
            decision.code,
            decision.free_text,
            f"cleared by a compliance officer after review ({decision.reason})",
            decision.policy_rules,
            decision.packs_in_force,
            decision.classification,
        )
    return decision


def audit_refusal(ctx: ServiceContext, actor: str, refused: PurposeRefused, subject: str) -> None:
    """Record a refused purpose in a transaction of its own (the request's was rolled back).
    ``subject``: what was asked, e.g. ``job.submit``."""
    with ctx.db.transaction() as tx:
        audit.record(
            tx,
            at=ctx.now(),
            actor=actor,
            action="purpose.refuse",
            subject_type="tenant",
            subject_id=refused.tenant_id,
            after={"request": subject, **refused.decision.record()},
            reason=refused.decision.reason,
        )


def hold_reason(decision: PurposeDecision) -> str:
    """The ``wait_reason`` of work held for review: the words admission gives it."""
    return clip(f"{REVIEW_HOLD}: {decision.reason}")


def open_review(
    actor: str, job: Job, decision: PurposeDecision, now: datetime
) -> tuple[PurposeReview, AuditRecord]:
    """The review of a new job's purpose and its audit record, for the caller to insert with
    the job (which it holds: ``job.wait_reason`` is set here)."""
    job.wait_reason = hold_reason(decision)
    review = PurposeReview(
        id=new_id("review"),
        tenant_id=job.tenant_id,
        subject_type="job",
        subject_id=job.id,
        purpose=job.purpose,
        code=decision.code or "",
        reason=decision.reason[:1000],
        decision=decision.record(),
        state=PurposeReviewState.PENDING.value,
        opened_at=now,
        decided_by=None,
        decided_at=None,
        decision_reason="",
    )
    trail = audit.entry(
        at=now,
        actor=actor,
        action="purpose.review",
        subject_type="job",
        subject_id=job.id,
        after={"review_id": review.id, **decision.record()},
        reason=decision.reason,
    )
    return review, trail


# ----------------------------------------------------------------- the queue
def list_reviews(
    ctx: ServiceContext,
    actor: Principal,
    *,
    state: str | None = None,
    tenant_id: str | None = None,
    limit: int = 200,
) -> list[PurposeReview]:
    """The queue (pending first, oldest first), for compliance officers."""
    actor.scope(Action.PURPOSE_REVIEW_READ)
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000", field="limit")
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(PurposeReview).order_by(PurposeReview.opened_at, PurposeReview.id)
        if state is not None:
            query = query.where(PurposeReview.state == _state(state).value)
        if tenant_id is not None:
            query = query.where(PurposeReview.tenant_id == tenant_id)
        return tx.all(query.limit(limit))


def get_review(ctx: ServiceContext, actor: Principal, review_id: str) -> PurposeReview:
    actor.scope(Action.PURPOSE_REVIEW_READ)
    with ctx.db.transaction(write=False) as tx:
        return tx.require(PurposeReview, review_id, "purpose review")


def decide_review(
    ctx: ServiceContext, officer: Principal, review_id: str, *, approve: bool, reason: str
) -> PurposeReview:
    """An officer's decision; settles every pending review of the same tenant and words."""
    officer.scope(Action.PURPOSE_REVIEW_DECIDE)
    if not reason.strip():
        raise InvalidRequest("say why (the decision is recorded with its reason)", field="reason")
    now = ctx.now()
    target = PurposeReviewState.APPROVED if approve else PurposeReviewState.REJECTED
    with ctx.db.transaction() as tx:
        review = tx.require(PurposeReview, review_id, "purpose review", for_update=True)
        if review.state != PurposeReviewState.PENDING:
            raise Conflict(
                f"review {review.id} was already decided ({review.state})", review_id=review.id
            )
        tenant = tx.require(Tenant, review.tenant_id, "tenant", for_update=True)
        same = tx.all(
            tx.select(PurposeReview)
            .where(
                PurposeReview.tenant_id == review.tenant_id,
                PurposeReview.purpose == review.purpose,
                PurposeReview.state == PurposeReviewState.PENDING.value,
            )
            .order_by(PurposeReview.id)
            .with_for_update()
        )
        for one in same:
            _settle(tx, one, target, officer.user_id, reason, now)
        if approve:
            cleared = [p for p in tenant.cleared_purposes if p != review.purpose]
            tenant.cleared_purposes = [*cleared, review.purpose][-CLEARED_LIMIT:]
        else:
            _refuse_held(tx, same, officer.user_id, reason, now)
    return review


def _settle(
    tx: Tx,
    review: PurposeReview,
    target: PurposeReviewState,
    actor: str,
    reason: str,
    now: datetime,
) -> None:
    before = audit.fields_of(review, REVIEW_FIELDS)
    review.state = transition(
        PURPOSE_REVIEW_TRANSITIONS,
        PurposeReviewState(review.state),
        target,
        subject=f"review {review.id}",
    ).value
    review.decided_by, review.decided_at, review.decision_reason = actor, now, reason[:1000]
    audit.record(
        tx,
        at=now,
        actor=actor,
        action=f"purpose.{'approve' if target is PurposeReviewState.APPROVED else 'reject'}",
        subject_type="tenant",
        subject_id=review.tenant_id,
        before=before,
        after=audit.fields_of(review, REVIEW_FIELDS)
        | {"review_id": review.id, "job_id": review.subject_id, "purpose": review.purpose},
        reason=reason,
    )


def _refuse_held(
    tx: Tx, reviews: list[PurposeReview], actor: str, reason: str, now: datetime
) -> None:
    """Fail the still-queued jobs the rejected reviews held (one ended meanwhile stays)."""
    ids = [r.subject_id for r in reviews if r.subject_type == "job"]
    if not ids:
        return
    for job in tx.all(tx.select(Job).where(Job.id.in_(ids)).order_by(Job.id).with_for_update()):
        if job.state != JobState.QUEUED:
            continue
        runs.stop_run(
            tx,
            job,
            now,
            JobState.FAILED,
            reason=clip(f"refused: a compliance officer rejected its declared purpose: {reason}"),
            actor=actor,
        )


def _state(value: str) -> PurposeReviewState:
    try:
        return PurposeReviewState(value)
    except ValueError:
        raise InvalidRequest(
            f"state must be one of {', '.join(s.value for s in PurposeReviewState)}",
            field="state",
        ) from None
