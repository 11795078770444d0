"""The officer queue of declared purposes held for review (``services.purpose_reviews``).

Compliance officers only: the service refuses anyone else (403), whatever tenant the
review is of; the ids are opaque (``review-...``), an unknown one is 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpulease.api.constraints import Ref
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import ERROR_RESPONSES, PurposeReviewDecisionIn, PurposeReviewOut
from gpulease.domain.states import PurposeReviewState
from gpulease.services import purpose_reviews

router = APIRouter(prefix="/compliance", tags=["compliance"])


@router.get("/purpose-reviews", response_model=list[PurposeReviewOut], responses=ERROR_RESPONSES)
def list_reviews(
    ctx: Ctx,
    me: Me,
    state: Annotated[PurposeReviewState | None, Query()] = None,
    tenant_id: Annotated[Ref | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[PurposeReviewOut]:
    """Compliance officer: the queue, oldest first (``state=pending`` for what waits)."""
    found = purpose_reviews.list_reviews(
        ctx, me, state=None if state is None else state.value, tenant_id=tenant_id, limit=limit
    )
    return [PurposeReviewOut.model_validate(r) for r in found]


@router.get(
    "/purpose-reviews/{review_id}", response_model=PurposeReviewOut, responses=ERROR_RESPONSES
)
def show_review(review_id: Ref, ctx: Ctx, me: Me) -> PurposeReviewOut:
    """Compliance officer: one review."""
    return PurposeReviewOut.model_validate(purpose_reviews.get_review(ctx, me, review_id))


@router.post(
    "/purpose-reviews/{review_id}/approve",
    response_model=PurposeReviewOut,
    responses=ERROR_RESPONSES,
)
def approve_review(
    review_id: Ref, body: PurposeReviewDecisionIn, ctx: Ctx, me: Me
) -> PurposeReviewOut:
    """Compliance officer: clear the purpose for its tenant; the held work is admitted."""
    review = purpose_reviews.decide_review(ctx, me, review_id, approve=True, reason=body.reason)
    return PurposeReviewOut.model_validate(review)


@router.post(
    "/purpose-reviews/{review_id}/reject",
    response_model=PurposeReviewOut,
    responses=ERROR_RESPONSES,
)
def reject_review(
    review_id: Ref, body: PurposeReviewDecisionIn, ctx: Ctx, me: Me
) -> PurposeReviewOut:
    """Compliance officer: refuse the purpose; the held work fails with the reason."""
    review = purpose_reviews.decide_review(ctx, me, review_id, approve=False, reason=body.reason)
    return PurposeReviewOut.model_validate(review)
