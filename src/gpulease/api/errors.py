"""The one place where domain errors become HTTP responses.

Every error body is ``{"code", "message", "details"}``. Codes are the domain's stable codes;
the HTTP status follows from the code alone (:data:`HTTP_STATUS`). Request validation
failures are ``invalid_request`` (422) and name the offending field (``details.field``: the
parameter's name, or the dotted path inside the body, ``owners.0.percent``). ``rate_limited``
(429) carries ``Retry-After`` in whole seconds. Anything unexpected is ``internal`` (500) with
no stack trace in the body (it goes to the server log).
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
    "insufficient_capacity": 409,
    "rate_limited": 429,
    "database_unavailable": 503,
}
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


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
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthenticated",
            413: "payload_too_large",
        }.get(error.status_code, "http_error")
        return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return JSONResponse(
            error_body("internal", "internal error; the operator's log has the details"),
            status_code=500,
        )
