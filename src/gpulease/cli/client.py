"""The CLI's HTTP client: where the server is, who we are, and errors as one line.

Credentials come from ``GPULEASE_URL`` / ``GPULEASE_TOKEN`` or, failing those, from the file
``gpulease login`` writes (``~/.config/gpulease/config.json``, or ``GPULEASE_CONFIG``), kept
readable by its owner only. A server error arrives as ``{"code", "message", "details"}`` and
is raised as :class:`RemoteError` carrying the same code, so the CLI prints it as one line;
where the client knows better what to do (a saved token this server does not know), the
message says so. A URL is the server's base URL: one ending in ``/api/v1`` is cut back to it
(:func:`base_url`). Records named in a path go through :func:`segment` (a name may hold a
space or a slash).

Tests (and embedders) can run every command against an app in the same process:
``with injected(http): ...`` makes each :class:`ApiClient` send through ``http`` (an
``httpx.Client`` whose base URL ends in ``/api/v1``, such as Starlette's ``TestClient``)
instead of opening a connection to ``GPULEASE_URL``; the bearer token still comes from the
credentials, per request.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from gpulease.domain.errors import DomainError

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
UNKNOWN_TOKEN = "unknown_token"  # services.identity: a token the server does not know
_injected: ContextVar[httpx.Client | None] = ContextVar("gpulease_cli_http", default=None)


@contextmanager
def injected(http: httpx.Client) -> Iterator[None]:
    """Inside: every :class:`ApiClient` made without its own client sends through ``http``."""
    mark = _injected.set(http)
    try:
        yield
    finally:
        _injected.reset(mark)


class RemoteError(DomainError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, **(details or {}))
        self.code = code  # type: ignore[misc]


def base_url(url: str) -> str:
    """The server's base URL: ``http://host:8000/api/v1/`` is ``http://host:8000`` (the
    client adds ``/api/v1`` itself)."""
    clean = url.strip().rstrip("/")
    while clean.endswith(API_PREFIX):
        clean = clean[: -len(API_PREFIX)].rstrip("/")
    return clean


def segment(ref: str) -> str:
    """A record's id or name as one path segment."""
    return quote(ref.strip(), safe="")


def config_path() -> Path:
    explicit = os.environ.get("GPULEASE_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gpulease" / "config.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    url: str
    token: str | None
    source: str = "given"  # where the token came from: "saved", "GPULEASE_TOKEN" or "given"


def load_credentials() -> Credentials:
    stored: dict[str, str] = {}
    path = config_path()
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise RemoteError("invalid_config", f"{path} is not valid JSON; log in again") from None
    url = os.environ.get("GPULEASE_URL") or stored.get("url") or DEFAULT_URL
    token = os.environ.get("GPULEASE_TOKEN")
    source = "GPULEASE_TOKEN"
    if not token:
        token, source = stored.get("token"), "saved"
    return Credentials(base_url(url), token, source)


def save_credentials(creds: Credentials) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": creds.url, "token": creds.token}, handle)
    return path


class ApiClient:
    _owned = True  # this client made its httpx client (and closes it)

    def __init__(
        self,
        creds: Credentials | None = None,
        timeout: float = 30.0,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.creds = creds or load_credentials()
        given = http or _injected.get()
        self._owned = given is None
        self._http = given or httpx.Client(
            base_url=base_url(self.creds.url) + API_PREFIX,
            timeout=timeout,
            transport=httpx.HTTPTransport(retries=3),  # connection retries only
        )

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self._send("GET", path, params=clean)

    def post(self, path: str, body: dict[str, Any] | None = None, *, create: bool = False) -> Any:
        """POST; a create carries a fresh Idempotency-Key so a retry never duplicates it."""
        headers = {"Idempotency-Key": str(uuid.uuid4())} if create else None
        clean = {k: v for k, v in (body or {}).items() if v is not None}
        return self._send("POST", path, json=clean, headers=headers)

    def upload(self, path: str, files: dict[str, bytes], form: dict[str, str]) -> Any:
        """POST files as multipart form data (list imports)."""
        parts = [("files", (name, data)) for name, data in files.items()]
        return self._send("POST", path, files=parts, data=form)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds.token}"} if self.creds.token else {}

    def _send(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        try:
            response = self._http.request(
                method, path, headers=self._auth() | (headers or {}), **kwargs
            )
        except httpx.TransportError as error:
            raise RemoteError(
                "unreachable",
                f"cannot reach the gpulease server at {self.creds.url} ({error}); is "
                "`gpulease serve` running, and is GPULEASE_URL right?",
            ) from None
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            code, message, details = body["code"], body["message"], body.get("details")
        except (ValueError, KeyError, TypeError):
            raise RemoteError(
                "http_error",
                f"HTTP {response.status_code} from {self.creds.url}: {response.text[:200]} "
                "(is this the gpulease server's base URL?)",
            ) from None
        raise RemoteError(code, self._advice(code, message, details or {}), details)

    def _advice(self, code: str, message: str, details: dict[str, Any]) -> str:
        """The server's message, or what to do where this client knows better."""
        if code != "unauthenticated" or details.get("reason") != UNKNOWN_TOKEN:
            return message
        url = self.creds.url
        whose = {
            "saved": "your saved token",
            "GPULEASE_TOKEN": "the token in GPULEASE_TOKEN",
        }.get(self.creds.source, "this token")
        return (
            f"this server ({url}) does not know {whose}, or it was revoked (the site may have "
            f"been re-initialised): log in again with `gpulease login --url {url} --token ...` "
            "using a token your admin issues"
        )

    def close(self) -> None:
        if self._owned:
            self._http.close()
