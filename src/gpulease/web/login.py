"""``/ui/login`` and ``/ui/logout``: a session from an API token, and its end.

The login form posts a token; it is checked exactly as a bearer token (``session``'s
module docstring), under the API's limit of failed authentications per client address (a
blocked address gets the form again with 429 and how long to wait). The form itself is
protected by a double-submit cookie and the Origin check, so another site cannot log a
browser in under a token of its choosing.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from gpulease.domain.errors import Denied, RateLimited, Unauthenticated
from gpulease.web.render import ENV, PageRoute
from gpulease.web.session import (
    COOKIE_PATH,
    CROSS_SITE,
    CSRF_HEADER,
    HOME,
    LOGIN_COOKIE,
    LOGIN_PAGE,
    SESSION_COOKIE,
    TOKEN_FIELD_MAX,
    authenticate,
    check_post,
    cookie_secure,
    new_login_nonce,
    safe_next,
    same_origin,
    session_max_age,
)

router = APIRouter(route_class=PageRoute)

ENDED = (
    "Your session ended: the token was revoked or has expired, or your user was disabled. "
    "Log in again with a valid token."
)
BAD_TOKEN = "That token was not accepted: it is unknown, revoked or expired. Check it and retry."
LOGIN_STALE = "The login form expired or came from another site; it was reloaded, try again."


def _form(
    request: Request,
    *,
    status: int = 200,
    message: str = "",
    notice: str = "",
    next_path: str = HOME,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_COOKIE) or new_login_nonce()
    body = ENV.get_template("login.html").render(
        title="Log in", message=message, notice=notice, nonce=nonce, next_path=next_path
    )
    response = HTMLResponse(body, status_code=status, headers=headers)
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request.app.state.ctx.settings, request),
    )
    return response


@router.get("/login")
def login_form(
    request: Request,
    ended: Annotated[int, Query(ge=0, le=1)] = 0,
    out: Annotated[int, Query(ge=0, le=1)] = 0,
    next: Annotated[str, Query(max_length=500)] = HOME,
) -> Response:
    notice = ENDED if ended else ("You are logged out." if out else "")
    return _form(request, notice=notice, next_path=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=TOKEN_FIELD_MAX)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = HOME,
) -> Response:
    target = safe_next(next)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not same_origin(request) or not nonce or not hmac.compare_digest(nonce, csrf):
        return _form(request, status=403, message=LOGIN_STALE, next_path=target)
    token = token.strip()
    if not token:
        return _form(request, status=422, message="Paste an API token (glt_…).", next_path=target)
    ctx = request.app.state.ctx
    try:
        credential = authenticate(ctx, request.app.state.limits, request, token)
    except RateLimited as error:
        wait = str(error.details.get("retry_after_s", 60))
        message = f"Too many failed logins from your address; try again in {wait} s."
        return _form(
            request, status=429, message=message, next_path=target, headers={"Retry-After": wait}
        )
    except Unauthenticated:
        return _form(request, status=401, message=BAD_TOKEN, next_path=target)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=session_max_age(ctx.settings, credential, ctx.now()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(ctx.settings, request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/logout")
def logout(
    request: Request,
    csrf: Annotated[str, Form(max_length=100)] = "",
    header: Annotated[str, Header(alias=CSRF_HEADER, max_length=100)] = "",
) -> Response:
    """End the session in this browser (the token stays valid until revoked). Needs the
    session's CSRF token, not a valid session: a revoked token can still log out; and this
    site's Origin, with or without a session."""
    session_token = request.cookies.get(SESSION_COOKIE, "")
    if session_token:
        check_post(request, session_token, csrf or header)
    elif not same_origin(request):
        # no cookie: maybe none, maybe withheld from another site's POST (SameSite=Strict);
        # answering that one with the cookie's deletion would let any site log viewers out
        raise Denied(CROSS_SITE)
    response = RedirectResponse(LOGIN_PAGE + "?out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


@router.get("/")
def home() -> Response:
    return RedirectResponse(HOME, status_code=303)
