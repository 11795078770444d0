"""Request and answer bodies of the metering routes (``api.routes.billing``).

Money travels as strings (exact ``Decimal`` text, never a float); rates are per GPU-hour;
fractions lie in [0, 1]; every string is bounded (``api.constraints``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, Field

from gpulease.api.constraints import Ref, ShortLine, StrictInt, Timestamp
from gpulease.api.schemas import Strict

Rate = Annotated[Decimal, Field(ge=0, le=1_000_000, allow_inf_nan=False, decimal_places=10)]
Fraction = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False, decimal_places=10)]
Multiple = Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False, decimal_places=10)]
CreditAmount = Annotated[
    Decimal, Field(lt=0, ge=-1_000_000_000, allow_inf_nan=False, decimal_places=4)
]
LineNumber = Annotated[int, Field(ge=1, le=100_000)]


class PlanVersionIn(Strict):
    plan_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    effective_from: Timestamp
    currency: Annotated[str, Field(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
    reserved_rate: Rate
    on_demand_rate: Rate
    borrowed_discount: Fraction
    lending_share: Fraction
    sla_wait_slo_s: Annotated[StrictInt, Field(ge=0, le=30 * 86400)] = 3600
    sla_wait_multiple: Multiple = Decimal(1)
    sla_degraded_multiple: Multiple = Decimal(1)
    sla_cap_share: Fraction = Decimal("0.3")


class PlanVersionOut(BaseModel):
    plan_id: str
    version: int
    ref: str
    effective_from: datetime
    currency: str
    reserved_rate: str
    on_demand_rate: str
    borrowed_rate: str
    borrowed_discount: str
    lending_share: str
    sla_wait_slo_s: int
    sla_wait_multiple: str
    sla_degraded_multiple: str
    sla_cap_share: str
    created_at: datetime


class PlanAssignmentIn(Strict):
    tenant_id: Ref
    plan_id: Annotated[str, Field(min_length=1, max_length=64)]


class PlanAssignmentOut(BaseModel):
    tenant_id: str
    plan_id: str


class UsageOut(BaseModel):
    id: str
    tenant_id: str
    job_id: str
    gpu_serial: str
    start: datetime
    end: datetime
    gpu_seconds: str
    capacity: str
    lease_id: str | None
    lender_lease_id: str | None
    lender_tenant: str | None
    open: bool


class UsagePage(BaseModel):
    period_start: datetime
    period_end: datetime
    total: int
    offset: int
    items: list[UsageOut]


class TenantUsageOut(BaseModel):
    tenant_id: str
    guaranteed_gpu_seconds: str
    borrowed_gpu_seconds: str
    on_demand_gpu_seconds: str
    lent_gpu_seconds: str
    total_gpu_seconds: str


class InvoiceIssue(Strict):
    tenant_id: Ref
    start: Timestamp
    end: Timestamp


class CreditNoteIn(Strict):
    reason: Annotated[ShortLine, Field(min_length=1)]
    reverse_lines: Annotated[list[LineNumber], Field(default_factory=list, max_length=1000)]
    amounts: Annotated[
        list[tuple[LineNumber, CreditAmount]], Field(default_factory=list, max_length=1000)
    ]


class InvoiceOut(BaseModel):
    """An invoice as ``metering.render.invoice_dict`` writes it, with its credit notes and
    the balance after them."""

    invoice: dict[str, Any]
    credit_notes: list[dict[str, Any]]
    balance: str
