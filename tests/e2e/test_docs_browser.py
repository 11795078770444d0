"""The API docs page in a real headless browser (Debian's Chromium, driven by Playwright),
served by a real ``gpulease serve``: it renders every operation of the OpenAPI document the
server writes (3.1), and nothing it loads leaves the machine.

Chromium comes from ``scripts/install-chromium.sh`` (``make test`` runs it); without it, or
without the ``playwright`` package, the test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from e2e_support import GPULEASE, Server, server_env, start

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("GPULEASE_TEST_CHROMIUM", "/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _chromium() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        if found is None:
            pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install-chromium.sh (as root)")
        return found
    return CHROMIUM


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on an empty SQLite database (the docs need no data), without a scheduler."""
    data = tmp_path_factory.mktemp("docs")
    url = f"sqlite:///{data / 'gpulease.db'}"
    done = subprocess.run(
        [*GPULEASE, "init"], env=server_env(url, data), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    server = start(url, data, {}, "--no-scheduler")
    try:
        yield server
    finally:
        server.kill()


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_docs_page_lists_every_operation_and_loads_nothing_from_outside(
    plain_server: Server,
) -> None:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'"
    )
    executable = _chromium()
    spec = httpx.get(plain_server.url + "/api/v1/openapi.json", timeout=60).json()
    assert spec["openapi"].startswith("3.1")
    expected = _operations(spec)
    assert len(expected) > 30

    requested: list[str] = []
    outside: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        requested.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            outside.append(url)
            route.abort()
        else:
            route.continue_()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            page = browser.new_page()
            page.route("**/*", guard)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(plain_server.url + "/api/v1/docs", wait_until="networkidle")
            assert outside == [], "the page loads from outside the machine"
            # the operations, or Swagger UI's "Unable to render this definition"
            page.wait_for_function(
                "document.querySelector('.opblock') || "
                "document.body.innerText.includes('Unable to render')",
                timeout=30_000,
            )
            text = page.inner_text("body")
            blocks = page.eval_on_selector_all(
                ".opblock",
                """blocks => blocks.map(b => [
                    b.querySelector('.opblock-summary-method').textContent.trim(),
                    b.querySelector('.opblock-summary-path').getAttribute('data-path'),
                ])""",
            )
        finally:
            browser.close()

    assert "Unable to render this definition" not in text
    assert errors == []
    shown = [(str(method), str(path)) for method, path in blocks]
    assert len(shown) == len(set(shown))
    assert set(shown) == expected
    assert outside == []  # nor while it rendered
    assert any(url.endswith("/api/v1/openapi.json") for url in requested)
    assert any("/api/v1/docs/assets/swagger-ui-bundle.js" in url for url in requested)
