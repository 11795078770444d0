"""Interactive API docs that work offline.

FastAPI's default Swagger UI page loads its script and style from a CDN, so on a machine
without internet it is blank. ``install`` serves the page with the Swagger UI files shipped
in the ``swagger-ui-bundle`` package instead, under ``/api/v1/docs/assets``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/api/v1/docs"
ASSETS_URL = f"{DOCS_URL}/assets"


def install(app: FastAPI, *, openapi_url: str) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
        )
