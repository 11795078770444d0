"""Tenants, users and API tokens; authentication of a bearer token into a Principal.

Tokens are ``glt_`` + 40 random hex characters. Only their SHA-256 is stored, so a leaked
database does not leak credentials; the token is returned once, when issued. A token is
looked up by its hash (a unique index), so authentication is one indexed read.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from gpulease.domain.access import Principal, Role
from gpulease.domain.errors import Conflict, InvalidRequest, Unauthenticated
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AccessRecord, ApiToken, Tenant, User
from gpulease.services import audit
from gpulease.services.context import ServiceContext, new_id

TOKEN_PREFIX = "glt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_tenant(
    ctx: ServiceContext, actor: Principal, *, name: str, country: str, kind: str
) -> Tenant:
    actor.require(Role.OPERATOR_ADMIN, action="creating a tenant")
    if len(country) != 2 or not country.isalpha():
        raise InvalidRequest("country must be an ISO 3166 alpha-2 code", field="country")
    now = ctx.now()
    tenant = Tenant(
        id=new_id("tenant"), name=name, country=country.upper(), kind=kind, created_at=now
    )
    with ctx.db.transaction() as tx:
        tx.add(tenant)
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="tenant.create",
            subject_type="tenant",
            subject_id=tenant.id,
            after=audit.fields_of(tenant, ("name", "country", "kind")),
        )
    return tenant


def list_tenants(ctx: ServiceContext, actor: Principal) -> list[Tenant]:
    """Operators see every tenant; a tenant's users see their own."""
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(Tenant).order_by(Tenant.name)
        if not actor.is_operator:
            query = query.where(Tenant.id == actor.tenant_id)
        return tx.all(query)


def create_user(
    ctx: ServiceContext,
    actor: Principal,
    *,
    name: str,
    email: str,
    role: Role,
    tenant_id: str | None,
) -> tuple[User, str]:
    """Create a user and its first token; return both (the token is shown only now)."""
    if role.is_operator:
        actor.require(Role.OPERATOR_ADMIN, action="creating operator staff")
    else:
        actor.require(Role.OPERATOR_ADMIN, Role.TENANT_ADMIN, action="creating a user")
    Principal("new", role, tenant_id)  # validates role/tenant consistency
    if tenant_id is not None:
        actor.check_visible(tenant_id, "tenant", tenant_id)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        if tenant_id is not None:
            tx.require(Tenant, tenant_id, "tenant")
        clash = tx.first(tx.select(User).where(User.email == email))
        if clash is not None:
            raise Conflict(f"a user with email {email!r} already exists", field="email")
        user = User(
            id=new_id("user"),
            tenant_id=tenant_id,
            name=name,
            email=email,
            role=role.value,
            created_at=now,
        )
        tx.add(user)
        tx.flush()
        token = _issue(tx, user, now, actor.user_id)
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="user.create",
            subject_type="user",
            subject_id=user.id,
            after=audit.fields_of(user, ("name", "email", "role", "tenant_id")),
        )
    return user, token


def bootstrap_operator(ctx: ServiceContext, *, name: str, email: str) -> tuple[User, str]:
    """Create the first operator-admin of an empty installation (refused once users exist)."""
    now = ctx.now()
    with ctx.db.transaction() as tx:
        tx.lock("bootstrap-operator")  # two first starts at once make one operator, not two
        if tx.first(tx.select(User)) is not None:
            raise Conflict("this installation already has users; ask an operator-admin")
        user = User(
            id=new_id("user"),
            tenant_id=None,
            name=name,
            email=email,
            role=Role.OPERATOR_ADMIN.value,
            created_at=now,
        )
        tx.add(user)
        tx.flush()
        token = _issue(tx, user, now, user.id)
        audit.record(
            tx,
            at=now,
            actor="bootstrap",
            action="user.create",
            subject_type="user",
            subject_id=user.id,
            after=audit.fields_of(user, ("name", "email", "role")),
            reason="first operator of a new installation",
        )
    return user, token


def principal_of(user: User) -> Principal:
    return Principal(user.id, Role(user.role), user.tenant_id)


def issue_token(ctx: ServiceContext, actor: Principal, user_id: str) -> str:
    now = ctx.now()
    with ctx.db.transaction() as tx:
        user = tx.require(User, user_id, "user")
        if user.tenant_id is not None:
            actor.check_visible(user.tenant_id, "user", user_id)
        if actor.user_id != user_id:
            actor.require(Role.OPERATOR_ADMIN, Role.TENANT_ADMIN, action="issuing a token")
        return _issue(tx, user, now, actor.user_id)


def authenticate(ctx: ServiceContext, token: str | None) -> Principal:
    if not token:
        raise Unauthenticated("missing bearer token; send 'Authorization: Bearer glt_...'")
    with ctx.db.transaction(write=False) as tx:
        row = tx.first(tx.select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("invalid or revoked token")
        user = tx.require(User, row.user_id, "user")
        return Principal(user.id, Role(user.role), user.tenant_id)


ACCESS_NOTE_INTERVAL_S = 60.0


def note_access(ctx: ServiceContext, principal: Principal, ip: str) -> None:
    """Record that ``principal`` reached the API from ``ip`` (customer identification rules
    ask for the IP addresses used and when). Requests are counted in the process and written
    at most once a minute per user and address, so the hot path rarely writes; the row's
    ``last_seen`` and ``requests`` lag by at most a minute of this process's traffic."""
    now = ctx.now()
    key = f"access:{principal.user_id}:{ip}"
    found = ctx.cache.get(key)
    last, pending = found if isinstance(found, tuple) else (None, 0)
    pending += 1
    if isinstance(last, datetime) and (now - last).total_seconds() < ACCESS_NOTE_INTERVAL_S:
        ctx.cache[key] = (last, pending)
        return
    ctx.cache[key] = (now, 0)
    with ctx.db.transaction() as tx:
        row = tx.first(
            tx.select(AccessRecord).where(
                AccessRecord.user_id == principal.user_id, AccessRecord.ip == ip
            )
        )
        if row is None:
            tx.add(
                AccessRecord(
                    user_id=principal.user_id,
                    tenant_id=principal.tenant_id,
                    ip=ip,
                    first_seen=now,
                    last_seen=now,
                    requests=pending,
                )
            )
        else:
            row.last_seen = now
            row.requests += pending


def _issue(tx: Tx, user: User, now: datetime, actor: str) -> str:
    token = TOKEN_PREFIX + secrets.token_hex(20)
    row = ApiToken(
        id=new_id("token"),
        user_id=user.id,
        token_hash=hash_token(token),
        prefix=token[:8],
        created_at=now,
    )
    tx.add(row)
    audit.record(
        tx,
        at=now,
        actor=actor,
        action="token.issue",
        subject_type="user",
        subject_id=user.id,
        after={"token_id": row.id, "prefix": row.prefix},
    )
    return token
