"""The one place where domain errors become HTTP responses.

Every error body is ``{"code", "message", "details"}``. Codes are the domain's stable codes;
the HTTP status follows from the code alone (:data:`HTTP_STATUS`). Request validation
failures are ``invalid_request`` (422) and name the offending field (``details.field``: the
parameter's name, or the dotted path inside the body, ``owners.0.percent``). ``rate_limited``
(429) carries ``Retry-After`` in whole seconds. A path no route serves is ``not_found`` with
a message that says what to do (:func:`no_route_message`). Anything unexpected is
``internal`` (500) with no stack trace in the body (it goes to the server log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpulease.domain.errors import DomainError

log = logging.getLogger("gpulease.api")

HTTP_STATUS: dict[str, int] = {
    "invalid_request": 422,
    "idempotency_mismatch": 422,
    "invalid_list": 422,
    "unauthenticated": 401,
    "denied": 403,
    "not_approved": 403,
    "not_found": 404,
    "payload_too_large": 413,
    "conflict": 409,
    "invalid_transition": 409,
    "ambiguous": 409,
    "already_ended": 409,
    "insufficient_capacity": 409,
    "rate_limited": 429,
    "database_unavailable": 503,
    # metering: a request the rules refuse, or recorded usage that cannot be rated as it is
    "metering_error": 422,
    "unknown_currency": 422,
    "naive_timestamp": 422,
    "no_plan_in_force": 409,
    "uncovered_usage": 409,
    "overlapping_allocations": 409,
    "conflicting_allocation": 409,
    "inverted_interval": 409,
    "invoice_mismatch": 409,
}
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


def no_route_message(method: str, path: str) -> str:
    """What to do about a path no route serves (the usual slip: a base URL that already ends
    in ``/api/v1``, so every path repeats it)."""
    shown = path if len(path) <= 120 else path[:117] + "..."
    if "/api/v1/api/v1" in path:
        return (
            f"no route {method} {shown}: the URL repeats /api/v1; use the server's base URL "
            "(e.g. http://127.0.0.1:8000, without /api/v1)"
        )
    if not path.startswith("/api/v1/"):
        return f"no route {method} {shown}: the API is under /api/v1 (see /api/v1/docs)"
    return f"no route {method} {shown}; the routes are listed at /api/v1/docs"


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, error: DomainError) -> JSONResponse:
        status = HTTP_STATUS.get(error.code, 400)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 429:
            headers = {"Retry-After": str(error.details.get("retry_after_s", 60))}
        return JSONResponse(error.to_dict(), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            if item.get("type") == "json_invalid":  # loc is ("body", offset)
                reason = (item.get("ctx") or {}).get("error", "")
                offset = item.get("loc", ("", "?"))[-1]
                problems.append({"field": "body", "message": f"invalid JSON at {offset}: {reason}"})
                continue
            loc = list(item.get("loc", ()))
            if loc and loc[0] in _LOCATIONS:  # body.gpus, query.threshold: the field's name
                loc = loc[1:]
            field = ".".join(str(part) for part in loc) or "body"
            problems.append({"field": field, "message": item.get("msg", "")})
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        details = {"field": first["field"], "errors": problems}
        return JSONResponse(error_body("invalid_request", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthenticated",
            413: "payload_too_large",
        }.get(error.status_code, "http_error")
        message = str(error.detail)
        if error.status_code == 404 and message == "Not Found":  # no route: say what to do
            message = no_route_message(request.method, request.url.path)
        return JSONResponse(error_body(code, message), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return JSONResponse(
            error_body("internal", "internal error; the operator's log has the details"),
            status_code=500,
        )
