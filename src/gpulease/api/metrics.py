"""``/metrics`` for Prometheus, and what every request leaves behind: latency, a log line, an id.

:class:`RequestObserver` (pure ASGI, the outermost middleware) times each HTTP request and
records, once it has answered:

* ``gpulease_http_request_duration_seconds`` and ``gpulease_http_requests`` labelled by the
  matched route's **template** (``/api/v1/jobs/{job_id}``), never the raw path, so a scan of
  random paths adds no series (an unmatched path is ``unmatched``; a method outside the
  HTTP set is ``other``);
* the request's JSON log line (``activity.log_request``: method, route, status, duration,
  request id, principal id; never a token, body or query);
* ``X-Request-ID`` on the response: the client's if well formed (1-64 characters of
  ``[A-Za-z0-9._:-]``), else a new random one, so a client's id never forges a log line;
  it is also the context's ``activity.request_id`` while the request is served, so any
  JSON line logged meanwhile (a warning in the route's thread) carries it.

``GET /metrics`` (outside ``/api/v1``, not in the OpenAPI document) answers the text
exposition (``services.metrics``) to ``Authorization: Bearer <metrics_token>`` only: the
figures name tenants and leases. Without the token, or with none configured, it answers
exactly as an unknown path does (404), so the endpoint's existence is not disclosed.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpulease import activity
from gpulease.activity import log_request
from gpulease.services import metrics
from gpulease.settings import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def request_id_of(given: bytes | None) -> str:
    """The client's request id if well formed, else a fresh one (32 hex digits)."""
    if given is not None:
        try:
            text = given.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _REQUEST_ID.fullmatch(text):
            return text
    return secrets.token_hex(16)


def route_of(scope: Scope) -> str:
    """The matched route's full template, or ``unmatched``: a bounded label.

    FastAPI (0.16x) keeps an included router's routes with their own paths and records the
    full one (prefixes included) in the request's effective route context; a route added
    to the app itself carries it. The test of this module checks both against real routes.
    """
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(effective, "path_format", None)
    if not template:
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else "unmatched"


class RequestObserver:
    """Times, counts and logs every HTTP request; sets ``X-Request-ID`` (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        given = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value
                break
        request_id = request_id_of(given)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500  # unless the app answers

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        bound = activity.request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            activity.request_id.reset(bound)
            seconds = time.perf_counter() - began
            method = scope.get("method", "")
            method = method if method in METHODS else "other"
            route = route_of(scope)
            metrics.HTTP_SECONDS.labels(method, route).observe(seconds)
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            principal = state.get("principal_id")
            log_request(method, route, status, seconds, request_id, principal)


def install(app: FastAPI, settings: Settings) -> None:
    """The observer (outermost) and ``GET /metrics``."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    fleet = metrics.fleet_registry(app.state.ctx.db, app.state.ctx.clock, settings.metrics_cache_s)

    def scrape(request: Request) -> Response:
        if not metrics.token_matches(token, request.headers.get("authorization")):
            raise StarletteHTTPException(404, "Not Found")  # as an unknown path answers
        return Response(metrics.exposition(fleet), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestObserver)
