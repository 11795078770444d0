"""``/ui/compliance``: the officers' review of KYC cases and purposes; a tenant's own cases.

Pages (every one through the same services as the API, with the viewer's principal):

* ``GET /compliance``: operator staff (``Action.SCREENING_READ``) get the review queue: the
  cases waiting for an officer and, for compliance officers, the pending purpose reviews
  with their approve / reject forms (``services.case_review.review_queue``). A tenant's
  users get their own cases in the tenant's words (``compliance.disclosure``: state,
  status, what to supply; never a score, a list entry, an officer's note, another tenant);
* ``GET /compliance/cases/{id}``: staff: the case whole (``case_review.dossier``): each
  potential match side by side with its words aligned, the ownership and control graph as
  SVG (``web.ownership_svg``) with the same edges in a table, the decisions so far and,
  for officers, the decision form. A tenant: its own case in its words; another tenant's
  case is *not found*, as in the API;
* ``POST /compliance/cases/{id}/decide`` (officers): approve or reject with a reason,
  through ``kyc.decide_case``: four-eyes and every other rule are the API's. A refusal
  (the same officer twice, an officer created by the first, a blocked case...) re-renders
  the case with the service's message and its HTTP status, the typed reason kept;
* ``POST /compliance/purpose-reviews/{id}/decide`` (officers): ``purpose_reviews.decide_review``;
* ``GET /compliance/policy?as_of=YYYY-MM-DD``: the packs and rules in force on a day for
  staff; for tenants the prohibited end uses and the identification to supply.

Every POST needs the session's CSRF token and a same-host Origin (``web.session.Posting``);
a successful one redirects (303) so a reload never decides twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from gpulease.api.constraints import ReportDay
from gpulease.api.errors import HTTP_STATUS
from gpulease.compliance.disclosure import CaseRecord, tenant_policy_view
from gpulease.domain.access import Action
from gpulease.domain.errors import DomainError
from gpulease.services import case_review, kyc, purpose_reviews, tenant_summary
from gpulease.services.context import ServiceContext
from gpulease.web import nav
from gpulease.web.compliance_views import (
    case_view,
    policy_view,
    queue_view,
    tenant_cases_view,
)
from gpulease.web.ownership_svg import layout
from gpulease.web.ownership_svg import render as render_graph
from gpulease.web.render import page, page_router
from gpulease.web.session import Looking, Posting, Viewer

router = page_router()
NAV_ITEM = nav.register(nav.NavItem("Compliance", "/ui/compliance", Action.KYC_READ, order=40))
RecordId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
Reason = Annotated[str, Form(max_length=1000)]
DONE = {
    "approve": "Your approval is recorded.",
    "reject": "Your rejection is recorded.",
    "purpose-approve": "The purpose is cleared for its tenant; the held work is admitted.",
    "purpose-reject": "The purpose is rejected; the held work has failed.",
}
Done = Annotated[str, Query(max_length=20, pattern="^[a-z-]*$")]


def _ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


@router.get("/compliance")
def compliance_home(request: Request, viewer: Looking, done: Done = "") -> HTMLResponse:
    ctx, me = _ctx(request), viewer.principal
    if not me.can(Action.SCREENING_READ):
        return _tenant_page(request, viewer, kyc.list_cases(ctx, me), title="Compliance")
    queue = queue_view(case_review.review_queue(ctx, me))
    return page(
        request,
        viewer,
        "compliance_queue.html",
        title="Compliance review",
        queue=queue,
        may_decide=me.can(Action.KYC_DECIDE),
        notice=DONE.get(done, ""),
    )


@router.get("/compliance/cases/{case_id}")
def case_page(
    request: Request, viewer: Looking, case_id: RecordId, done: Done = ""
) -> HTMLResponse:
    ctx, me = _ctx(request), viewer.principal
    if not me.can(Action.SCREENING_READ):  # a tenant: its own case, in its words
        return _tenant_page(request, viewer, [kyc.get_case(ctx, me, case_id)], title="KYC case")
    return _case(request, viewer, case_id, notice=DONE.get(done, ""))


def _case(
    request: Request,
    viewer: Viewer,
    case_id: str,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
    reason: str = "",
) -> HTMLResponse:
    ctx, me = _ctx(request), viewer.principal
    view = case_view(case_review.dossier(ctx, me, case_id), today=ctx.now().date())
    graph = ""
    omitted = 0
    if view.graph is not None:
        title = f"Ownership and control of {view.tenant_name}"
        graph = render_graph(view.graph, title=title, id_prefix="case-graph")
        omitted = len(layout(view.graph).omitted)
    return page(
        request,
        viewer,
        "compliance_case.html",
        title=f"KYC case {view.case_id}",
        status=status,
        case=view,
        graph=Markup(graph),  # built by ownership_svg, every text in it escaped there
        omitted=omitted,
        may_decide=me.can(Action.KYC_DECIDE),
        notice=notice,
        error=error,
        reason=reason,
    )


@router.post("/compliance/cases/{case_id}/decide")
def decide_case(
    request: Request,
    viewer: Posting,
    case_id: RecordId,
    decision: Annotated[Literal["approve", "reject"], Form()],
    reason: Reason = "",
    end_uses: Annotated[list[str] | None, Form(max_length=50)] = None,
    narrow: Annotated[bool, Form()] = False,
) -> Response:
    ctx, me = _ctx(request), viewer.principal
    # the form's end-use boxes (``narrow``): every box unchecked sends none, which must be
    # refused ("approve at least one end use"), not read as "approve every declared one"
    chosen = (end_uses or []) if narrow else end_uses
    try:
        kyc.decide_case(
            ctx,
            me,
            case_id,
            approve=decision == "approve",
            reason=reason,
            end_uses=chosen if decision == "approve" else None,
        )
    except DomainError as error:
        if not me.can(Action.SCREENING_READ) or error.code == "not_found":
            raise  # the error page: nothing of the case for whoever may not read it
        status = HTTP_STATUS.get(error.code, 400)
        return _case(request, viewer, case_id, error=error.message, status=status, reason=reason)
    return RedirectResponse(f"/ui/compliance/cases/{case_id}?done={decision}", status_code=303)


@router.post("/compliance/purpose-reviews/{review_id}/decide")
def decide_purpose(
    request: Request,
    viewer: Posting,
    review_id: RecordId,
    decision: Annotated[Literal["approve", "reject"], Form()],
    reason: Reason = "",
) -> Response:
    purpose_reviews.decide_review(
        _ctx(request), viewer.principal, review_id, approve=decision == "approve", reason=reason
    )
    return RedirectResponse(f"/ui/compliance?done=purpose-{decision}", status_code=303)


@router.get("/compliance/policy")
def policy_page(
    request: Request, viewer: Looking, as_of: Annotated[ReportDay | None, Query()] = None
) -> HTMLResponse:
    ctx, me = _ctx(request), viewer.principal
    day: date = as_of or ctx.now().date()
    effective = kyc.policy_on(ctx, datetime(day.year, day.month, day.day, tzinfo=UTC))
    staff = me.can(Action.SCREENING_READ)
    return page(
        request,
        viewer,
        "compliance_policy.html",
        title=f"Policy in force on {day.isoformat()}",
        day=day.isoformat(),
        policy=policy_view(effective) if staff else None,
        tenant_policy=None if staff else tenant_policy_view(effective),
    )


def _tenant_page(
    request: Request, viewer: Viewer, cases: Sequence[CaseRecord], *, title: str
) -> HTMLResponse:
    ctx, me = _ctx(request), viewer.principal
    [summary] = tenant_summary.summaries(ctx, me, me.tenant_id)
    return page(
        request,
        viewer,
        "compliance_mine.html",
        title=title,
        standing=summary.standing,
        cases=tenant_cases_view(cases),
    )
