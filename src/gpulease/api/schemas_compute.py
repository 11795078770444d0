"""Request and response bodies of the compute review queue (``services.compute_reviews``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gpulease.api.constraints import Text
from gpulease.api.schemas import Out, Strict


class ComputeReviewOut(Out):
    """Training compute that reached a threshold of the packs (operator staff only)."""

    id: str
    kind: str = Field(description="tenant, campaign (a tenant's jobs of one purpose) or group")
    subject_id: str = Field(description="the tenant, or a group's controlling party")
    subject_name: str
    campaign: str = Field(description="the campaign's purpose, normalised ('' otherwise)")
    threshold_ref: str = Field(description="the rule that set the threshold (pack@version/rule)")
    threshold_ops: str
    window_days: int
    estimated_ops: str = Field(description="the total when last scanned, a decimal string")
    jobs: int
    evidence: dict[str, object] = Field(
        description="job_ids (largest first), jobs_omitted, tenants, by_site, window_start"
    )
    state: str = Field(description="open, cleared or reported")
    opened_at: datetime
    updated_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str


class ComputeReviewDecisionIn(Strict):
    outcome: Literal["cleared", "reported"]
    reason: Text = Field(min_length=1, max_length=1000)


class ComputeScanOut(BaseModel):
    opened: list[str]
    updated: list[str]
    totals: int = Field(description="totals that reached a threshold")
