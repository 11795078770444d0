"""The compliance pages in a real browser: headless Chromium (Debian's) driven by Playwright,
over the demo served in this process (``live_site``), one browser for the module.

An officer logs in through the form, opens the review queue, clicks through to a case (its
match side by side, its ownership graph), tries to approve without a reason (the browser
refuses), approves with one, and sees the decision; the tenant then sees its case approved,
in its words. Screenshots (light and dark) go to ``out/screenshots/``. No page may load
anything from outside 127.0.0.1, log a console error or violate the Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from compliance_support import LISTED, TENANT_NAME, waiting_case
from web_support import LiveSite, screenshot

from gpulease.domain.access import Role
from gpulease.services import identity
from gpulease.services.context import ServiceContext

pytestmark = pytest.mark.slow
VIEWPORT = {"width": 1280, "height": 900}


class Session:
    """A browser context logged in as ``token`` through the login form, watching for
    console errors, CSP violations and requests that leave the machine."""

    def __init__(self, browser: Any, site: LiveSite, token: str, *, dark: bool = False) -> None:
        self.context = browser.new_context(
            viewport=VIEWPORT, color_scheme="dark" if dark else "light"
        )
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("console", self._console)
        self.page.route("**/*", self._guard)
        self.page.goto(site.url + "/ui/login")
        self.page.fill("#token", token)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/ui/**")

    def _console(self, message: Any) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.type}: {message.text}")

    def _guard(self, route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("http", "https") and parts.hostname != "127.0.0.1":
            self.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def close(self) -> None:
        self.context.close()
        assert self.outside == [], "a page loaded something from outside the machine"
        assert self.problems == []


@pytest.fixture
def sessions(browser: Any, live_site: LiveSite) -> Iterator[Any]:
    opened: list[Session] = []

    def open_as(token: str, *, dark: bool = False) -> Session:
        made = Session(browser, live_site, token, dark=dark)
        opened.append(made)
        return made

    yield open_as
    for made in opened:
        made.close()


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
    sessions: Any, live_site: LiveSite
) -> None:
    case_id, tenant_token = _case_and_its_admin(live_site.ctx, live_site.tokens)
    officer = sessions(live_site.tokens["compliance"])
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

    dark = sessions(live_site.tokens["compliance"], dark=True)
    dark.page.goto(live_site.url + f"/ui/compliance/cases/{case_id}")
    dark.page.wait_for_selector("figure.ownership svg")
    screenshot(dark.page, "compliance-case-officer-dark")

    tenant = sessions(tenant_token)
    tenant.page.goto(live_site.url + "/ui/compliance")
    mine = tenant.page.locator(f"tr[data-case='{case_id}']").inner_text()
    assert "approved for scientific-computing, drug-discovery" in mine
    body = tenant.page.locator("main").inner_text()
    assert LISTED not in body
    assert "score" not in body
    screenshot(tenant.page, "compliance-tenant")
