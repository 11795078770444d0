"""``/ui/leases``: the lease calendar (a Gantt chart, SVG) with the site's headroom.

A lease is capacity at a site (GPUs, or whole racks counted in GPUs), not particular racks:
the chart has a row per lease, grouped by tenant and labelled with what it holds; below the
rows, the headroom (GPUs that no lease of any tenant nor maintenance holds) over the window.
Staff see every tenant's leases; a tenant its own, and the headroom, which names nobody
(a quote's refusal says as much). The same leases are listed in a table under the chart.

Window: ``from`` (a date, default a week before today) and ``days`` (7 .. 366, default 42).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from gpulease.domain.access import Action
from gpulease.domain.errors import InvalidRequest
from gpulease.persistence.tables import Lease
from gpulease.services import leases, names
from gpulease.services.inventory import default_site
from gpulease.web import nav, svg
from gpulease.web.render import page, page_router
from gpulease.web.session import Looking

router = page_router()
NAV_ITEM = nav.register(nav.NavItem("Leases", "/ui/leases", Action.LEASE_READ, order=30))
BEFORE = timedelta(days=7)
YEARS = 5  # a window starts within this many years of today


def _bar_class(lease: Lease) -> str:
    return f"bar {lease.state}"


def _holds(lease: Lease) -> str:
    return f"{lease.racks} racks ({lease.gpus:,} GPUs)" if lease.racks else f"{lease.gpus:,} GPUs"


@router.get("/leases")
def leases_page(
    request: Request,
    viewer: Looking,
    from_day: Annotated[date | None, Query(alias="from")] = None,
    days: Annotated[int, Query(ge=7, le=366)] = 42,
    site: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
) -> HTMLResponse:
    ctx = request.app.state.ctx
    me = viewer.principal
    now = ctx.now()
    first = from_day or (now - BEFORE).date()
    if abs(first.year - now.year) > YEARS:
        raise InvalidRequest(f"from: choose a date within {YEARS} years of today", field="from")
    start = datetime.combine(first, time(0), tzinfo=UTC)
    end = start + timedelta(days=days)
    site_id = site or default_site(ctx)
    found = leases.calendar(ctx, me, site_id=site_id, start=start, end=end)
    tenant_names = names.tenant_names(ctx, {lease.tenant_id for lease in found.leases})
    ordered = sorted(
        found.leases, key=lambda lease: (tenant_names[lease.tenant_id], lease.start, lease.id)
    )
    rows = [
        svg.Row(
            label=f"{tenant_names[lease.tenant_id]} · {_holds(lease)}",
            bars=(
                svg.Bar(
                    lease.start,
                    lease.end,
                    label=lease.state,
                    css=_bar_class(lease),
                    tip=(
                        f"{lease.id}: {_holds(lease)}, {lease.state}, "
                        f"{lease.start:%Y-%m-%d} to {lease.end:%Y-%m-%d}"
                    ),
                ),
            ),
        )
        for lease in ordered
    ]
    chart = svg.gantt(
        rows,
        start=start,
        end=end,
        now=now,
        headroom=found.headroom,
        capacity=found.total,
        title=f"Leases at {site_id}, {start:%d %b %Y} to {end:%d %b %Y}",
    )
    low = min((free for _, free in found.headroom), default=found.total)
    return page(
        request,
        viewer,
        "leases.html",
        title=f"Leases · {site_id}",
        chart=chart,
        leases=ordered,
        tenant_names=tenant_names,
        holds=_holds,
        calendar=found,
        least_free=low,
        first=first.isoformat(),
        days=days,
        earlier=(first - timedelta(days=days)).isoformat(),
        later=(first + timedelta(days=days)).isoformat(),
    )
