"""Attacks on the web dashboard (``/ui``, issue 17), from a browser's and a tenant's side.

Each test states what the dashboard promises (``web/session.py``, ``web/render.py``) and
checks it as an attacker would try to break it: a cross-site form, a forged or borrowed
CSRF token, an Origin of ``null``, a ``next`` that leaves the site, a response class that
forgets the Content-Security-Policy, a name that tries to become markup. In-process
(TestClient on the real app), SQLite only unless the database is the point.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from gpulease.api.app import create_app
from gpulease.domain.clock import ManualClock
from gpulease.persistence.tables import Node, Tenant
from gpulease.services import identity, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.web import pages
from gpulease.web.app import PREFIX
from gpulease.web.session import SESSION_COOKIE, csrf_token

SQLITE_ONLY = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
HOST = "http://testserver"
SHORT = {
    "operator-admin": "operator",
    "compliance-officer": "compliance",
    "INF Tech": "inftech",
    "Bank Nusantara Digital": "bank",
    "Universitas Teknologi Jakarta": "university",
}
Ui = Callable[[str | None], TestClient]


def _tokens(users: list[DemoUser]) -> dict[str, str]:
    return {SHORT[u.tenant or u.role]: u.token for u in users}


@pytest.fixture
def ui(ctx: ServiceContext) -> Iterator[Ui]:
    """``ui(token)``: a client of the real app with ``token`` in its session cookie, sending
    this host's Origin (as a browser does on a POST); ``client.csrf`` its CSRF token."""
    settings = ctx.settings.model_copy(update={"run_scheduler": False})
    app = create_app(
        ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock, cache=ctx.cache)
    )
    made: list[TestClient] = []

    def client(token: str | None) -> TestClient:
        c = TestClient(app, base_url=HOST, follow_redirects=False, raise_server_exceptions=False)
        c.headers["Origin"] = HOST
        if token is not None:
            c.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/ui")
            c.csrf = csrf_token(token)  # type: ignore[attr-defined]
        c.__enter__()
        made.append(c)
        return c

    try:
        yield client
    finally:
        for c in made:
            c.__exit__(None, None, None)


def _nonce(client: TestClient) -> str:
    form = client.get("/ui/login")
    assert form.status_code == 200
    return str(client.cookies.get("gl_login"))


# --- CSP and the security headers on every class of answer -------------------------------


@SQLITE_ONLY
def test_every_answer_under_ui_carries_the_csp_and_no_framing(ui: Ui, demo: list[DemoUser]) -> None:
    client = ui(_tokens(demo)["operator"])
    answers = {
        "200 page": client.get("/ui/fleet"),
        "303 home": client.get("/ui/"),
        "403 form": client.post("/ui/logout", data={}),
        "422 page": client.get("/ui/queue?page=0"),
        "404 record": client.get("/ui/fleet/gpu/NO-SUCH-GPU"),
        "404 no route": client.get("/ui/no-such-page"),
        "405 method": client.post("/ui/fleet", data={"csrf": client.csrf}),  # type: ignore[attr-defined]
        "static": client.get("/ui/static/app.css"),
        "static 404": client.get("/ui/static/no-such-file.html"),
    }
    for path in _plain_pages():
        answers[f"page {path}"] = client.get(path)
    for what, answer in answers.items():
        csp = answer.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp, (what, answer)
        assert "script-src 'self'" in csp, (what, answer)
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", what
        assert answer.headers.get("X-Frame-Options") == "DENY", what
    assert answers["static"].headers["Cache-Control"].startswith("public")  # still cached
    assert answers["200 page"].headers["Cache-Control"] == "no-store"


# --- open redirect through next -----------------------------------------------------------

EVIL_NEXT = [
    "//evil.example/",
    "/\\evil.example/",
    "/ui/\\..\\..\\/evil.example",
    "https://evil.example/ui/",
    "/%2F%2Fevil.example",
    "/ui/..//evil.example",
    "/ui/../..//evil.example",
    "/ui/%2e%2e/api/v1/jobs",
    "/ui/.%2E/%2E%2E/api/v1/jobs",
    "/ui/%2F%2Fevil.example",
    "/ui/%5C%5Cevil.example",
    "/ui/%0d%0aSet-Cookie:x=1",
    "/ui/\r\nSet-Cookie: x=1",
    "/ui/\t//evil.example",
    "/ui/\u2215\u2215evil.example",
    "/ui/\uff0f\uff0fevil.example",
    "\u3002/ui/",
    "/ui@evil.example",
    "http:/ui/",
    "/ui/\x00",
]


@SQLITE_ONLY
def test_next_never_leaves_the_dashboard(ui: Ui, demo: list[DemoUser]) -> None:
    token = _tokens(demo)["bank"]
    for target in EVIL_NEXT:  # one demo for all (each a fresh browser)
        client = ui(None)
        nonce = _nonce(client)
        answer = client.post("/ui/login", data={"token": token, "csrf": nonce, "next": target})
        assert answer.status_code == 303, (target, answer.text[:300])
        location = answer.headers["location"]
        assert "\r" not in location, target
        assert "\n" not in location, target
        assert all("x=1" not in c for c in answer.headers.get_list("set-cookie")), target
        # as a browser resolves it (WHATWG URL: "%2e" in a path segment is a dot)
        dotted = re.sub("%2e", ".", location, flags=re.IGNORECASE)
        resolved = urlsplit(urljoin(HOST + "/ui/login", dotted))
        assert resolved.netloc == "testserver", (target, location)
        assert location.startswith("/ui/"), (target, location)
        assert not location.startswith("//"), (target, location)
        # dot segments resolved, the target must stay under /ui/
        assert resolved.path.startswith("/ui/"), (target, location, resolved.path)


# --- CSRF ---------------------------------------------------------------------------------


@SQLITE_ONLY
def test_cross_site_posts_are_refused_however_they_come(ui: Ui, demo: list[DemoUser]) -> None:
    t = _tokens(demo)
    client = ui(t["operator"])
    csrf = client.csrf  # type: ignore[attr-defined]
    other = csrf_token(t["bank"])  # a token of another session (the attacker's own)
    forged = [
        ({"Origin": "null"}, {"csrf": csrf}),
        ({"Origin": "http://testserver.evil.example"}, {"csrf": csrf}),
        ({"Origin": "http://evil.example"}, {"csrf": csrf}),
        ({"Origin": "", "Referer": "http://testserver@evil.example/ui/fleet"}, {"csrf": csrf}),
        ({"Origin": "", "Referer": "http://evil.example/?http://testserver/"}, {"csrf": csrf}),
        ({"Origin": "", "Referer": ""}, {"csrf": csrf}),
        ({"Origin": "javascript://testserver"}, {"csrf": csrf}),
        ({}, {"csrf": other}),
        ({}, {"csrf": csrf.upper()}),
        ({}, {"csrf": csrf[:-1]}),
        ({}, {"csrf": ""}),
        ({"X-HTTP-Method-Override": "POST"}, {}),
    ]
    for headers, data in forged:
        answer = client.post("/ui/logout", data=data, headers=headers)
        assert answer.status_code == 403, (headers, data, answer.status_code)
        assert "set-cookie" not in answer.headers, headers
    # a text/plain body (a form's enctype another site may use) carries no form field
    plain = client.post(
        "/ui/logout", content=f"csrf={csrf}", headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 403
    # the method cannot be overridden into a POST from a GET
    assert client.get(f"/ui/logout?csrf={csrf}&_method=POST").status_code in (404, 405)
    assert client.get("/ui/fleet").status_code == 200  # still logged in
    assert client.post("/ui/logout", data={"csrf": csrf}).status_code == 303


@SQLITE_ONLY
def test_the_login_form_cannot_be_posted_from_another_site(ui: Ui, demo: list[DemoUser]) -> None:
    """Login CSRF: another site logging the victim in under the attacker's token."""
    attacker = _tokens(demo)["bank"]
    client = ui(None)
    nonce = _nonce(client)
    for headers in ({"Origin": "null"}, {"Origin": "http://evil.example"}):
        answer = client.post("/ui/login", data={"token": attacker, "csrf": nonce}, headers=headers)
        assert answer.status_code == 403
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    forged = client.post("/ui/login", data={"token": attacker, "csrf": "x" * 32})
    assert forged.status_code == 403


# --- sessions: expiry, revocation, logout -------------------------------------------------


@SQLITE_ONLY
def test_an_expired_token_ends_the_session_even_if_checked_a_moment_ago(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _tokens(demo)["university"])
    user, token = identity.create_user(
        ctx,
        admin,
        name="Short lived",
        email="short@university.example",
        role=admin.role,
        tenant_id=admin.tenant_id,
    )
    view = next(t for t in tokens.list_tokens(ctx, admin, user.id) if t.revoked_at is None)
    assert view.expires_at is not None
    client = ui(token)
    assert client.get("/ui/fleet").status_code == 200
    assert isinstance(ctx.clock, ManualClock)
    ctx.clock.advance((view.expires_at - ctx.now() + timedelta(seconds=1)).total_seconds())
    answer = client.get("/ui/fleet")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?ended=1"


# --- XSS: names that try to become markup --------------------------------------------------

PAYLOAD = "\"'><script>alert(1)</script><svg onload=alert(2)>javascript:alert(3)"


@SQLITE_ONLY
def test_names_and_reasons_never_become_markup(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    with ctx.db.transaction() as tx:
        for tenant in tx.all(tx.select(Tenant)):
            tenant.name = tenant.name + PAYLOAD
        for node in tx.all(tx.select(Node)):
            node.state_reason = PAYLOAD
    ctx.cache.clear()
    tokens = _tokens(demo)
    paths = ["/ui/queue?state=all", "/ui/leases?days=366", *_plain_pages()]
    for who in ("operator", "compliance", "university"):
        client = ui(tokens[who])
        for path in paths:
            answer = client.get(path)
            assert answer.status_code in (200, 403), (who, path, answer.status_code)
            assert "<script>alert" not in answer.text, (who, path)
            assert "<svg onload" not in answer.text, (who, path)


def _plain_pages() -> list[str]:
    """Every dashboard page without a path parameter (the pages other work adds included)."""
    found = sorted(
        PREFIX + route.path
        for module in pages.MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute) and "{" not in route.path and "GET" in route.methods
    )
    assert "/ui/fleet" in found
    return found


# --- error pages and static files ----------------------------------------------------------


@SQLITE_ONLY
def test_a_crash_shows_no_trace_path_or_message(
    ui: Ui, demo: list[DemoUser], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpulease.services import fleet_map

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret /srv/gpulease/db.sqlite password=hunter2")

    monkeypatch.setattr(fleet_map, "fleet_map", boom)
    client = ui(_tokens(demo)["operator"])
    for headers in ({}, {"HX-Request": "true"}):
        answer = client.get("/ui/fleet", headers=headers)
        assert answer.status_code == 500
        for leak in ("Traceback", "hunter2", "/srv/", "RuntimeError", ".py", "site-packages"):
            assert leak not in answer.text, leak
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


@SQLITE_ONLY
def test_static_files_cannot_be_walked_out_of(ui: Ui) -> None:
    client = ui(None)
    for path in (
        "/ui/static/../templates/base.html",
        "/ui/static/..%2Ftemplates%2Fbase.html",
        "/ui/static/%2e%2e/templates/base.html",
        "/ui/static/..%5Ctemplates%5Cbase.html",
        "/ui/static/%2e%2e/%2e%2e/session.py",
        "/ui/static//etc/passwd",
    ):
        answer = client.get(path)
        assert answer.status_code == 404 or "{%" not in answer.text, path
        assert "SESSION_COOKIE" not in answer.text, path
        assert "root:" not in answer.text, path


# --- a tenant probing other tenants through query parameters ------------------------------


def test_query_parameters_show_a_tenant_nothing_of_another(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    with ctx.db.transaction(write=False) as tx:
        tenants = {t.name: t.id for t in tx.all(tx.select(Tenant))}
    mine = "Universitas Teknologi Jakarta"
    foreign = {name for name in tenants if name != mine}
    foreign |= {tid for name, tid in tenants.items() if name != mine}
    client = ui(_tokens(demo)["university"])
    bank = tenants["Bank Nusantara Digital"]
    probes = [
        f"/ui/queue?tenant={bank}",
        f"/ui/queue?tenant={bank[:6]}",
        "/ui/queue?tenant=Bank Nusantara Digital",
        "/ui/queue?tenant=bank nusantara digital",
        "/ui/queue?tenant=INF Tech",
        "/ui/queue?tenant=t",
        "/ui/queue?job=job-",
        "/ui/queue?job=j",
        "/ui/queue?state=all&page=2001",
        "/ui/leases?days=366&from=2026-01-01",
        "/ui/fleet/grid?n=239",
        "/ui/fleet?site=no-such-site",
        "/ui/ledger?serial=x",
    ]
    for path in probes:
        answer = client.get(path)
        assert answer.status_code in (200, 403, 404, 422, 286), (path, answer.status_code)
        for name in foreign:
            if name.lower() in path.lower():
                continue  # what the attacker typed may be echoed ("no tenant '...'")
            assert name not in answer.text, (path, name)


@SQLITE_ONLY
def test_another_site_cannot_log_the_viewer_out(ui: Ui, demo: list[DemoUser]) -> None:
    """A cross-site POST carries no SameSite=Strict cookie, so the server sees no session;
    it must still refuse, not answer with a Set-Cookie that deletes the viewer's session
    (a browser applies it: forced logout from any page on the web)."""
    client = ui(None)  # the request as the browser sends it cross-site: no cookie
    for origin in ("https://evil.example", "null"):
        answer = client.post("/ui/logout", headers={"Origin": origin})
        assert answer.status_code == 403, origin
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", ""), origin
    mine = client.post("/ui/logout")  # this site's page without a session: nothing to end
    assert mine.status_code == 303


@SQLITE_ONLY
def test_job_purpose_and_custody_texts_never_become_markup(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    """Job names, a run's purpose, a lease's reason and custody parties, notes and papers
    (typed by tenants and suppliers) on every page that shows them, to staff and tenant."""
    from gpulease.executors.simulated import SimulatedExecutor
    from gpulease.persistence.tables import CustodyEvent, GpuAllocation, Job, Lease
    from gpulease.services import jobs
    from gpulease.services.scheduling import LiveScheduler

    t = _tokens(demo)
    bank = identity.authenticate(ctx, t["bank"])
    job = jobs.submit(
        ctx, bank, jobs.JobSubmission(gpus=8, purpose="financial-services-ai: x", command="t")
    )
    LiveScheduler(ctx, SimulatedExecutor(), name="attack").tick()
    with ctx.db.transaction() as tx:
        tx.require(Job, job.id, "job").name = PAYLOAD
        held = tx.all(tx.select(GpuAllocation).where(GpuAllocation.job_id == job.id))
        assert held, "the job runs"
        for row in held:
            row.purpose = PAYLOAD
        for lease in tx.all(tx.select(Lease)):
            lease.state_reason = PAYLOAD
        for event in tx.all(tx.select(CustodyEvent)):
            event.holder = event.from_party = event.to_party = PAYLOAD
            event.location = event.note = event.invoice = PAYLOAD
    ctx.cache.clear()
    serial = held[0].gpu_serial
    pages = {
        "operator": [
            f"/ui/fleet/gpu/{serial}",
            f"/ui/ledger?serial={serial}",
            "/ui/leases?days=366",
            "/ui/queue?state=all",
        ],
        "bank": [f"/ui/fleet/gpu/{serial}", "/ui/leases?days=366", "/ui/queue?state=all"],
    }
    for who, paths in pages.items():
        client = ui(t[who])
        for path in paths:
            for headers in ({}, {"HX-Request": "true"}):
                answer = client.get(path, headers=headers)
                assert answer.status_code == 200, (who, path)
                assert "<script>alert" not in answer.text, (who, path)
                assert "<svg onload" not in answer.text, (who, path)
    # the bank's own page does show its texts (escaped): the test looks where they are
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert escaped in ui(t["bank"]).get(f"/ui/fleet/gpu/{serial}").text
    story = ui(t["operator"]).get(f"/ui/ledger?serial={serial}").text
    assert story.count(escaped) >= 3  # the purpose, and the chain's parties and notes


@SQLITE_ONLY
def test_the_api_never_takes_the_dashboard_cookie(ui: Ui, demo: list[DemoUser]) -> None:
    """The cookie is the dashboard's (Path=/ui); even sent to the API (a cookie of Path=/,
    say) it authenticates nothing there, so no cross-site form can reach the API."""
    client = ui(None)
    client.cookies.set(SESSION_COOKIE, _tokens(demo)["operator"], domain="testserver.local")
    answer = client.get("/api/v1/jobs")
    assert answer.status_code == 401
    posted = client.post("/api/v1/jobs", data={"gpus": "8", "purpose": "x", "command": "t"})
    assert posted.status_code in (401, 422)


@SQLITE_ONLY
def test_a_forged_host_redirect_is_never_cacheable(ui: Ui) -> None:
    """``/ui`` and ``/ui/fleet/`` are redirected by the router to an absolute URL built from
    the Host header; a shared cache must never keep one a forged Host made."""
    client = ui(None)
    for path in ("/ui", "/ui/fleet/", "/ui/static"):
        answer = client.get(path, headers={"Host": "evil.example"})
        assert answer.status_code in (303, 307, 308), path
        assert answer.headers["Cache-Control"] == "no-store", path
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"], path


@SQLITE_ONLY
def test_a_hostile_serial_stays_text_and_a_dashboard_link(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    """Serials come from suppliers' papers: quotes, angle brackets and a ``javascript:``
    scheme in one must neither become markup nor make the cell's link leave ``/ui``."""
    from gpulease.persistence.tables import Gpu

    hostile = ['javascript:alert(1)"><b>x</b>', "//evil.example/'x"]
    with ctx.db.transaction() as tx:
        node = tx.all(tx.select(Node))[0]
        for i, serial in enumerate(hostile):
            tx.session.add(Gpu(serial=serial, node_id=node.id, slot=90 + i, model="GB200"))
    ctx.cache.clear()
    for who in ("operator", "university"):
        body = ui(_tokens(demo)[who]).get("/ui/fleet").text
        assert "<b>x</b>" not in body
        hrefs = re.findall(r'href="([^"]*)"', body)
        assert hrefs
        for href in hrefs:
            assert href.startswith(("/ui/", "#")), href
        assert "/ui/fleet/gpu/javascript:alert(1)&#34;&gt;" in body or (
            "/ui/fleet/gpu/javascript:alert(1)&quot;&gt;" in body
        )


@SQLITE_ONLY
def test_a_user_disabled_mid_session_is_out_at_the_next_click_and_post(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    admin = identity.authenticate(ctx, _tokens(demo)["university"])
    user, token = identity.create_user(
        ctx,
        admin,
        name="Leaver",
        email="leaver@university.example",
        role=admin.role,
        tenant_id=admin.tenant_id,
    )
    client = ui(token)
    assert client.get("/ui/queue").status_code == 200  # checked now: in the process's cache
    identity.set_disabled(ctx, admin, user.id, disabled=True, reason="test: left")
    page = client.get("/ui/queue")
    assert (page.status_code, page.headers["location"]) == (303, "/ui/login?ended=1")
    polled = client.get("/ui/fleet/grid", headers={"HX-Request": "true"})
    assert polled.status_code == 401
    posted = client.post("/ui/logout", data={"csrf": client.csrf})  # type: ignore[attr-defined]
    assert posted.status_code == 303  # a dead session can still be ended


@SQLITE_ONLY
def test_a_plain_http_page_of_the_same_host_cannot_post_to_the_https_site(
    ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    """Anyone on the path can write ``http://host``; its forms must not pass the Origin
    check of ``https://host`` (login CSRF with a planted nonce, a forced logout)."""
    settings = ctx.settings.model_copy(update={"run_scheduler": False})
    app = create_app(
        ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock, cache=ctx.cache)
    )
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        nonce = _nonce(client)
        token = _tokens(demo)["bank"]
        data = {"token": token, "csrf": nonce}
        answer = client.post("/ui/login", data=data, headers={"Origin": "http://testserver"})
        assert answer.status_code == 403
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
        out = client.post("/ui/logout", headers={"Origin": "http://testserver"})
        assert out.status_code == 403
        ok = client.post("/ui/login", data=data, headers={"Origin": "https://testserver"})
        assert ok.status_code == 303


@SQLITE_ONLY
def test_every_dashboard_form_refuses_a_cross_site_or_tokenless_post(
    ui: Ui, demo: list[DemoUser]
) -> None:
    """Every POST route of every page module (and logout), as the role that may use it
    (a compliance officer: the decisions are theirs), forged four ways: refused before the
    route acts (the path's record need not exist)."""
    t = _tokens(demo)
    routes = [
        PREFIX + re.sub(r"\{[^}]+\}", "x-1", route.path)
        for module in pages.MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    ] + ["/ui/logout"]
    client = ui(t["compliance"])
    csrf = client.csrf  # type: ignore[attr-defined]
    forged = [
        ({"Origin": "https://evil.example"}, {"csrf": csrf}),
        ({"Origin": "null"}, {"csrf": csrf}),
        ({}, {}),
        ({}, {"csrf": csrf_token(t["bank"])}),
    ]
    for path in routes:
        for headers, data in forged:
            form = {"decision": "approve", "reason": "forged"} | data
            answer = client.post(path, data=form, headers=headers)
            assert answer.status_code == 403, (path, headers, data, answer.status_code)
