"""Interactive API docs that work offline and read OpenAPI 3.1.

FastAPI writes OpenAPI 3.1. Swagger UI reads 3.1 from its 5.0 on; 3.x and 4.x answer
"Unable to render this definition". FastAPI's default page loads Swagger UI 5 from a CDN, so
on a machine without internet it is blank. ``install`` serves the page with the Swagger UI 5
files shipped in the ``fastapi-offline`` package (``swagger-ui-bundle.js`` and
``swagger-ui.css`` of swagger-ui-dist, pinned in pyproject.toml) under
``/api/v1/docs/assets``; the page loads nothing from anywhere else.

Invariant: every ``src``/``href`` on the page points under :data:`ASSETS_URL`, and the
script is a Swagger UI of major version :data:`SWAGGER_UI_MAJOR` (tests/api/test_docs_page.py
checks both; tests/e2e/test_docs_browser.py renders the page in a real browser).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/api/v1/docs"
ASSETS_URL = f"{DOCS_URL}/assets"
SWAGGER_UI_MAJOR = 5
ASSETS = Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI, *, openapi_url: str) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # no badge from the public validator service: nothing leaves the machine
            swagger_ui_parameters={"validatorUrl": None},
        )
