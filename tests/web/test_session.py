"""The dashboard's sessions in-process: login, cookie flags, CSRF, Origin, the rate limit,
a revoked token, and the security headers (real app, real database, no browser)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_support import HOST, Ui, session_client, short_tokens

from gpulease.api.app import create_app
from gpulease.domain.clock import ManualClock
from gpulease.services import identity, tokens
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.web.session import LOGIN_COOKIE, SESSION_COOKIE

TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "gpulease" / "web" / "templates"
# Checks of the session's own rules (flags, origins, CSRF, the in-memory limit) read the
# database as any login does: on SQLite only. The login itself and a revocation, which
# depend on the database (the token's row, the authentication epoch), run on both.
SQLITE_ONLY = pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)


def _login(client: TestClient, token: str, *, origin: str = "", next_path: str = "") -> object:
    form = client.get("/ui/login")
    assert form.status_code == 200
    nonce = client.cookies.get(LOGIN_COOKIE)
    assert nonce
    data = {"token": token, "csrf": nonce} | ({"next": next_path} if next_path else {})
    return client.post(
        "/ui/login", data=data, headers={"Origin": origin or client.headers["Origin"]}
    )


def test_login_sets_a_strict_httponly_cookie_and_logout_clears_it(
    ui: Ui, demo: list[DemoUser]
) -> None:
    client = ui(None)
    answer = _login(client, short_tokens(demo)["bank"])
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/fleet"
    cookie = answer.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie
    for flag in ("HttpOnly", "Path=/ui", "SameSite=strict", "Max-Age="):
        assert flag.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain http and ui_cookie_secure=auto
    page = client.get("/ui/fleet")
    assert page.status_code == 200
    assert "Bank Nusantara Digital" in page.text  # the header names the viewer's tenant
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert csrf is not None
    out = client.post("/ui/logout", data={"csrf": csrf.group(1)})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login?out=1"
    assert client.cookies.get(SESSION_COOKIE) is None
    assert client.get("/ui/fleet").status_code == 303  # logged out


@SQLITE_ONLY
def test_secure_cookie_when_configured(ctx: ServiceContext, demo: list[DemoUser]) -> None:
    settings = ctx.settings.model_copy(update={"ui_cookie_secure": "always"})
    app = create_app(ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock))
    with session_client(app, None, base="https://testserver") as client:
        answer = _login(client, short_tokens(demo)["bank"])
        assert answer.status_code == 303
        assert "secure" in answer.headers["set-cookie"].lower()
    # auto: Secure when the request came over https
    with session_client(create_app(ctx=ctx), None, base="https://testserver") as client:
        answer = _login(client, short_tokens(demo)["bank"])
        assert answer.status_code == 303
        assert "secure" in answer.headers["set-cookie"].lower()


@SQLITE_ONLY
def test_login_refuses_another_origin_a_missing_nonce_and_a_bad_token(
    ui: Ui, demo: list[DemoUser]
) -> None:
    client = ui(None)
    token = short_tokens(demo)["bank"]
    assert _login(client, token, origin="https://evil.example").status_code == 403
    client.get("/ui/login")
    forged = client.post(
        "/ui/login", data={"token": token, "csrf": "guessed"}, headers={"Origin": HOST}
    )
    assert forged.status_code == 403
    assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")
    bad = _login(client, "glt_" + "0" * 40)
    assert bad.status_code == 401
    assert "not accepted" in bad.text
    assert client.cookies.get(SESSION_COOKIE) is None


@SQLITE_ONLY
def test_login_goes_back_only_to_a_dashboard_path(ui: Ui, demo: list[DemoUser]) -> None:
    token = short_tokens(demo)["operator"]
    for target, expected in [
        ("/ui/queue?state=all", "/ui/queue?state=all"),
        ("//evil.example/ui/", "/ui/fleet"),
        ("https://evil.example/", "/ui/fleet"),
        ("/api/v1/jobs", "/ui/fleet"),
        ("/ui/\\evil", "/ui/fleet"),
    ]:
        answer = _login(ui(None), token, next_path=target)
        assert answer.headers["location"] == expected, target


@SQLITE_ONLY
def test_login_is_rate_limited_per_address_like_the_api(
    ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    settings = ctx.settings.model_copy(update={"auth_failures_per_minute": 3})
    clock = ManualClock(ctx.now())
    app = create_app(ctx=ServiceContext(ctx.db, settings=settings, clock=clock))
    with session_client(app, None) as client:
        for _ in range(3):
            assert _login(client, "glt_" + "1" * 40).status_code == 401
        blocked = _login(client, short_tokens(demo)["bank"])  # even a good, new token
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) >= 1
        assert "Too many failed logins" in blocked.text
        # the API shares the count: the same address is blocked there too
        api = client.get("/api/v1/me", headers={"Authorization": "Bearer glt_" + "2" * 40})
        assert api.status_code == 429
        clock.advance(61)
        assert _login(client, short_tokens(demo)["bank"]).status_code == 303


@SQLITE_ONLY
def test_a_cookie_with_a_bad_token_counts_as_a_failed_authentication(
    ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    settings = ctx.settings.model_copy(update={"auth_failures_per_minute": 2})
    app = create_app(ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock))
    for _ in range(2):
        with session_client(app, "glt_" + "3" * 40) as guess:
            assert guess.get("/ui/fleet").status_code == 303
    with session_client(app, "glt_" + "4" * 40) as guess:
        assert guess.get("/ui/fleet").status_code == 429


@SQLITE_ONLY
def test_no_session_goes_to_the_login_page(ui: Ui) -> None:
    client = ui(None)
    answer = client.get("/ui/queue")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=/ui/queue"
    htmx = client.get("/ui/fleet/grid", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/ui/login")


def test_a_revoked_token_ends_the_session_with_a_message(
    ui: Ui, ctx: ServiceContext, demo: list[DemoUser]
) -> None:
    token = short_tokens(demo)["bank"]
    client = ui(token)
    assert client.get("/ui/fleet").status_code == 200
    bank = identity.authenticate(ctx, token)
    (mine,) = [t for t in tokens.list_tokens(ctx, bank, bank.user_id) if t.revoked_at is None]
    tokens.revoke(ctx, bank, mine.id, reason="test: leaked")
    answer = client.get("/ui/fleet")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?ended=1"
    assert f'{SESSION_COOKIE}=""' in answer.headers["set-cookie"]
    login = client.get("/ui/login?ended=1")
    assert "Your session ended" in login.text
    polled = ui(token).get("/ui/fleet/grid", headers={"HX-Request": "true"})
    assert (polled.status_code, polled.headers["HX-Redirect"]) == (401, "/ui/login?ended=1")


@SQLITE_ONLY
def test_posts_need_the_csrf_token_and_this_origin(ui: Ui, demo: list[DemoUser]) -> None:
    client = ui(short_tokens(demo)["operator"])
    csrf = client.csrf  # type: ignore[attr-defined]
    assert client.post("/ui/logout", data={}).status_code == 403
    assert client.post("/ui/logout", data={"csrf": "0" * 40}).status_code == 403
    evil = client.post("/ui/logout", data={"csrf": csrf}, headers={"Origin": "http://evil"})
    assert evil.status_code == 403
    no_origin = client.post("/ui/logout", data={"csrf": csrf}, headers={"Origin": ""})
    assert no_origin.status_code == 403
    assert client.get("/ui/fleet").status_code == 200  # none of them logged out
    done = client.post("/ui/logout", headers={"X-CSRF-Token": csrf})
    assert done.status_code == 303


@SQLITE_ONLY
def test_pages_carry_the_security_headers(ui: Ui, demo: list[DemoUser]) -> None:
    client = ui(short_tokens(demo)["operator"])
    for path in ("/ui/login", "/ui/fleet", "/ui/queue", "/ui/leases", "/ui/ledger"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp, path
        assert "unsafe" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    js = client.get("/ui/static/htmx.min.js")
    assert js.status_code == 200
    assert js.headers["X-Content-Type-Options"] == "nosniff"
    assert "javascript" in js.headers["content-type"]


@pytest.mark.parametrize("path", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text), "an inline event handler"
    assert not re.search(r"\sstyle\s*=", text), "an inline style attribute"
    assert "<style" not in text
