"""Tenants, users and tokens, node maintenance, and the audit trail.

Every id these routes take may also be a unique prefix of it or the record's name
(``services.lookup``: a tenant's name, a user's name or email, a node's serial), resolved
among the records the caller may see."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Query

from gpulease.api.constraints import Ref, ReportTime
from gpulease.api.deps import Ctx, Me
from gpulease.api.schemas import (
    ERROR_RESPONSES,
    AuditOut,
    MaintenanceCreate,
    MaintenanceOut,
    ReasonIn,
    TenantCreate,
    TenantOut,
    TenantSummaryOut,
    TokenCreate,
    TokenInfoOut,
    TokenOut,
    UserCreate,
    UserCreated,
    UserOut,
)
from gpulease.domain.access import Action, Role
from gpulease.domain.errors import NotFound
from gpulease.persistence.tables import User
from gpulease.services import audit, identity, inventory, tenant_summary, tokens
from gpulease.services.lookup import Kind, audit_subject, resolve, resolve_optional

router = APIRouter(tags=["administration"])


@router.post("/tenants", status_code=201, response_model=TenantOut, responses=ERROR_RESPONSES)
def create_tenant(body: TenantCreate, ctx: Ctx, me: Me) -> TenantOut:
    """Operator: register a client organisation."""
    tenant = identity.create_tenant(ctx, me, name=body.name, country=body.country, kind=body.kind)
    return TenantOut.model_validate(tenant)


def _summary_out(found: tenant_summary.TenantSummary) -> TenantSummaryOut:
    t = found.tenant
    return TenantSummaryOut(
        id=t.id,
        name=t.name,
        country=t.country,
        kind=t.kind,
        created_at=t.created_at,
        approval=t.approval,
        standing=found.standing,
        approval_expires_at=t.approval_expires_at,
        kyc_case_id=found.kyc_case_id,
        kyc_state=found.kyc_state,
        users=found.users,
    )


@router.get("/tenants", response_model=list[TenantSummaryOut], responses=ERROR_RESPONSES)
def list_tenants(ctx: Ctx, me: Me) -> list[TenantSummaryOut]:
    """The tenants you may see (staff: all; a tenant's users: their own), by name, with
    their standing and the state of their latest KYC case."""
    return [_summary_out(t) for t in tenant_summary.summaries(ctx, me)]


@router.get("/tenants/{tenant_id}", response_model=TenantSummaryOut, responses=ERROR_RESPONSES)
def show_tenant(tenant_id: Ref, ctx: Ctx, me: Me) -> TenantSummaryOut:
    """One tenant, named by its id, a unique prefix of it or its name."""
    tenant_id = resolve(ctx, me, Kind.TENANT, tenant_id, Action.TENANT_READ)
    (found,) = tenant_summary.summaries(ctx, me, tenant_id)
    return _summary_out(found)


@router.post("/users", status_code=201, response_model=UserCreated, responses=ERROR_RESPONSES)
def create_user(body: UserCreate, ctx: Ctx, me: Me) -> UserCreated:
    """Create a user and its first token (shown once). Tenant admins create their members."""
    tenant = resolve_optional(ctx, me, Kind.TENANT, body.tenant_id, Action.USER_CREATE)
    user, token = identity.create_user(
        ctx,
        me,
        name=body.name,
        email=body.email,
        role=Role(body.role),
        tenant_id=tenant if me.is_operator else (tenant or me.tenant_id),
    )
    return UserCreated(user=_user_out(ctx, me, [user])[0], token=token)


def _user_out(ctx: Ctx, me: Me, users: list[User]) -> list[UserOut]:
    creators = identity.creators_shown(ctx, me, users)
    return [
        UserOut.model_validate(u).model_copy(update={"created_by": creators[u.id]}) for u in users
    ]


@router.get("/users", response_model=list[UserOut], responses=ERROR_RESPONSES)
def list_users(ctx: Ctx, me: Me, tenant_id: Annotated[Ref | None, Query()] = None) -> list[UserOut]:
    """The users you may see: staff every user (or one tenant's), an admin its tenant's."""
    tenant = resolve_optional(ctx, me, Kind.TENANT, tenant_id, Action.USER_READ)
    return _user_out(ctx, me, identity.list_users(ctx, me, tenant_id=tenant))


@router.get("/users/{user_id}", response_model=UserOut, responses=ERROR_RESPONSES)
def show_user(user_id: Ref, ctx: Ctx, me: Me) -> UserOut:
    user_id = resolve(ctx, me, Kind.USER, user_id, Action.USER_READ)
    return _user_out(ctx, me, [identity.get_user(ctx, me, user_id)])[0]


@router.post("/users/{user_id}/disable", response_model=UserOut, responses=ERROR_RESPONSES)
def disable_user(user_id: Ref, body: ReasonIn, ctx: Ctx, me: Me) -> UserOut:
    """Disable a user: every token of it stops working at once (the record stays)."""
    user_id = resolve(ctx, me, Kind.USER, user_id, Action.USER_DISABLE)
    user = identity.set_disabled(ctx, me, user_id, disabled=True, reason=body.reason)
    return _user_out(ctx, me, [user])[0]


@router.post("/users/{user_id}/enable", response_model=UserOut, responses=ERROR_RESPONSES)
def enable_user(user_id: Ref, body: ReasonIn, ctx: Ctx, me: Me) -> UserOut:
    user_id = resolve(ctx, me, Kind.USER, user_id, Action.USER_DISABLE)
    user = identity.set_disabled(ctx, me, user_id, disabled=False, reason=body.reason)
    return _user_out(ctx, me, [user])[0]


@router.post(
    "/users/{user_id}/tokens", status_code=201, response_model=TokenOut, responses=ERROR_RESPONSES
)
def issue_token(user_id: Ref, ctx: Ctx, me: Me, body: TokenCreate | None = None) -> TokenOut:
    """Issue another token for a user (yourself, or one you manage); it expires."""
    wanted = body or TokenCreate()
    user_id = resolve(ctx, me, Kind.USER, user_id, Action.TOKEN_ISSUE)
    issued = tokens.issue(ctx, me, user_id, label=wanted.label, ttl_days=wanted.ttl_days)
    return TokenOut(token=issued.token, id=issued.row.id, expires_at=issued.row.expires_at)


@router.get("/users/{user_id}/tokens", response_model=list[TokenInfoOut], responses=ERROR_RESPONSES)
def list_tokens(user_id: Ref, ctx: Ctx, me: Me) -> list[TokenInfoOut]:
    """A user's tokens: live, expired and revoked (never their values)."""
    user_id = resolve(ctx, me, Kind.USER, user_id, Action.TOKEN_READ)
    return [TokenInfoOut.model_validate(t) for t in tokens.list_tokens(ctx, me, user_id)]


@router.post("/tokens/{token_id}/revoke", response_model=TokenInfoOut, responses=ERROR_RESPONSES)
def revoke_token(token_id: Ref, ctx: Ctx, me: Me, body: ReasonIn | None = None) -> TokenInfoOut:
    """Revoke a token; the next request that presents it is refused."""
    token_id = resolve(ctx, me, Kind.TOKEN, token_id, Action.TOKEN_REVOKE)
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
    node_id = resolve(ctx, me, Kind.NODE, node_id, Action.NODE_MAINTAIN)
    window = inventory.add_maintenance(ctx, me, node_id, body.start, body.end, body.reason)
    return MaintenanceOut.model_validate(window)


@router.get("/audit", response_model=list[AuditOut], responses=ERROR_RESPONSES)
def audit_trail(
    ctx: Ctx,
    me: Me,
    subject_type: Annotated[Ref | None, Query()] = None,
    subject_id: Annotated[
        Ref | None, Query(description="a record's id, or a unique prefix (job-3f9a1c)")
    ] = None,
    actor: Annotated[
        Ref | None,
        Query(description="who: a user's id, prefix, name or email, or 'scheduler'"),
    ] = None,
    since: Annotated[ReportTime | None, Query(description="ISO date-time (UTC if bare)")] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=2**62, description="the next page: below this record id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[AuditOut]:
    """Operator staff: who did what to which record, before and after, and why; newest
    first, paged with ``before_id`` (the last id of the page before)."""
    me.scope(Action.AUDIT_READ)  # staff only: nothing is looked up for anyone else
    if subject_id is not None:
        subject_id = audit_subject(ctx, me, subject_id)
    rows = audit.list_records(
        ctx,
        me,
        subject_type=subject_type,
        subject_id=subject_id,
        limit=limit,
        by=_actor(ctx, me, actor),
        since=since if since is None or since.tzinfo else since.replace(tzinfo=UTC),
        before_id=before_id,
    )
    return [AuditOut.model_validate(r) for r in rows]


def _actor(ctx: Ctx, me: Me, ref: str | None) -> str | None:
    """An audit actor: a user named any way ``lookup`` takes, else as typed (``scheduler``,
    a site's scheduler, a user since removed)."""
    if ref is None:
        return None
    try:
        return resolve(ctx, me, Kind.USER, ref)
    except NotFound:
        return ref.strip()
