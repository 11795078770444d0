"""Request dependencies: the service context and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gpulease.domain.access import Principal
from gpulease.services import identity
from gpulease.services.context import ServiceContext

_bearer = HTTPBearer(auto_error=False, description="an API token: glt_...")


def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def get_principal(
    request: Request,
    ctx: Annotated[ServiceContext, Depends(get_ctx)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    principal = identity.authenticate(ctx, credentials.credentials if credentials else None)
    if request.client is not None:
        identity.note_access(ctx, principal, request.client.host)
    return principal


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
Me = Annotated[Principal, Depends(get_principal)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="a retried request with this key creates nothing"),
]
