"""Request dependencies: the service context, the authenticated principal, the limits.

Authentication is limited per client address (``api.ratelimit.AuthFailures``): the address is
``request.client.host``, which only a configured trusted proxy may have rewritten (see
``api.app``). Job submissions are limited per tenant (:func:`count_submission`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gpulease.api.ratelimit import ApiLimits
from gpulease.domain.access import Principal
from gpulease.domain.errors import Unauthenticated
from gpulease.services import identity
from gpulease.services.context import ServiceContext

_bearer = HTTPBearer(auto_error=False, description="an API token: glt_...")
UNKNOWN_ADDRESS = "unknown"  # a transport that gives no peer address (not HTTP over TCP)


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def get_limits(request: Request) -> ApiLimits:
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
    address = client_address(request)
    token = credentials.credentials if credentials else None
    limits.auth.check(address, token)  # 429 before any lookup once the address is blocked
    try:
        principal = identity.authenticate(ctx, token)
    except Unauthenticated:
        if token:
            limits.auth.failed(address)
        raise
    assert token is not None
    limits.auth.succeeded(address, token)
    if request.client is not None:
        identity.note_access(ctx, principal, address)
    return principal


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
Me = Annotated[Principal, Depends(get_principal)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="a retried request with this key creates nothing"),
]


def count_submission(me: Me, limits: Annotated[ApiLimits, Depends(get_limits)]) -> None:
    """One job submission of the principal's tenant (an operator: of the operator); 429 with
    ``Retry-After`` past ``submissions_per_minute``."""
    if me.tenant_id is not None:
        limits.submissions.count(f"tenant {me.tenant_id}", f"tenant {me.tenant_id}")
    else:
        limits.submissions.count(f"user {me.user_id}", f"user {me.user_id}")
