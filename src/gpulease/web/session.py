"""Dashboard sessions: a login form that takes an API token, its cookie, CSRF and Origin checks.

Design. The dashboard authenticates exactly as the API does: the same tokens, the same
check (``identity.check``: one read of the authentication epoch for a token checked
recently), the same per-address limit of failed authentications (``api.ratelimit``), the
same record of accesses. The login form takes an API token; once it checks, the token is
kept in the session cookie :data:`SESSION_COOKIE`:

* ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page makes the
  browser send it), ``Path=/ui``, ``Secure`` when served over https
  (``Settings.ui_cookie_secure``: ``auto``, ``always`` or ``never``);
* its life is ``Settings.ui_session_hours`` at most, and never past the token's expiry.

Every request checks the token again, so a token revoked, expired or of a user disabled
ends the session at the next request: the cookie is cleared and the login page says why
(``?ended=1``). A request whose cookie fails counts as a failed authentication of its
address, so the cookie is no way around the limit on guessing tokens.

CSRF. Every POST carries a token, in the form field ``csrf`` or the header
``X-CSRF-Token`` (htmx sends it from ``hx-headers`` on the page's body):
``HMAC-SHA256(key=session token, "gpulease-ui-csrf")``. Only a holder of the cookie can
compute it, and it says nothing of the token. The login form, before any session, uses a
double-submit cookie (:data:`LOGIN_COOKIE`, random, HttpOnly, SameSite=Strict) that must
equal its hidden field. Every POST must also come from this server's own pages: its
``Origin`` (or, when a browser sends none, its ``Referer``) must name this host.

Logout clears the cookie; the token itself stays valid until revoked (``gpulease tokens
revoke``): it is the user's API token, not a credential the dashboard minted.

Invariants: no page is rendered for a request whose token did not check now; no POST is
acted on without a matching CSRF token and a same-host Origin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import Depends, Form, Header, Request

from gpulease.api.deps import client_address
from gpulease.api.ratelimit import ApiLimits
from gpulease.domain.access import Principal
from gpulease.domain.errors import Denied, Unauthenticated
from gpulease.services import identity, lookup
from gpulease.services.auth_cache import Credential
from gpulease.services.context import ServiceContext
from gpulease.settings import Settings

SESSION_COOKIE = "gl_session"
LOGIN_COOKIE = "gl_login"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
_CSRF_LABEL = b"gpulease-ui-csrf"
TOKEN_FIELD_MAX = 200  # longer than any token issued (identity.TOKEN_MAX refuses the rest)
LOGIN_PAGE = "/ui/login"
HOME = "/ui/fleet"
CROSS_SITE = (
    "this form was sent from another site (or without an Origin header); "
    "use the dashboard's own pages"
)


class LoginNeeded(Exception):
    """No session, or its token no longer checks: the route class answers with the login
    page (a redirect; for htmx, ``HX-Redirect``) and clears the cookie."""

    def __init__(self, *, ended: bool) -> None:
        super().__init__("login needed")
        self.ended = ended


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session (see the module's docstring)."""
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()[:40]


def same_origin(request: Request) -> bool:
    """Whether a POST came from a page of this host: its Origin, or without one its Referer,
    names the host the request was sent to; and a request that came over https came from an
    https page (a plain-http page of the same host, which anyone on the path can write, is
    not this site). An https page posting to a request seen as http is accepted: a TLS proxy
    not listed in ``trusted_proxies`` hides the scheme."""
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    if not host or not source or source == "null":
        return False
    parts = urlsplit(source)
    if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
        return False
    return not (request.url.scheme == "https" and parts.scheme == "http")


def safe_next(target: str | None) -> str:
    """Where to go after login: a dashboard path of this host, never another site, never
    out of ``/ui/`` by dot segments (a browser resolves ``/ui/..//x`` to ``//x`` and
    ``/ui/%2e%2e/api`` to ``/api``)."""
    if (
        not target
        or len(target) > 500
        or not target.startswith("/ui/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(ch) < 0x21 for ch in target)
    ):
        return HOME
    path = unquote(target.split("?", 1)[0].split("#", 1)[0])
    if "//" in path or "\\" in path or any(seg in (".", "..") for seg in path.split("/")):
        return HOME
    return target


def cookie_secure(settings: Settings, request: Request) -> bool:
    mode = settings.ui_cookie_secure
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def session_max_age(settings: Settings, credential: Credential, now: datetime) -> int:
    """The cookie's life in seconds: the configured hours, never past the token's expiry."""
    seconds = settings.ui_session_hours * 3600.0
    if credential.expires_at is not None:
        seconds = min(seconds, (credential.expires_at - now).total_seconds())
    return max(1, int(seconds))


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at a page: the principal, the names shown in the header and the CSRF
    token every form of the page carries."""

    principal: Principal
    csrf: str
    user_name: str
    tenant_name: str  # "" for operator staff

    @property
    def role_label(self) -> str:
        return self.principal.role.value.replace("-", " ")


def _context(request: Request) -> tuple[ServiceContext, ApiLimits]:
    return request.app.state.ctx, request.app.state.limits


def authenticate(
    ctx: ServiceContext, limits: ApiLimits, request: Request, token: str
) -> Credential:
    """Check ``token`` as the API checks a bearer token (limit, cache, access record)."""
    address = client_address(request)
    limits.auth.check(address, token)  # RateLimited before any lookup once blocked
    try:
        credential = identity.check(ctx, token)
    except Unauthenticated:
        limits.auth.failed(address)
        raise
    limits.auth.succeeded(address, credential.token_hash)
    request.state.principal_id = credential.principal.user_id  # the request's log line
    if request.client is not None:
        identity.note_access(ctx, credential.principal, address)
    return credential


def get_viewer(request: Request) -> Viewer:
    """The page's viewer from the session cookie; LoginNeeded without a valid one."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginNeeded(ended=False)
    ctx, limits = _context(request)
    try:
        credential = authenticate(ctx, limits, request, token)
    except Unauthenticated:
        raise LoginNeeded(ended=True) from None
    principal = credential.principal
    user_name, tenant_name = lookup.display_names(ctx, principal.user_id, principal.tenant_id)
    return Viewer(principal, csrf_token(token), user_name, tenant_name)


def check_post(request: Request, session_token: str, given: str) -> None:
    """Refuse a POST not from this host's pages or without the session's CSRF token."""
    if not same_origin(request):
        raise Denied(CROSS_SITE)
    if not given or not hmac.compare_digest(given, csrf_token(session_token)):
        raise Denied("the form's security token is missing or stale; reload the page and retry")


def get_poster(
    request: Request,
    viewer: Annotated[Viewer, Depends(get_viewer)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    header: Annotated[str, Header(alias=CSRF_HEADER, max_length=100)] = "",
) -> Viewer:
    """:func:`get_viewer` for a POST: same Origin and the session's CSRF token required."""
    check_post(request, request.cookies.get(SESSION_COOKIE, ""), csrf or header)
    return viewer


Looking = Annotated[Viewer, Depends(get_viewer)]
Posting = Annotated[Viewer, Depends(get_poster)]
