"""``/ui/ledger``: the latest signed tree head, the ledger's verification, one GPU's story.

Who sees what (``domain.access``): signed heads and key periods are public (every signed-in
user; the head's signature is checked here against the key periods); the verification of
the whole ledger names audit records, so it is staff's (``AUDIT_READ``), loaded after the
page (htmx) because it reads every record; a GPU's story (custody chain, attestation,
every job that ran on it) is staff's (``CUSTODY_READ``), found by serial.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse

from gpulease.domain.access import Action
from gpulease.domain.errors import NotFound
from gpulease.ledger.heads import check_tree_head
from gpulease.services import custody, ledger
from gpulease.web import nav
from gpulease.web.render import fragment, page, page_router
from gpulease.web.session import Looking

router = page_router()
NAV_ITEM = nav.register(nav.NavItem("Ledger", "/ui/ledger", None, order=60))
Serial = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")]


@router.get("/ledger")
def ledger_page(request: Request, viewer: Looking, serial: Serial = "") -> HTMLResponse:
    ctx = request.app.state.ctx
    me = viewer.principal
    head: dict[str, Any] | None = None
    head_problem = None
    try:
        signed = ledger.latest_head(ctx)
    except NotFound:
        signed = None
    if signed is not None:
        head = signed.to_json()
        head_problem = check_tree_head(signed, ledger.key_periods(ctx))
    story = None
    if serial and me.can(Action.CUSTODY_READ):
        story = custody.story(ctx, me, serial)
    elif serial:
        me.scope(Action.CUSTODY_READ)  # a tenant asking: denied, with who may
    return page(
        request,
        viewer,
        "ledger.html",
        title="Ledger and custody",
        head=head,
        head_problem=head_problem,
        keys=[period.to_json() for period in ledger.key_periods(ctx)],
        can_verify=me.can(Action.AUDIT_READ),
        can_search=me.can(Action.CUSTODY_READ),
        serial=serial,
        story=story,
    )


@router.get("/ledger/verify")
def verification(request: Request, viewer: Looking) -> HTMLResponse:
    """Staff: the whole ledger checked now (``services.ledger.verify``), as a fragment."""
    viewer.principal.scope(Action.AUDIT_READ)
    verdict = ledger.verify(request.app.state.ctx)
    return fragment("ledger_verdict.html", verdict=verdict)
