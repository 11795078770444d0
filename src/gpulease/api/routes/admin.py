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
    TenantCreate,
    TenantOut,
    TokenOut,
    UserCreate,
    UserCreated,
    UserOut,
)
from gpulease.domain.access import Role
from gpulease.services import audit, identity, inventory

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


@router.post(
    "/users/{user_id}/tokens", status_code=201, response_model=TokenOut, responses=ERROR_RESPONSES
)
def issue_token(user_id: Ref, ctx: Ctx, me: Me) -> TokenOut:
    """Issue another token for a user (yourself, or as an admin)."""
    return TokenOut(token=identity.issue_token(ctx, me, user_id))


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
