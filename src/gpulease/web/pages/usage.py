"""``/ui/usage``: GPU-hours per tenant and day in a month, as charts and a table; invoices.

The figures are the metered usage (``services.metering.usage_by_tenant``: the allocation
rows cut into usage records, by capacity class; a tenant's own only, for a tenant's users)
for the chosen month (``month=YYYY-MM``, default the current one) and for each of its days
up to today. Operator staff may narrow to one tenant (``tenant``: a tenant's users naming
another tenant get *not found*, as in the API). The invoices of the month come from
``services.invoicing.list_invoices`` for whoever may read them (``Action.INVOICE_READ``).

Charts are SVG drawn on the server (``web.usage_charts``); the table beside them holds the
same figures for people who do not read charts.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from gpulease.domain.access import Action
from gpulease.metering.periods import Period
from gpulease.services import invoicing, metering, names, tenant_summary
from gpulease.services.context import ServiceContext
from gpulease.services.lookup import Kind, resolve
from gpulease.web import nav
from gpulease.web.render import page, page_router
from gpulease.web.session import Looking
from gpulease.web.usage_charts import bar_chart, line_chart
from gpulease.web.usage_views import usage_view

router = page_router()
NAV_ITEM = nav.register(nav.NavItem("Usage", "/ui/usage", Action.USAGE_READ, order=50))
Month = Annotated[str | None, Query(max_length=7, pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
Ref = Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_. -]*$")]
INVOICES_SHOWN = 100


def _month(text: str | None, now: datetime) -> Period:
    return metering.named_month(text) if text else metering.month_of(now)


@router.get("/usage")
def usage_page(
    request: Request, viewer: Looking, month: Month = None, tenant: Ref = None
) -> HTMLResponse:
    ctx: ServiceContext = request.app.state.ctx
    me, now = viewer.principal, ctx.now()
    me.scope(Action.USAGE_READ)
    tenant_id = None
    if tenant:
        tenant_id = resolve(ctx, me, Kind.TENANT, tenant, Action.USAGE_READ)
        me.check_visible(tenant_id, "tenant", tenant_id)
    period = _month(month, now)
    totals = metering.usage_by_tenant(ctx, me, period, tenant=tenant_id)
    daily = []
    day = period.start
    while day < period.end and day <= now:
        label = day.strftime("%m-%d")
        daily.append(
            (
                label,
                metering.usage_by_tenant(
                    ctx, me, Period(day, day + timedelta(days=1)), tenant=tenant_id
                ),
            )
        )
        day += timedelta(days=1)
    tenant_names = names.tenant_names(ctx, {u.tenant for u in totals})
    view = usage_view(period.start.strftime("%Y-%m"), totals, daily, tenant_names)
    invoices = []
    if me.can(Action.INVOICE_READ):
        invoices = [
            i
            for i in invoicing.list_invoices(ctx, me, tenant=tenant_id, limit=INVOICES_SHOWN)
            if i.invoice.period.start < period.end and i.invoice.period.end > period.start
        ]
    tenants = []
    if me.is_operator:
        tenants = [(s.tenant.id, s.tenant.name) for s in tenant_summary.summaries(ctx, me)]
    bars = bar_chart(
        view.bars, title=f"GPU-hours by tenant, {view.month}", unit="GPU-h", id_prefix="usage-bars"
    )
    lines = line_chart(
        view.days,
        view.lines,
        title=f"GPU-hours per day, {view.month}",
        unit="GPU-h",
        id_prefix="usage-days",
    )
    return page(
        request,
        viewer,
        "usage.html",
        title=f"Usage in {view.month}",
        usage=view,
        bars=Markup(bars),  # every text escaped by usage_charts
        lines=Markup(lines),
        invoices=invoices,
        invoice_names=names.tenant_names(ctx, {i.invoice.tenant for i in invoices}),
        tenants=tenants,
        tenant=tenant_id or "",
        month=view.month,
    )
