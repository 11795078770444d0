"""The compliance pages in a real browser: headless Chromium (Debian's) driven by Playwright,
over the demo served in this process (``live_site``), one browser for the module.

An officer logs in through the form (``web_support.Visit``), opens the review queue, clicks
through to a case (its match side by side, its ownership graph), tries to approve without a
reason (the browser refuses), approves with one, and sees the decision; the tenant then sees
its case approved, in its words. Screenshots (light and dark) go to ``out/screenshots/``. No
page may load anything from outside 127.0.0.1 (``Visit`` refuses it), log a console error
or violate the Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from compliance_support import LISTED, TENANT_NAME, waiting_case
from web_support import LiveSite, Visit, screenshot

from gpulease.domain.access import Role
from gpulease.services import identity
from gpulease.services.context import ServiceContext

pytestmark = pytest.mark.slow


def _case_and_its_admin(ctx: ServiceContext, tokens: dict[str, str]) -> tuple[str, str]:
    operator = identity.authenticate(ctx, tokens["operator"])
    officer = identity.authenticate(ctx, tokens["compliance"])
    case = waiting_case(ctx, operator, officer)
    _user, token = identity.create_user(
        ctx,
        operator,
        name="Harbour admin",
        email="admin@harbour.example",
        role=Role.TENANT_ADMIN,
        tenant_id=case.tenant_id,
    )
    return case.id, token


def test_an_officer_clicks_through_the_review_of_a_case_to_its_decision(
    visit: Callable[..., Visit], live_site: LiveSite
) -> None:
    case_id, tenant_token = _case_and_its_admin(live_site.ctx, live_site.tokens)
    live_site.tokens["harbour"] = tenant_token
    officer = visit("compliance")
    page = officer.page
    page.click("nav a:has-text('Compliance')")
    page.wait_for_url("**/ui/compliance")
    row = page.locator(f"tr[data-case='{case_id}']")
    assert TENANT_NAME in row.inner_text()
    screenshot(page, "compliance-queue-officer")

    row.locator("a").click()
    page.wait_for_url(f"**/ui/compliance/cases/{case_id}")
    match = page.locator("table.match").first
    assert match.locator("td.ours").inner_text() == LISTED
    assert LISTED in match.locator("td.theirs").inner_text()
    graph = page.locator("figure.ownership svg")
    assert graph.is_visible()
    box = graph.bounding_box()
    assert box is not None
    assert box["width"] > 300
    assert page.locator("figure.ownership svg g.og-listed").count() == 1
    assert "60 %" in graph.inner_html()
    screenshot(page, "compliance-case-officer")

    # no reason: the browser itself refuses the form (required), nothing is sent
    page.click("button[value=approve]")
    assert page.url.endswith(f"/ui/compliance/cases/{case_id}")
    assert page.locator("#reason:invalid").count() == 1
    page.fill("#reason", "owners verified against the registry extract")
    page.click("button[value=approve]")
    page.wait_for_url(f"**/ui/compliance/cases/{case_id}?done=approve")
    assert page.locator("p.ok[role=status]").inner_text() == "Your approval is recorded."
    assert page.locator(".case-facts .state").inner_text() == "approved"
    assert page.locator("form.decide").count() == 0
    assert (
        "owners verified against the registry extract"
        in page.locator("table.decisions").inner_text()
    )
    screenshot(page, "compliance-case-decided")

    dark = visit("compliance", dark=True)
    dark.go(f"/ui/compliance/cases/{case_id}").wait_for_selector("figure.ownership svg")
    screenshot(dark.page, "compliance-case-officer-dark")

    tenant = visit("harbour")
    tenant.go("/ui/compliance")
    mine = tenant.page.locator(f"tr[data-case='{case_id}']").inner_text()
    assert "approved for scientific-computing, drug-discovery" in mine
    body = tenant.page.locator("main").inner_text()
    assert LISTED not in body
    assert "score" not in body
    screenshot(tenant.page, "compliance-tenant")
    for opened in (officer, dark, tenant):
        assert opened.problems == []  # no console error, no CSP violation
