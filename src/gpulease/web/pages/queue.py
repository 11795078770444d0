"""``/ui/queue``: running and waiting jobs, each waiting one with the reason it waits.

Filters: the state (``active``: waiting and running, the default; one state; or ``all``),
the tenant (staff only; a tenant's users see their own tenant's jobs and naming another
tenant is *not found*, as in the API), one job (``job``: a link from the fleet's panel).
Pages of :data:`PAGE_SIZE`, at most ``jobs.MAX_OFFSET`` deep; one row more than a page is
read to know whether there is a next one.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from gpulease.domain.access import Action
from gpulease.domain.states import JobState
from gpulease.services import jobs, names, tenant_summary
from gpulease.services.lookup import Kind, resolve
from gpulease.web import nav
from gpulease.web.render import page, page_router
from gpulease.web.session import Looking

router = page_router()
NAV_ITEM = nav.register(nav.NavItem("Queue", "/ui/queue", Action.JOB_READ, order=20))
PAGE_SIZE = 50
ACTIVE = "active"
ALL = "all"
STATE_CHOICES = (ACTIVE, ALL, *(s.value for s in JobState))
MAX_PAGE = jobs.MAX_OFFSET // PAGE_SIZE + 1
Ref = Annotated[str | None, Query(max_length=100, pattern=r"^[A-Za-z0-9_. -]*$")]


@router.get("/queue")
def queue_page(
    request: Request,
    viewer: Looking,
    state: Annotated[str, Query(pattern="^(" + "|".join(STATE_CHOICES) + ")$")] = ACTIVE,
    tenant: Ref = None,
    job: Ref = None,
    page_no: Annotated[int, Query(alias="page", ge=1, le=MAX_PAGE)] = 1,
) -> HTMLResponse:
    ctx = request.app.state.ctx
    me = viewer.principal
    tenant_id = None
    if tenant:
        tenant_id = resolve(ctx, me, Kind.TENANT, tenant, Action.JOB_READ)
        me.check_visible(tenant_id, "tenant", tenant_id)
    if job:
        found = [jobs.get_job(ctx, me, resolve(ctx, me, Kind.JOB, job, Action.JOB_READ))]
        more = False
    else:
        states: tuple[str, ...] = ()
        if state == ACTIVE:
            states = (JobState.RUNNING.value, JobState.QUEUED.value)
        elif state != ALL:
            states = (state,)
        found = jobs.list_jobs(
            ctx,
            me,
            states=states,
            tenant_id=tenant_id,
            limit=PAGE_SIZE + 1,
            offset=(page_no - 1) * PAGE_SIZE,
        )
        more = len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE]
    # running first, then the waiting ones, each newest first (the service's order)
    found.sort(key=lambda j: j.state != JobState.RUNNING.value)
    tenant_names = names.tenant_names(ctx, {j.tenant_id for j in found})
    tenants = []
    if me.is_operator:
        tenants = [(s.tenant.id, s.tenant.name) for s in tenant_summary.summaries(ctx, me)]

    def link(**changes: object) -> str:
        query = {"state": state, "tenant": tenant or "", "page": page_no} | changes
        return "/ui/queue?" + urlencode({k: v for k, v in query.items() if v not in ("", None)})

    return page(
        request,
        viewer,
        "queue.html",
        title="Queue",
        jobs=found,
        tenant_names=tenant_names,
        tenants=tenants,
        state=state,
        states=STATE_CHOICES,
        tenant=tenant_id or "",
        job=job or "",
        page_no=page_no,
        prev_link=link(page=page_no - 1) if page_no > 1 else "",
        next_link=link(page=page_no + 1) if more and page_no < MAX_PAGE else "",
    )
