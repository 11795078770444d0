"""Request dependencies: the service context, the authenticated principal, the limits.

Authentication is limited per client address (``api.ratelimit.AuthFailures``): the address is
``request.client.host``, which only a configured trusted proxy may have rewritten (see
``api.app``). Job submissions are limited per tenant (:func:`count_submission`).

Every route authenticates through :func:`get_principal` (``identity.check``: a token checked
recently costs one read of the authentication epoch), except a job submission, which takes
the cached :func:`get_credential` and confirms it inside its single transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gpulease.api.ratelimit import ApiLimits
from gpulease.domain.access import Principal
from gpulease.domain.errors import Unauthenticated
from gpulease.services import identity
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


def get_credential(
    request: Request,
    ctx: Annotated[ServiceContext, Depends(get_ctx)],
    limits: Annotated[ApiLimits, Depends(get_limits)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Credential:
    """The caller's credential as this process last checked it, read from no database for a
    known token: only for a route whose service confirms it inside its own transaction
    (``identity.confirm``; a job submission), and which reports a refusal there with
    :func:`auth_failed`."""
    return _authenticated(request, ctx, limits, credentials, identity.recall)


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
    assert token is not None
    limits.auth.succeeded(address, token)
    if request.client is not None:
        identity.note_access(ctx, credential.principal, address)
    return credential


def auth_failed(request: Request, limits: ApiLimits) -> None:
    """A credential from :func:`get_credential` was refused inside the service."""
    limits.auth.failed(client_address(request))


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
Me = Annotated[Principal, Depends(get_principal)]
Limits = Annotated[ApiLimits, Depends(get_limits)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="a retried request with this key creates nothing"),
]


Caller = Annotated[Credential, Depends(get_credential)]


async def count_submission(
    caller: Caller, limits: Annotated[ApiLimits, Depends(get_limits)]
) -> None:
    """One job submission of the principal's tenant (an operator: of the operator); 429 with
    ``Retry-After`` past ``submissions_per_minute``."""
    me = caller.principal
    if me.tenant_id is not None:
        limits.submissions.count(f"tenant {me.tenant_id}", f"tenant {me.tenant_id}")
    else:
        limits.submissions.count(f"user {me.user_id}", f"user {me.user_id}")
