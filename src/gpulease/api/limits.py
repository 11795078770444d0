"""Request body limits, applied before anything parses a body or authenticates its sender.

:class:`BodyLimits` is an ASGI middleware around the routes:

* a body larger than its cap is refused with 413 ``payload_too_large``: at once when its
  ``Content-Length`` says so, else as soon as the bytes streamed in pass the cap (chunked
  bodies included). The cap is ``max_request_bytes`` (1 MiB) for every route but the
  upload routes (the multipart screening-list import), which get ``max_upload_bytes``;
* a JSON body (``application/json`` or ``application/*+json``, what FastAPI parses as
  JSON) is read whole (it is at most the cap) and its shape checked with
  :func:`~gpulease.domain.json_shape.json_problem` before ``json`` sees it: nesting deeper
  than ``max_json_depth`` or a number of more than 100 digits is a 422 ``invalid_request``
  naming the path to the offending place (``details.field``), and so is a body that is not
  UTF-8/16/32 text; the body is then handed on to the app unchanged;
* an upload is not buffered here: its bytes are counted as the app reads them, and when
  they pass the cap whatever the app was answering is replaced by the 413.

FastAPI's own ``max_body_size`` is not used: its 413 is a plain-text body rather than the
API's error document, and the depth check needs the buffered body anyway.

Invariants: a refused request never reaches a route, a dependency (authentication
included) or a JSON parser; the memory held for a request body is at most its cap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpulease.api.errors import HTTP_STATUS
from gpulease.domain.errors import DomainError, InvalidRequest, PayloadTooLarge
from gpulease.domain.json_shape import json_problem

MAX_DIGITS = 100  # of a number in a JSON body


class _TooLarge(Exception):
    """Raised into the app when an upload's streamed bytes pass the cap."""


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


def _is_json(headers: Headers) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _too_large(cap: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {cap} bytes", field="body", limit_bytes=cap
    )


async def _refuse(error: DomainError, scope: Scope, receive: Receive, send: Send) -> None:
    status = HTTP_STATUS.get(error.code, 400)
    headers = {"Connection": "close"} if status == 413 else None
    await JSONResponse(error.to_dict(), status_code=status, headers=headers)(scope, receive, send)


class BodyLimits:
    """The body cap and JSON shape guard (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        max_upload_bytes: int,
        max_json_depth: int,
        upload_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_json_depth = max_json_depth
        self.upload_paths = frozenset(upload_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"] in self.upload_paths
        cap = self.max_upload_bytes if upload else self.max_bytes
        headers = Headers(scope=scope)
        declared = _content_length(headers)
        if declared is not None and declared > cap:
            await _refuse(_too_large(cap), scope, receive, send)
            return
        if upload:
            await self._counted(cap, scope, receive, send)
            return
        body: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                await _refuse(_too_large(cap), scope, receive, send)
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        data = b"".join(body)
        if data and _is_json(headers):
            problem = self._json_problem(data)
            if problem is not None:
                await _refuse(problem, scope, receive, send)
                return
        await self.app(scope, _replay(data, receive), send)

    def _json_problem(self, data: bytes) -> InvalidRequest | None:
        try:
            text = data.decode(json.detect_encoding(data), "surrogatepass")
        except UnicodeDecodeError as error:
            return InvalidRequest(
                f"body: not UTF-8 text (byte {error.start})", field="body", position=error.start
            )
        found = json_problem(text, max_depth=self.max_json_depth, max_digits=MAX_DIGITS)
        if found is None:
            return None
        return InvalidRequest(
            f"{found.field}: {found.reason}", field=found.field, position=found.offset
        )

    async def _counted(self, cap: int, scope: Scope, receive: Receive, send: Send) -> None:
        size = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal size, exceeded
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > cap:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a body cut short; the 413 follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await _refuse(_too_large(cap), scope, receive, send)


def _replay(data: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body once, then waits on the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()

    return replay
