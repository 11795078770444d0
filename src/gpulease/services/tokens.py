"""API tokens: issue, list, revoke; the lifecycle every credential goes through.

Design. A token is ``glt_`` + 40 random hex characters; only its SHA-256 is stored, so a leaked
database leaks no credential, and the token itself is shown once, when issued. Every token
expires (``Settings.token_ttl_days`` at most; a shorter life may be asked for), may be revoked
at any time by whoever may manage its user (``Action.TOKEN_REVOKE``), and stops working at
once when its user is disabled (``identity.authenticate`` checks all three on every request;
a token it checked before is trusted from memory only while the authentication epoch, bumped
in the same transaction as every revocation, is unchanged: ``services.auth_cache``).

Invariants: a user holds at most ``Settings.max_tokens_per_user`` live tokens (unrevoked and
unexpired), so a stolen token cannot mint an unbounded number of others; every issue and
revocation writes an audit record naming the token by id and prefix, never by value.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.persistence import auth as auth_store
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import ApiToken, User
from gpulease.services import audit
from gpulease.services.context import ServiceContext, new_id

TOKEN_PREFIX = "glt_"
LABEL_MAX = 100


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Issued:
    """A new token: the secret (shown once) and its record."""

    token: str
    row: ApiToken


@dataclass(frozen=True, slots=True)
class TokenView:
    """A token's record as a reader may see it: never its value or hash; who issued or
    revoked it is named as "the operator" to a tenant when it was operator staff."""

    id: str
    user_id: str
    prefix: str
    label: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str


def _views(tx: Tx, actor: Principal, rows: list[ApiToken]) -> list[TokenView]:
    staff: set[str] = set()
    if not actor.is_operator:
        staff = {u.id for u in tx.all(tx.select(User).where(User.tenant_id.is_(None)))}

    def shown(user_id: str) -> str:
        return "the operator" if user_id in staff else user_id

    return [
        TokenView(
            id=row.id,
            user_id=row.user_id,
            prefix=row.prefix,
            label=row.label,
            created_at=row.created_at,
            created_by=shown(row.created_by),
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            revoked_by=shown(row.revoked_by),
        )
        for row in rows
    ]


def _authorize(actor: Principal, action: Action, user: User, token_id: str | None = None) -> None:
    """A token action is an action on its user's record (a token out of sight: not found)."""
    record, kind = (token_id, "token") if token_id is not None else (user.id, "user")
    actor.authorize(action, tenant_id=user.tenant_id, owner_id=user.id, record_id=record, kind=kind)


def live(row: ApiToken, now: datetime) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def issue(
    ctx: ServiceContext,
    actor: Principal,
    user_id: str,
    *,
    label: str = "",
    ttl_days: int | None = None,
) -> Issued:
    """Issue another token for a user: yourself, or one you may manage."""
    actor.scope(Action.TOKEN_ISSUE)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        user = tx.require(User, user_id, "user", for_update=True)
        _authorize(actor, Action.TOKEN_ISSUE, user)
        if user.disabled_at is not None:
            raise Conflict(f"user {user_id} is disabled; enable it first", user_id=user_id)
        held = tx.all(tx.select(ApiToken).where(ApiToken.user_id == user.id))
        cap = ctx.settings.max_tokens_per_user
        if sum(live(t, now) for t in held) >= cap:
            raise Conflict(
                f"user {user_id} already holds {cap} live tokens; revoke one first "
                "(`gpulease tokens list` shows them)",
                user_id=user_id,
            )
        return _issue(ctx, tx, user, now, actor.user_id, label=label, ttl_days=ttl_days)


def list_tokens(ctx: ServiceContext, actor: Principal, user_id: str) -> list[TokenView]:
    """A user's tokens (live, expired and revoked), newest first; never their values."""
    with ctx.db.transaction(write=False) as tx:
        user = tx.require(User, user_id, "user")
        _authorize(actor, Action.TOKEN_READ, user)
        rows = tx.all(
            tx.select(ApiToken)
            .where(ApiToken.user_id == user_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id)
        )
        return _views(tx, actor, rows)


def revoke(ctx: ServiceContext, actor: Principal, token_id: str, reason: str = "") -> TokenView:
    """Revoke a token at once; the next request that presents it is refused."""
    actor.scope(Action.TOKEN_REVOKE)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        row = tx.require(ApiToken, token_id, "token", for_update=True)
        user = tx.require(User, row.user_id, "user")
        _authorize(actor, Action.TOKEN_REVOKE, user, token_id=token_id)
        if row.revoked_at is not None:
            raise Conflict(
                f"token {token_id} was already revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC; "
                "nothing to do",
                token_id=token_id,
            )
        row.revoked_at = now
        row.revoked_by = actor.user_id
        auth_store.bump_epoch(tx)  # cached credentials everywhere are re-read at once
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="token.revoke",
            subject_type="user",
            subject_id=user.id,
            after={"token_id": row.id, "prefix": row.prefix},
            reason=reason or "revoked",
        )
        tx.flush()
        return _views(tx, actor, [row])[0]


def _issue(
    ctx: ServiceContext,
    tx: Tx,
    user: User,
    now: datetime,
    actor: str,
    *,
    label: str = "",
    ttl_days: int | None = None,
) -> Issued:
    """Write a new token for ``user`` in ``tx`` (callers have authorized it)."""
    longest = ctx.settings.token_ttl_days
    if ttl_days is not None and not 1 <= ttl_days <= longest:
        raise InvalidRequest(
            f"a token lives 1 to {longest} days (the operator's setting)", field="ttl_days"
        )
    if len(label) > LABEL_MAX or "\x00" in label:
        raise InvalidRequest(f"a label is at most {LABEL_MAX} printable characters", field="label")
    token = TOKEN_PREFIX + secrets.token_hex(20)
    expires_at = now + timedelta(days=ttl_days or longest)
    row = ApiToken(
        id=new_id("token"),
        user_id=user.id,
        token_hash=hash_token(token),
        prefix=token[:8],
        created_at=now,
        expires_at=expires_at,
        label=label,
        created_by=actor,
        revoked_by="",
    )
    tx.add(row)
    audit.record(
        tx,
        at=now,
        actor=actor,
        action="token.issue",
        subject_type="user",
        subject_id=user.id,
        after={"token_id": row.id, "prefix": row.prefix, "expires_at": expires_at.isoformat()},
    )
    return Issued(token, row)
