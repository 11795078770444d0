"""The dashboard in a real browser: headless Chromium (Debian's) driven by Playwright, over a
demo served by uvicorn in this process (``live_site``), one browser for the module.

Each test logs in through the form as a demo user and checks what that role sees and may
do; screenshots go to ``out/screenshots/``. Every page is loaded with nothing from outside
127.0.0.1, and no console error nor Content-Security-Policy violation is allowed.
"""

from __future__ import annotations

from typing import Any

import pytest
from web_support import LiveSite, screenshot

from gpulease.domain.states import NodeState
from gpulease.services import fleet_map, identity, inventory, tokens

pytestmark = pytest.mark.slow


def _held_by(site: LiveSite, who: str) -> str:
    """A GPU serial held by the first job of ``who``."""
    job = site.jobs[who][0]
    operator = identity.authenticate(site.ctx, site.tokens["operator"])
    fleet = fleet_map.fleet_map(site.ctx, operator)
    return next(c.serial for r in fleet.racks for c in r.cells if c.job_id == job)


def test_operator_sees_every_tenant_opens_a_gpu_and_the_map_refreshes(
    visit: Any, live_site: LiveSite
) -> None:
    v = visit("operator")
    page = v.page
    assert page.locator(".cells a").count() == 2304
    legend = page.inner_text(".legend")
    for name in ("INF Tech", "Bank Nusantara Digital", "Universitas Teknologi Jakarta"):
        assert name in legend
    nav = page.inner_text("header nav")
    assert all(item in nav for item in ("Fleet", "Queue", "Leases", "Ledger"))
    serial = _held_by(live_site, "bank")
    page.click(f'a[href="/ui/fleet/gpu/{serial}"]')
    page.wait_for_selector("#panel h2:has-text('Custody')")
    panel = page.inner_text("#panel")
    assert "Bank Nusantara Digital" in panel
    assert live_site.jobs["bank"][0] in panel
    assert page.url.endswith("/ui/fleet")  # the panel swapped in, no navigation
    screenshot(page, "fleet-operator")
    # live refresh: a node drained now shows on the map at the next poll (5 s here)
    operator = identity.authenticate(live_site.ctx, live_site.tokens["operator"])
    inventory.set_node_state(
        live_site.ctx, operator, "jkt1-r31-n17", NodeState.DRAINING, "test: live refresh"
    )
    page.focus("#g5")  # a keyboard user on a cell keeps the focus through a refresh
    try:
        page.wait_for_selector(".cells a.draining", timeout=12_000)
        assert page.evaluate("document.activeElement.id") == "g5"
    finally:
        inventory.set_node_state(live_site.ctx, operator, "jkt1-r31-n17", NodeState.UP, "back")
    assert v.problems == []


def test_a_tenant_sees_its_own_gpus_and_others_only_as_in_use(
    visit: Any, live_site: LiveSite
) -> None:
    v = visit("bank")
    page = v.page
    text = page.inner_text("body")
    assert "Bank Nusantara Digital" in text
    for other in ("INF Tech", "Universitas Teknologi Jakarta", live_site.jobs["inftech"][0]):
        assert other not in page.content()
    assert page.locator(".cells a.mine").count() > 0
    page.click(f'a[href="/ui/fleet/gpu/{_held_by(live_site, "inftech")}"]')
    page.wait_for_selector("#panel dd[data-state='allocated']")
    panel = page.inner_text("#panel")
    assert "in use" in panel
    assert "INF Tech" not in panel
    assert "Custody" not in panel  # staff's
    # the keyboard reaches a GPU and opens it
    mine = page.locator(".cells a.mine").first
    mine.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#panel a[href^='/ui/queue?job=']")
    assert page.inner_text("#panel a[href^='/ui/queue?job=']") in live_site.jobs["bank"]
    screenshot(page, "fleet-tenant")
    queue = v.go("/ui/queue?state=all")
    rows = queue.locator("tbody tr")
    assert rows.count() == len(live_site.jobs["bank"])
    assert "INF Tech" not in queue.content()
    assert v.problems == []


def test_queue_filters_by_tenant_and_the_lease_calendar_draws(
    visit: Any, live_site: LiveSite
) -> None:
    v = visit("operator", dark=True)
    page = v.go("/ui/queue?state=all")
    page.select_option("select[name=tenant]", label="Universitas Teknologi Jakarta")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**tenant=*")
    jobs = {row.get_attribute("data-job") for row in page.locator("tbody tr").all()}
    assert jobs == set(live_site.jobs["university"])
    assert "not enough free GPUs" in page.inner_text("tbody")  # why the big one waits
    screenshot(page, "queue-operator-dark")
    leases = v.go("/ui/leases")
    assert leases.locator("figure.chart svg rect.bar").count() == 3
    assert leases.locator("figure.chart svg polygon.headroom").count() == 1
    assert "Headroom" in leases.inner_text("main")
    screenshot(leases, "leases-operator-dark")
    assert v.problems == []


def test_the_officer_verifies_the_ledger_and_reads_a_gpus_story(
    visit: Any, live_site: LiveSite
) -> None:
    v = visit("compliance")
    page = v.go("/ui/ledger")
    page.wait_for_selector("[data-verdict]")
    assert page.get_attribute("[data-verdict]", "data-verdict") == "ok"
    assert "valid" in page.inner_text("main")
    serial = _held_by(live_site, "inftech")
    page.fill("#serial", serial)
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("table[aria-label='Chain of custody']")
    page.wait_for_selector("[data-verdict]")  # verified again after the page (htmx, on load)
    story = page.inner_text("article")
    assert "NVIDIA Corporation" in story
    assert "INF Tech" in story  # the job that runs on it
    screenshot(page, "ledger-officer")
    assert v.problems == []


def test_a_revoked_token_logs_the_page_out_with_a_message(visit: Any, live_site: LiveSite) -> None:
    v = visit("member")
    page = v.go("/ui/leases")
    assert page.locator("figure.chart svg").count() == 1
    assert "Ledger" in page.inner_text("header nav")
    page = v.go("/ui/fleet")
    ctx = live_site.ctx
    member = identity.authenticate(ctx, live_site.tokens["member"])
    (live,) = [t for t in tokens.list_tokens(ctx, member, member.user_id) if t.revoked_at is None]
    tokens.revoke(ctx, member, live.id, reason="test: the page must log out")
    # no click: the map's next refresh finds the token revoked and the page goes to login
    page.wait_for_url("**/ui/login?ended=1", timeout=12_000)
    assert "Your session ended" in page.inner_text("main")
    screenshot(page, "session-ended")
    assert v.problems == [] or all("401" in p for p in v.problems), v.problems
