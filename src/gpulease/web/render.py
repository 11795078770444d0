"""Rendering pages: the Jinja2 environment, the page helper, and the route class of every page.

Templates live in ``web/templates`` and are autoescaped (``.html`` and ``.svg``); an unknown
variable is an error (``StrictUndefined``), not an empty string. A page is rendered with
:func:`page`, which adds what the layout needs (the viewer, the navigation of its role, the
CSRF token). :func:`fragment` renders a template for htmx to swap in (no layout).

:class:`PageRoute` is the route class of every dashboard route. Around the route (its
dependencies included) it:

* turns :class:`~gpulease.web.session.LoginNeeded` into the login page (a 303 redirect, or
  for an htmx request ``HX-Redirect``) and clears a session cookie that no longer checks;
* turns a :class:`~gpulease.domain.errors.DomainError` into an error page with the status
  of ``api.errors.HTTP_STATUS`` (the one mapping of codes to HTTP), a request that fails
  validation into a 422 page naming the field, anything else into a 500 page (the trace
  goes to the log, never to the page);
* sets the security headers of :data:`SECURITY_HEADERS` on every answer: a
  Content-Security-Policy with scripts and styles from this origin only (no inline script,
  no ``eval``), no framing, no sniffing, no caching of pages that name tenants.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpulease.api.errors import HTTP_STATUS
from gpulease.domain.errors import DomainError
from gpulease.web import nav
from gpulease.web.session import COOKIE_PATH, LOGIN_PAGE, SESSION_COOKIE, LoginNeeded, Viewer

log = logging.getLogger("gpulease.web")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ENV = Environment(
    loader=PackageLoader("gpulease.web", "templates"),
    autoescape=select_autoescape(["html", "svg"], default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def page_router() -> APIRouter:
    """A router for a page module: every route of it goes through :class:`PageRoute`."""
    return APIRouter(route_class=PageRoute)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def page(
    request: Request,
    viewer: Viewer,
    template: str,
    *,
    title: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A full page in the layout: ``template`` extends ``base.html``."""
    body = ENV.get_template(template).render(
        viewer=viewer,
        nav=nav.items_for(viewer.principal),
        here=request.url.path,
        title=title,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=dict(headers or {}))


def fragment(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A piece of a page for htmx to swap in (no layout)."""
    return HTMLResponse(ENV.get_template(template).render(**context), status_code=status)


def _error_page(request: Request, status: int, code: str, message: str) -> HTMLResponse:
    template = "error_fragment.html" if is_htmx(request) else "error.html"
    body = ENV.get_template(template).render(status=status, code=code, message=message)
    return HTMLResponse(body, status_code=status)


def _login_redirect(request: Request, ended: bool) -> Response:
    target = LOGIN_PAGE + ("?ended=1" if ended else "")
    if not ended and request.method == "GET" and not is_htmx(request):
        target += "?next=" + quote(request.url.path, safe="/")
    if is_htmx(request):
        response: Response = Response(status_code=401, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    if ended:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response


def secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


class PageRoute(APIRoute):
    """The route class of the dashboard (module doc): errors as pages, security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except LoginNeeded as need:
                response = _login_redirect(request, need.ended)
            except DomainError as error:
                status = HTTP_STATUS.get(error.code, 400)
                response = _error_page(request, status, error.code, error.message)
                if status == 429:
                    retry = str(error.details.get("retry_after_s", 60))
                    response.headers["Retry-After"] = retry
            except RequestValidationError as error:
                first = error.errors()[0] if error.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
                message = f"{where}: {first.get('msg', 'invalid')}"
                response = _error_page(request, 422, "invalid_request", message)
            except StarletteHTTPException as error:  # a body FastAPI could not parse, say
                response = _error_page(request, error.status_code, "http_error", str(error.detail))
            except Exception:  # as the API answers: no trace in the page, all in the log
                log.exception("unhandled error on %s", request.url.path)
                message = "internal error; the operator's log has the details"
                response = _error_page(request, 500, "internal", message)
            return secured(response)

        return page_handler
