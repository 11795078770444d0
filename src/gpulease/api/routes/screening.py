"""Ad-hoc screening over HTTP: ``POST /screening`` screens names outside any KYC case.

Compliance officers only (``Action.SCREENING_SEARCH``), checked before the request is
counted against the officer's rate limit (``screenings_per_minute``) and before anything is
screened; the body is bounded by :class:`~gpulease.api.schemas.ScreeningIn` (at most 100
names of at most 300 characters each; 422 names the field). The service
(``services.adhoc_screening``) screens with the same index and thresholds as a KYC case and
writes the audit record.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gpulease.api.deps import Ctx, Me, get_limits
from gpulease.api.ratelimit import ApiLimits
from gpulease.api.schemas import ERROR_RESPONSES, ScreeningIn, ScreeningOut
from gpulease.domain.access import Action
from gpulease.services import adhoc_screening

router = APIRouter(tags=["compliance"])


@router.post("/screening", response_model=ScreeningOut, responses=ERROR_RESPONSES)
def screen(
    body: ScreeningIn, ctx: Ctx, me: Me, limits: Annotated[ApiLimits, Depends(get_limits)]
) -> ScreeningOut:
    """Compliance officers: screen names against the lists in force, as a KYC case's
    parties are (same index, thresholds and explanations). One response per query, keyed
    by its id, results best first."""
    me.scope(Action.SCREENING_SEARCH)
    limits.screenings.count(me.user_id)
    found = adhoc_screening.screen_names(
        ctx,
        me,
        [
            adhoc_screening.ScreeningQuery(
                name=q.name,
                kind=q.kind,
                ref=q.id,
                aliases=tuple(q.aliases),
                countries=tuple(q.countries),
                identifiers=tuple(q.identifiers.items()),
            )
            for q in body.queries
        ],
    )
    return ScreeningOut.model_validate(found)
