"""The compute review queue: training compute over a threshold of the packs
(``services.compute_reviews``).

Operator staff read it; compliance officers decide and may run the scan now. Tenants get 403
whatever the review is about; the ids are opaque (``crev-...``), an unknown one is 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpulease.api.constraints import Ref
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import ERROR_RESPONSES
from gpulease.api.schemas_compute import ComputeReviewDecisionIn, ComputeReviewOut, ComputeScanOut
from gpulease.domain.states import ComputeReviewState
from gpulease.services import compute_reviews

router = APIRouter(prefix="/compliance", tags=["compliance"])


@router.get("/compute-reviews", response_model=list[ComputeReviewOut], responses=ERROR_RESPONSES)
def list_reviews(
    ctx: Ctx,
    me: Me,
    state: Annotated[ComputeReviewState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[ComputeReviewOut]:
    """Operator staff: the queue, oldest first (``state=open`` for what waits)."""
    found = compute_reviews.list_reviews(
        ctx, me, state=None if state is None else state.value, limit=limit
    )
    return [ComputeReviewOut.model_validate(r) for r in found]


@router.post("/compute-reviews/scan", response_model=ComputeScanOut, responses=ERROR_RESPONSES)
def scan_now(ctx: Ctx, me: Me) -> ComputeScanOut:
    """Compliance officer: add up training compute now (the scheduler does it every
    ``compute_review_scan_s``) and raise a review for each total over a threshold."""
    found = compute_reviews.scan_on_demand(ctx, me)
    return ComputeScanOut(
        opened=list(found.opened), updated=list(found.updated), totals=found.totals
    )


@router.get(
    "/compute-reviews/{review_id}", response_model=ComputeReviewOut, responses=ERROR_RESPONSES
)
def show_review(review_id: Ref, ctx: Ctx, me: Me) -> ComputeReviewOut:
    """Operator staff: one review, with its evidence."""
    return ComputeReviewOut.model_validate(compute_reviews.get_review(ctx, me, review_id))


@router.post(
    "/compute-reviews/{review_id}/decision",
    response_model=ComputeReviewOut,
    responses=ERROR_RESPONSES,
)
def decide_review(
    review_id: Ref, body: ComputeReviewDecisionIn, ctx: Ctx, me: Me
) -> ComputeReviewOut:
    """Compliance officer: ``cleared`` (nothing to report) or ``reported`` (the reason
    gives the report's reference)."""
    review = compute_reviews.decide_review(
        ctx, me, review_id, outcome=body.outcome, reason=body.reason
    )
    return ComputeReviewOut.model_validate(review)
