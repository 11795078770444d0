"""Mounting the dashboard on the API's app: its routes under ``/ui``, its files under
``/ui/static``.

The routes are the app's own (not a sub-application): the app's middleware applies to
them as to the API (request bodies capped, requests timed and logged with their route's
template), and the OpenAPI document leaves them out (``include_in_schema=False``). Static
files come from the installed package, with ``nosniff`` and a day's caching.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gpulease.web import login, pages
from gpulease.web.render import PageRoute

PREFIX = "/ui"
STATIC = PREFIX + "/static"


class _Static(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "public, max-age=86400")
        return response


def install(app: FastAPI) -> None:
    """Add the dashboard to ``app`` (whose ``state`` holds ``ctx`` and ``limits``)."""
    app.mount(STATIC, _Static(packages=[("gpulease.web", "static")]), name="ui-static")
    ui = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
    ui.include_router(login.router)
    for module in pages.MODULES:
        ui.include_router(module.router)
    app.include_router(ui)
