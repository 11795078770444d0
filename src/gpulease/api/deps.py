"""Request dependencies: the service context, the authenticated principal, the limits.

Authentication is limited per client address (``api.ratelimit.AuthFailures``): the address is
``request.client.host``, which only a configured trusted proxy may have rewritten (see
``api.app``). Job submissions are limited per tenant (:func:`count_submission`).

Every route authenticates through :func:`get_principal` (``identity.check``: a token checked
recently costs one read of the authentication epoch), except the common job submission:
the submission's own handler takes the cached credential (:func:`recalled_submitter` and
:func:`bearer_token`, on the event loop, no database) and confirms it inside its single
statement or transaction; a submission refused before that (invalid, denied) confirms
the credential first (``services.jobs.submit``), and one the handler leaves to FastAPI
is checked against the database by :func:`get_submitter`. So a revoked token is refused
before anything else is said to it; a submission counted for a credential refused since
is given back (:func:`auth_failed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from anyio.to_thread import run_sync
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gpulease.api.ratelimit import ApiLimits
from gpulease.domain.access import Principal
from gpulease.domain.errors import Unauthenticated
from gpulease.persistence.submission import LeanSubmissions
from gpulease.services import auth_cache, identity
from gpulease.services.auth_cache import Credential
from gpulease.services.context import ServiceContext

_bearer = HTTPBearer(auto_error=False, description="an API token: glt_...")
UNKNOWN_ADDRESS = "unknown"  # a transport that gives no peer address (not HTTP over TCP)


# The dependencies that only read memory are ``async``: FastAPI runs them on the event loop
# instead of handing each to a worker thread (a thread hop per dependency per request).
async def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


async def get_limits(request: Request) -> ApiLimits:
    limits: ApiLimits = request.app.state.limits
    return limits


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else UNKNOWN_ADDRESS


def get_principal(
    request: Request,
    ctx: Annotated[ServiceContext, Depends(get_ctx)],
    limits: Annotated[ApiLimits, Depends(get_limits)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, authenticated now (a token checked recently: one read of the epoch)."""
    return _authenticated(request, ctx, limits, credentials, identity.check).principal


@dataclass(frozen=True, slots=True)
class Submitter:
    """What a job submission takes from its request, resolved in one ``async`` dependency on
    the event loop (a sync dependency would cost a hop to a worker thread per request): the
    context, the limits, the caller's credential as this process last checked it (from no
    database for a known token) and the client's address. The service confirms the
    credential inside its own transaction (``identity.confirm``) and the route reports a
    refusal there with :func:`auth_failed`; the route notes the access
    (:meth:`note_access`) in the worker thread that runs the submission."""

    ctx: ServiceContext
    limits: ApiLimits
    credential: Credential
    address: str
    peer: bool  # the transport gave a client address (HTTP over TCP)
    noted: bool  # the access was noted already (a token read from the database now)
    lean: LeanSubmissions | None  # the event loop's statements (PostgreSQL), or None

    def note_access(self) -> None:
        """Record the access (``identity.note_access``; may write: call it in a worker
        thread)."""
        if self.peer and not self.noted:
            identity.note_access(self.ctx, self.credential.principal, self.address)

    def note_access_in_memory(self) -> bool:
        """Record the access if that writes nothing now (``identity.note_access_in_memory``,
        safe on the event loop); False: call :meth:`note_access` in a worker thread."""
        if not self.peer or self.noted:
            return True
        return identity.note_access_in_memory(self.ctx, self.credential.principal, self.address)


async def get_submitter(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Submitter:
    """Authenticate and count one submission that the route's own handler left to FastAPI
    (``api.routes.jobs``: no token, one this process does not keep, a body to refuse, another
    content type). Its token is checked against the database now (``identity.check``: one
    read of the authentication epoch for a token checked before), in a worker thread so the
    event loop never waits on the database, and before anything is counted or the body's
    refusal answered: FastAPI solves this dependency before it reports the body's errors, so
    a revoked token gets 401, never a 422 or a 403, and uses up no budget of its tenant."""
    ctx: ServiceContext = request.app.state.ctx
    limits: ApiLimits = request.app.state.limits
    credential = await run_sync(_authenticated, request, ctx, limits, credentials, identity.check)
    return _submitter(request, credential, noted=True)


def recalled_submitter(request: Request, token: str | None) -> Submitter | None:
    """:func:`get_submitter` for a token this process keeps (on the event loop, reading no
    database), with its checks and counts; None (nothing counted): the token must be read
    in a worker thread. 429 once the client's address is blocked, before any lookup."""
    ctx: ServiceContext = request.app.state.ctx
    limits: ApiLimits = request.app.state.limits
    address = client_address(request)
    limits.auth.check(address, token)  # 429 before any lookup once the address is blocked
    known = auth_cache.recall(ctx, token, ctx.now())
    if known is None:
        return None
    limits.auth.succeeded(address, known.token_hash)
    return _submitter(request, known, noted=False)


def _submitter(request: Request, credential: Credential, *, noted: bool) -> Submitter:
    ctx: ServiceContext = request.app.state.ctx
    limits: ApiLimits = request.app.state.limits
    _count(limits, credential.principal)
    request.state.principal_id = credential.principal.user_id  # the request's log line
    lean: LeanSubmissions | None = request.app.state.submissions
    address = client_address(request)
    return Submitter(ctx, limits, credential, address, request.client is not None, noted, lean)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, exactly as the routes'
    ``HTTPBearer`` reads it (None: no header, another scheme or no token)."""
    if not authorization:
        return None
    scheme, _, param = authorization.partition(" ")
    token = param.strip()
    if not scheme or not token or scheme.lower() != "bearer":
        return None
    return token


def _authenticated(
    request: Request,
    ctx: ServiceContext,
    limits: ApiLimits,
    credentials: HTTPAuthorizationCredentials | None,
    how: Callable[[ServiceContext, str | None], Credential],
) -> Credential:
    address = client_address(request)
    token = credentials.credentials if credentials else None
    limits.auth.check(address, token)  # 429 before any lookup once the address is blocked
    try:
        credential = how(ctx, token)
    except Unauthenticated:
        if token:
            limits.auth.failed(address)
        raise
    limits.auth.succeeded(address, credential.token_hash)
    request.state.principal_id = credential.principal.user_id  # the request's log line
    if request.client is not None:
        identity.note_access(ctx, credential.principal, address)
    return credential


def auth_failed(submitter: Submitter) -> None:
    """The credential of :func:`recalled_submitter` was refused inside the service (revoked,
    expired or its user disabled since it was kept): a failed authentication from its
    address, and the submission it was counted for given back to its tenant's budget."""
    submitter.limits.auth.failed(submitter.address)
    key = _budget_key(submitter.credential.principal)
    submitter.limits.submissions.refund(key)


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
Me = Annotated[Principal, Depends(get_principal)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="a retried request with this key creates nothing"),
]


Submitting = Annotated[Submitter, Depends(get_submitter)]


async def count_submission(me: Me, limits: Annotated[ApiLimits, Depends(get_limits)]) -> None:
    """One submission of the principal's tenant (an operator: of the operator); 429 with
    ``Retry-After`` past ``submissions_per_minute``."""
    _count(limits, me)


def _budget_key(me: Principal) -> str:
    return f"tenant {me.tenant_id}" if me.tenant_id is not None else f"user {me.user_id}"


def _count(limits: ApiLimits, me: Principal) -> None:
    key = _budget_key(me)
    limits.submissions.count(key, key)
