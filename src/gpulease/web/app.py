"""Mounting the dashboard on the API's app: its routes under ``/ui``, its files under
``/ui/static``.

The routes are the app's own (not a sub-application): the app's middleware applies to
them as to the API (request bodies capped, requests timed and logged with their route's
template), and the OpenAPI document leaves them out (``include_in_schema=False``). Static
files come from the installed package, with ``nosniff`` and a day's caching.

Every answer under ``/ui`` carries ``render.SECURITY_HEADERS`` (CSP, no framing, no
sniffing), not only the pages' routes: :class:`_UiHeaders` adds those a response lacks to
static files, a 404 for no route and a 405 for a wrong method (answered by the app's
router and handlers, outside ``PageRoute``). A header a response set stays (the static
files' caching).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpulease.web import login, pages
from gpulease.web.render import SECURITY_HEADERS, PageRoute

PREFIX = "/ui"
STATIC = PREFIX + "/static"


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "public, max-age=86400")
        return response


class _UiHeaders:
    """ASGI middleware: the security headers on every response to a ``/ui`` path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_secured)


def install(app: FastAPI) -> None:
    """Add the dashboard to ``app`` (whose ``state`` holds ``ctx`` and ``limits``)."""
    app.add_middleware(_UiHeaders)
    app.mount(STATIC, _Static(packages=[("gpulease.web", "static")]), name="ui-static")
    ui = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
    ui.include_router(login.router)
    for module in pages.MODULES:
        ui.include_router(module.router)
    app.include_router(ui)
