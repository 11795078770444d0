"""Tenants, users and tokens, node maintenance, and the audit trail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpulease.api.constraints import Ref
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import (
    ERROR_RESPONSES,
    AuditOut,
    MaintenanceCreate,
    MaintenanceOut,
    ReasonIn,
    TenantCreate,
    TenantOut,
    TokenCreate,
    TokenInfoOut,
    TokenOut,
    UserCreate,
    UserCreated,
    UserOut,
)
from gpulease.domain.access import Role
from gpulease.services import audit, identity, inventory, tokens

router = APIRouter(tags=["administration"])


@router.post("/tenants", status_code=201, response_model=TenantOut, responses=ERROR_RESPONSES)
def create_tenant(body: TenantCreate, ctx: Ctx, me: Me) -> TenantOut:
    """Operator: register a client organisation."""
    tenant = identity.create_tenant(ctx, me, name=body.name, country=body.country, kind=body.kind)
    return TenantOut.model_validate(tenant)


@router.get("/tenants", response_model=list[TenantOut], responses=ERROR_RESPONSES)
def list_tenants(ctx: Ctx, me: Me) -> list[TenantOut]:
    return [TenantOut.model_validate(t) for t in identity.list_tenants(ctx, me)]


@router.post("/users", status_code=201, response_model=UserCreated, responses=ERROR_RESPONSES)
def create_user(body: UserCreate, ctx: Ctx, me: Me) -> UserCreated:
    """Create a user and its first token (shown once). Tenant admins create their members."""
    user, token = identity.create_user(
        ctx,
        me,
        name=body.name,
        email=body.email,
        role=Role(body.role),
        tenant_id=body.tenant_id if me.is_operator else (body.tenant_id or me.tenant_id),
    )
    return UserCreated(user=UserOut.model_validate(user), token=token)


@router.get("/users", response_model=list[UserOut], responses=ERROR_RESPONSES)
def list_users(ctx: Ctx, me: Me, tenant_id: Annotated[Ref | None, Query()] = None) -> list[UserOut]:
    """The users you may see: staff every user (or one tenant's), an admin its tenant's."""
    return [UserOut.model_validate(u) for u in identity.list_users(ctx, me, tenant_id=tenant_id)]


@router.get("/users/{user_id}", response_model=UserOut, responses=ERROR_RESPONSES)
def show_user(user_id: Ref, ctx: Ctx, me: Me) -> UserOut:
    return UserOut.model_validate(identity.get_user(ctx, me, user_id))


@router.post("/users/{user_id}/disable", response_model=UserOut, responses=ERROR_RESPONSES)
def disable_user(user_id: Ref, body: ReasonIn, ctx: Ctx, me: Me) -> UserOut:
    """Disable a user: every token of it stops working at once (the record stays)."""
    user = identity.set_disabled(ctx, me, user_id, disabled=True, reason=body.reason)
    return UserOut.model_validate(user)


@router.post("/users/{user_id}/enable", response_model=UserOut, responses=ERROR_RESPONSES)
def enable_user(user_id: Ref, body: ReasonIn, ctx: Ctx, me: Me) -> UserOut:
    user = identity.set_disabled(ctx, me, user_id, disabled=False, reason=body.reason)
    return UserOut.model_validate(user)


@router.post(
    "/users/{user_id}/tokens", status_code=201, response_model=TokenOut, responses=ERROR_RESPONSES
)
def issue_token(user_id: Ref, ctx: Ctx, me: Me, body: TokenCreate | None = None) -> TokenOut:
    """Issue another token for a user (yourself, or one you manage); it expires."""
    wanted = body or TokenCreate()
    issued = tokens.issue(ctx, me, user_id, label=wanted.label, ttl_days=wanted.ttl_days)
    return TokenOut(token=issued.token, id=issued.row.id, expires_at=issued.row.expires_at)


@router.get("/users/{user_id}/tokens", response_model=list[TokenInfoOut], responses=ERROR_RESPONSES)
def list_tokens(user_id: Ref, ctx: Ctx, me: Me) -> list[TokenInfoOut]:
    """A user's tokens: live, expired and revoked (never their values)."""
    return [TokenInfoOut.model_validate(t) for t in tokens.list_tokens(ctx, me, user_id)]


@router.post("/tokens/{token_id}/revoke", response_model=TokenInfoOut, responses=ERROR_RESPONSES)
def revoke_token(token_id: Ref, ctx: Ctx, me: Me, body: ReasonIn | None = None) -> TokenInfoOut:
    """Revoke a token; the next request that presents it is refused."""
    row = tokens.revoke(ctx, me, token_id, body.reason if body else "")
    return TokenInfoOut.model_validate(row)


@router.post(
    "/nodes/{node_id}/maintenance",
    status_code=201,
    response_model=MaintenanceOut,
    responses=ERROR_RESPONSES,
)
def plan_maintenance(node_id: Ref, body: MaintenanceCreate, ctx: Ctx, me: Me) -> MaintenanceOut:
    """Operator: plan a node's maintenance; the calendar will not sell its GPUs meanwhile."""
    window = inventory.add_maintenance(ctx, me, node_id, body.start, body.end, body.reason)
    return MaintenanceOut.model_validate(window)


@router.get("/audit", response_model=list[AuditOut], responses=ERROR_RESPONSES)
def audit_trail(
    ctx: Ctx,
    me: Me,
    subject_type: Annotated[Ref | None, Query()] = None,
    subject_id: Annotated[Ref | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[AuditOut]:
    """Operator staff: who did what to which record, before and after, and why."""
    rows = audit.list_records(
        ctx, me, subject_type=subject_type, subject_id=subject_id, limit=limit
    )
    return [AuditOut.model_validate(r) for r in rows]
