"""``/api/v1/usage``, ``/api/v1/invoices``, ``/api/v1/price-plans``: metering and billing.

Usage and invoices: operator staff see every tenant's, a tenant its own (another tenant's
invoice answers 404 as a missing one; naming another tenant in a query, likewise). Issuing
an invoice or a credit note, adding a plan version and assigning a plan are the
operator-admin's. Periods default to the current calendar month (UTC) and are bounded
(``services.metering.period_of``); pages by ``offset`` and ``limit``. An invoice is answered
as JSON, or as CSV or HTML with ``format``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from gpulease.api.constraints import Ref, Timestamp
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import ERROR_RESPONSES
from gpulease.api.schemas_billing import (
    CreditNoteIn,
    InvoiceIssue,
    InvoiceOut,
    PlanAssignmentIn,
    PlanAssignmentOut,
    PlanVersionIn,
    PlanVersionOut,
    TenantUsageOut,
    UsageOut,
    UsagePage,
)
from gpulease.domain.access import Action, Principal
from gpulease.metering.periods import Period
from gpulease.metering.rating import Rated
from gpulease.metering.render import credit_note_dict, invoice_dict, to_csv, to_html
from gpulease.services import invoicing, metering, price_plans
from gpulease.services.context import ServiceContext
from gpulease.services.lookup import Kind, resolve, resolve_optional

router = APIRouter(tags=["billing"])
TenantRef = Annotated[Ref | None, Query(description="a tenant (staff; a tenant: its own)")]
Start = Annotated[Timestamp | None, Query(description="period start (default: this month)")]
End = Annotated[Timestamp | None, Query(description="period end, exclusive")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
InvoiceId = Annotated[str, Path(min_length=1, max_length=64, description="an invoice's id")]
Format = Annotated[Literal["json", "csv", "html"], Query(description="answer format")]


def _period(ctx: ServiceContext, start: Timestamp | None, end: Timestamp | None) -> Period:
    return metering.requested_period(ctx.now(), start, end)


def _tenant(ctx: ServiceContext, me: Principal, ref: str | None, action: Action) -> str | None:
    return resolve_optional(ctx, me, Kind.TENANT, ref, action)


@router.get("/usage", response_model=UsagePage, responses=ERROR_RESPONSES)
def usage(
    ctx: Ctx,
    me: Me,
    tenant_id: TenantRef = None,
    start: Start = None,
    end: End = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=metering.MAX_PAGE)] = 100,
) -> UsagePage:
    """Usage records of a period: one GPU of one run, cut at the period's bounds, calendar
    months and price changes; GPU-seconds exact to the microsecond."""
    period = _period(ctx, start, end)
    tenant = _tenant(ctx, me, tenant_id, Action.USAGE_READ)
    rows, total = metering.usage_records(ctx, me, period, tenant=tenant, offset=offset, limit=limit)
    return UsagePage(
        period_start=period.start,
        period_end=period.end,
        total=total,
        offset=offset,
        items=[
            UsageOut(
                id=r.id,
                tenant_id=r.tenant,
                job_id=r.job_id,
                gpu_serial=r.gpu_serial,
                start=r.start,
                end=r.end,
                gpu_seconds=str(r.gpu_seconds),
                capacity=r.capacity,
                lease_id=r.lease_id,
                lender_lease_id=r.lender_lease_id,
                lender_tenant=r.lender_tenant,
                open=r.open,
            )
            for r in rows
        ],
    )


@router.get("/usage/summary", response_model=list[TenantUsageOut], responses=ERROR_RESPONSES)
def usage_summary(
    ctx: Ctx, me: Me, tenant_id: TenantRef = None, start: Start = None, end: End = None
) -> list[TenantUsageOut]:
    """GPU-seconds of a period by tenant and capacity class, and what each tenant's leases
    lent to others."""
    period = _period(ctx, start, end)
    tenant = _tenant(ctx, me, tenant_id, Action.USAGE_READ)
    return [
        TenantUsageOut(
            tenant_id=u.tenant,
            guaranteed_gpu_seconds=str(u.guaranteed),
            borrowed_gpu_seconds=str(u.borrowed),
            on_demand_gpu_seconds=str(u.on_demand),
            lent_gpu_seconds=str(u.lent),
            total_gpu_seconds=str(u.total),
        )
        for u in metering.usage_by_tenant(ctx, me, period, tenant=tenant)
    ]


def _invoice_out(issued: invoicing.IssuedInvoice) -> InvoiceOut:
    return InvoiceOut(
        invoice=invoice_dict(issued.invoice),
        credit_notes=[credit_note_dict(n) for n in issued.notes],
        balance=str(issued.balance),
    )


@router.get("/invoices", response_model=list[InvoiceOut], responses=ERROR_RESPONSES)
def list_invoices(
    ctx: Ctx,
    me: Me,
    tenant_id: TenantRef = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=invoicing.MAX_LIST)] = 50,
) -> list[InvoiceOut]:
    """Issued invoices, newest period first, with their credit notes."""
    tenant = _tenant(ctx, me, tenant_id, Action.INVOICE_READ)
    found = invoicing.list_invoices(ctx, me, tenant=tenant, offset=offset, limit=limit)
    return [_invoice_out(i) for i in found]


@router.get("/invoices/draft", responses=ERROR_RESPONSES)
def draft(
    ctx: Ctx, me: Me, tenant_id: TenantRef = None, start: Start = None, end: End = None
) -> JSONResponse:
    """What a tenant's invoice for the period would say if rated now (nothing issued); a
    tenant-admin's own tenant's unless staff name one."""
    period = _period(ctx, start, end)
    named = _tenant(ctx, me, tenant_id, Action.INVOICE_READ)
    tenant = me.acting_tenant(named)
    rated: Rated = invoicing.draft(ctx, me, tenant, period)
    lines = [
        {
            "kind": ln.kind.value,
            "description": ln.description,
            "quantity": str(ln.quantity),
            "unit": ln.unit,
            "unit_price": str(ln.unit_price),
            "amount": str(ln.amount),
            "usage_records": len(ln.usage_ids),
            "evidence": list(ln.evidence),
        }
        for ln in rated.lines
    ]
    total = sum((ln.amount for ln in rated.lines), Decimal(0))
    return JSONResponse(
        {
            "tenant": rated.tenant,
            "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
            "currency": rated.currency,
            "lines": lines,
            "total": str(total),
        }
    )


@router.get("/invoices/{invoice_id}", response_class=Response, responses=ERROR_RESPONSES)
def show_invoice(invoice_id: InvoiceId, ctx: Ctx, me: Me, format: Format = "json") -> Response:
    """One invoice with its credit notes, as JSON, CSV (its lines) or HTML (one page)."""
    issued = invoicing.get(ctx, me, invoice_id)
    if format == "csv":
        return PlainTextResponse(to_csv(issued.invoice), media_type="text/csv")
    if format == "html":
        return HTMLResponse(to_html(issued.invoice, issued.notes))
    return JSONResponse(_invoice_out(issued).model_dump(mode="json"))


@router.post("/invoices", status_code=201, response_model=InvoiceOut, responses=ERROR_RESPONSES)
def issue_invoice(body: InvoiceIssue, ctx: Ctx, me: Me) -> InvoiceOut:
    """Operator-admin: issue a tenant's invoice for a period that is over (once)."""
    tenant = resolve(ctx, me, Kind.TENANT, body.tenant_id, Action.INVOICE_ISSUE)
    period = metering.period_of(body.start, body.end)
    invoice = invoicing.issue(ctx, me, tenant, period)
    return _invoice_out(invoicing.IssuedInvoice(invoice, ()))


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201, responses=ERROR_RESPONSES)
def credit(invoice_id: InvoiceId, body: CreditNoteIn, ctx: Ctx, me: Me) -> JSONResponse:
    """Operator-admin: a credit note against an issued invoice (reverse lines in full, or
    credit amounts against lines); the invoice itself never changes."""
    note = invoicing.credit(
        ctx,
        me,
        invoice_id,
        invoicing.CreditRequest(body.reason, body.reverse_lines, body.amounts),
    )
    return JSONResponse(credit_note_dict(note), status_code=201)


def _plan_out(p: price_plans.StoredPlan) -> PlanVersionOut:
    v, rule = p.version, p.rule
    return PlanVersionOut(
        plan_id=v.plan_id,
        version=v.version,
        ref=v.ref,
        effective_from=v.effective_from,
        currency=v.currency,
        reserved_rate=str(v.reserved_rate),
        on_demand_rate=str(v.on_demand_rate),
        borrowed_rate=str(v.borrowed_rate),
        borrowed_discount=str(v.borrowed_discount),
        lending_share=str(v.lending_share),
        sla_wait_slo_s=int(rule.slo_wait.total_seconds()),
        sla_wait_multiple=str(rule.wait_multiple),
        sla_degraded_multiple=str(rule.degraded_multiple),
        sla_cap_share=str(rule.cap_share),
        created_at=p.created_at,
    )


@router.get("/price-plans", response_model=list[PlanVersionOut], responses=ERROR_RESPONSES)
def list_plans(ctx: Ctx, me: Me) -> list[PlanVersionOut]:
    """Every version of every price plan (published prices)."""
    return [_plan_out(p) for p in price_plans.list_plans(ctx, me)]


@router.post(
    "/price-plans", status_code=201, response_model=PlanVersionOut, responses=ERROR_RESPONSES
)
def add_plan_version(body: PlanVersionIn, ctx: Ctx, me: Me) -> PlanVersionOut:
    """Operator-admin: a new version of a plan (the first creates it); later versions take
    effect now or later."""
    given = price_plans.PlanInput(**body.model_dump())
    return _plan_out(price_plans.create_version(ctx, me, given))


@router.post(
    "/price-plans/assignments", response_model=PlanAssignmentOut, responses=ERROR_RESPONSES
)
def assign_plan(body: PlanAssignmentIn, ctx: Ctx, me: Me) -> PlanAssignmentOut:
    """Operator-admin: rate a tenant on a plan."""
    tenant = resolve(ctx, me, Kind.TENANT, body.tenant_id, Action.PLAN_MANAGE)
    plan = price_plans.assign(ctx, me, tenant, body.plan_id)
    return PlanAssignmentOut(tenant_id=tenant, plan_id=plan)
