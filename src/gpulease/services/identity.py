"""Tenants and users; authentication of a bearer token into a Principal.

Tokens themselves (issue, list, revoke, expiry) live in :mod:`gpulease.services.tokens`. A
token is looked up by its hash (a unique index) with its user in one read; it succeeds only
for a token that is unrevoked and unexpired, of a user that is not disabled. A checked token
is kept in the process (``services.auth_cache``) and re-used while the authentication epoch
is unchanged; disabling or enabling a user bumps the epoch in the same transaction, so the
change holds from the very next request in every process.

Who may create, read, disable users is :data:`gpulease.domain.access.PERMISSIONS`; operator
staff are managed only by operator-admins. An email address is unique across the whole
installation, and a clash is reported without saying whose the address is.
"""

from __future__ import annotations

from datetime import datetime

from gpulease.compliance.countries import country_code
from gpulease.domain.access import Action, Principal, Role, Scope
from gpulease.domain.errors import Conflict, Denied, InvalidRequest, Unauthenticated
from gpulease.persistence import auth as auth_store
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AccessRecord, ApiToken, Tenant, User
from gpulease.services import audit, auth_cache, tokens
from gpulease.services.auth_cache import Credential
from gpulease.services.context import ServiceContext, new_id

USER_AUDIT_FIELDS = ("name", "email", "role", "tenant_id", "created_by")
BOOTSTRAP = "bootstrap"  # the creator recorded for the first operator of an installation
# One answer for a token this server never issued (the site re-initialised, another server)
# and one it revoked, so the answer never says whether a token existed; ``details.reason``
# lets a client say what to do with a saved login.
INVALID_TOKEN = (
    "this server does not know this token, or it was revoked (the site may have been "
    "re-initialised since it was issued): log in again with a token your admin issues "
    "(`gpulease login --url URL --token TOKEN`)"
)
UNKNOWN_TOKEN = "unknown_token"
TOKEN_MAX = 100  # a bearer longer than any token we issue is refused unread


def create_tenant(
    ctx: ServiceContext, actor: Principal, *, name: str, country: str, kind: str
) -> Tenant:
    actor.scope(Action.TENANT_CREATE)
    code = country_code(country, field="country")  # a name or alpha-3 is stored as alpha-2
    now = ctx.now()
    tenant = Tenant(id=new_id("tenant"), name=name, country=code, kind=kind, created_at=now)
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
    # staff belong to no tenant: whoever asks for a staff role is authorized for that
    target = None if role.is_operator else tenant_id
    if target is not None:
        actor.check_visible(target, "tenant", target)
    actor.authorize(Action.USER_CREATE, tenant_id=target)
    Principal("new", role, tenant_id)  # validates role/tenant consistency
    now = ctx.now()
    with ctx.db.transaction() as tx:
        if tenant_id is not None:
            tx.require(Tenant, tenant_id, "tenant")
        clash = tx.first(tx.select(User).where(User.email == email))
        if clash is not None:
            raise Conflict(
                f"the email address {email!r} is already in use; choose another", field="email"
            )
        user = User(
            id=new_id("user"),
            tenant_id=tenant_id,
            name=name,
            email=email,
            role=role.value,
            created_at=now,
            disabled_reason="",
            disabled_by="",
            created_by=actor.user_id,
        )
        tx.add(user)
        tx.flush()
        issued = tokens._issue(ctx, tx, user, now, actor.user_id, label="first token")
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="user.create",
            subject_type="user",
            subject_id=user.id,
            after=audit.fields_of(user, USER_AUDIT_FIELDS),
        )
    return user, issued.token


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
            disabled_reason="",
            disabled_by="",
            created_by=BOOTSTRAP,
        )
        tx.add(user)
        tx.flush()
        issued = tokens._issue(ctx, tx, user, now, user.id, label="first token")
        audit.record(
            tx,
            at=now,
            actor=BOOTSTRAP,
            action="user.create",
            subject_type="user",
            subject_id=user.id,
            after=audit.fields_of(user, ("name", "email", "role")),
            reason="first operator of a new installation",
        )
    return user, issued.token


def principal_of(user: User) -> Principal:
    return Principal(user.id, Role(user.role), user.tenant_id)


def list_users(
    ctx: ServiceContext, actor: Principal, *, tenant_id: str | None = None
) -> list[User]:
    """The users this principal may read: staff all (or one tenant's), a tenant-admin its
    tenant's, a member itself."""
    scope = actor.scope(Action.USER_READ)
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(User).order_by(User.tenant_id, User.name, User.id)
        if scope is Scope.ALL:
            if tenant_id is not None:
                query = query.where(User.tenant_id == tenant_id)
        elif scope is Scope.TENANT:
            if tenant_id is not None:
                actor.check_visible(tenant_id, "tenant", tenant_id)
            query = query.where(User.tenant_id == actor.tenant_id)
        else:
            query = query.where(User.id == actor.user_id)
        return tx.all(query)


def creators_shown(ctx: ServiceContext, actor: Principal, users: list[User]) -> dict[str, str]:
    """Who created each user, as ``actor`` may be told: a user id, ``"bootstrap"`` for the
    first operator, or "the operator" to a tenant user when operator staff created it (staff
    ids stay inside, as :class:`~gpulease.services.tokens.TokenView` names them)."""
    if actor.is_operator:
        return {u.id: u.created_by for u in users}
    creator_ids = sorted({u.created_by for u in users if u.created_by})
    with ctx.db.transaction(write=False) as tx:
        tenant_of = {
            u.id: u.tenant_id for u in tx.all(tx.select(User).where(User.id.in_(creator_ids)))
        }

    def shown(creator: str) -> str:
        if not creator or tenant_of.get(creator) == actor.tenant_id:
            return creator
        return "the operator"

    return {u.id: shown(u.created_by) for u in users}


def get_user(ctx: ServiceContext, actor: Principal, user_id: str) -> User:
    with ctx.db.transaction(write=False) as tx:
        user = tx.require(User, user_id, "user")
    actor.authorize(Action.USER_READ, tenant_id=user.tenant_id, owner_id=user.id, record_id=user_id)
    return user


def set_disabled(
    ctx: ServiceContext, actor: Principal, user_id: str, *, disabled: bool, reason: str
) -> User:
    """Disable a user or enable it again.

    Disabling revokes every live token of the user (a user is often disabled because a token
    leaked: enabling it again must not revive that token; it gets new ones). A user disabled
    by operator staff is enabled again only by operator staff."""
    actor.scope(Action.USER_DISABLE)
    if not reason.strip():
        raise InvalidRequest("say why (the change is recorded with its reason)", field="reason")
    if disabled and user_id == actor.user_id:
        raise InvalidRequest("you cannot disable yourself; ask another admin", field="user_id")
    now = ctx.now()
    with ctx.db.transaction() as tx:
        user = tx.require(User, user_id, "user", for_update=True)
        actor.authorize(Action.USER_DISABLE, tenant_id=user.tenant_id, record_id=user_id)
        if (user.disabled_at is not None) == disabled:
            state = "disabled" if disabled else "enabled"
            raise Conflict(f"user {user_id} is already {state}; nothing to do", user_id=user_id)
        if not disabled and not actor.is_operator:
            disabler = tx.get(User, user.disabled_by) if user.disabled_by else None
            if disabler is None or disabler.tenant_id != actor.tenant_id:
                raise Denied(
                    f"user {user_id} was disabled by the operator; ask the operator to enable it"
                )
        revoked: list[str] = []
        if disabled:
            for row in tx.all(tx.select(ApiToken).where(ApiToken.user_id == user.id)):
                if tokens.live(row, now):
                    row.revoked_at, row.revoked_by = now, actor.user_id
                    revoked.append(row.id)
        auth_store.bump_epoch(tx)  # every process re-reads its cached tokens at once
        was = None if user.disabled_at is None else user.disabled_at.isoformat()
        user.disabled_at = now if disabled else None
        user.disabled_reason = reason.strip()[:500] if disabled else ""
        user.disabled_by = actor.user_id if disabled else ""
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="user.disable" if disabled else "user.enable",
            subject_type="user",
            subject_id=user.id,
            before={"disabled_at": was},
            after={
                "disabled_at": None if user.disabled_at is None else now.isoformat(),
                "tokens_revoked": revoked,
            },
            reason=reason.strip(),
        )
        return user


def authenticate(ctx: ServiceContext, token: str | None) -> Principal:
    """The principal of a bearer token, or Unauthenticated: one indexed read of the
    authentication epoch when the token was checked recently, else one read of the token and
    its user (``services.auth_cache`` gives the rules)."""
    return check(ctx, token).principal


def check(ctx: ServiceContext, token: str | None) -> Credential:
    """:func:`authenticate`, keeping the checked :class:`Credential`."""
    token_hash = _hash_of(token)
    cache = auth_cache.of(ctx)
    now = ctx.now()
    known = cache.peek(token_hash)
    if known is not None and cache.valid(known, auth_store.current_epoch(ctx.db), now):
        return known
    with ctx.db.transaction(write=False) as tx:
        return _load(ctx, tx, token_hash, now)


def recall(ctx: ServiceContext, token: str | None) -> Credential:
    """The token's credential as this process last checked it, read no database for a token
    checked before: a work item that calls :func:`confirm` inside its own transaction (a job
    submission) pays for authentication with no statement of its own. A token not known here
    is checked now (:func:`check`)."""
    token_hash = _hash_of(token)
    known = auth_cache.of(ctx).peek(token_hash)
    if known is not None and not known.expired(ctx.now()):
        return known
    return check(ctx, token)


def confirm(ctx: ServiceContext, tx: Tx, credential: Credential, epoch: int) -> Credential:
    """Inside ``tx``: ``credential`` still holds at ``epoch`` (read in ``tx``), or its token
    read again in ``tx`` (Unauthenticated if revoked, expired or its user disabled since)."""
    now = ctx.now()
    if auth_cache.of(ctx).valid(credential, epoch, now):
        return credential
    return _load(ctx, tx, credential.token_hash, now)


def _hash_of(token: str | None) -> str:
    if not token:
        raise Unauthenticated("missing bearer token; send 'Authorization: Bearer glt_...'")
    if len(token) > TOKEN_MAX:
        raise Unauthenticated(INVALID_TOKEN, reason=UNKNOWN_TOKEN)
    return tokens.hash_token(token)


def _load(ctx: ServiceContext, tx: Tx, token_hash: str, now: datetime) -> Credential:
    """Read the token and its user in ``tx``; keep the credential if it authenticates."""
    found = auth_store.token_facts(tx, token_hash)
    if found is None:
        raise Unauthenticated(INVALID_TOKEN, reason=UNKNOWN_TOKEN)
    if found.revoked:  # first: a revoked token answers exactly like one never issued, even
        # when its user was disabled since (a leaked token must not confirm its user exists)
        raise Unauthenticated(INVALID_TOKEN, reason=UNKNOWN_TOKEN)
    if found.disabled:
        raise Unauthenticated("this user is disabled; ask your admin")
    if found.expires_at is not None and found.expires_at <= now:
        raise Unauthenticated(
            f"this token expired at {found.expires_at:%Y-%m-%d %H:%M} UTC; "
            "ask your admin for a new one (`gpulease tokens issue`)"
        )
    credential = Credential(
        token_hash=token_hash,
        principal=Principal(found.user_id, Role(found.role), found.tenant_id),
        epoch=found.epoch,
        expires_at=found.expires_at,
    )
    auth_cache.of(ctx).put(credential)
    return credential


ACCESS_NOTE_INTERVAL_S = 60.0


def note_access_in_memory(ctx: ServiceContext, principal: Principal, ip: str) -> bool:
    """Count one request of ``principal`` from ``ip`` in the process if its record need not
    be written now (written less than ``ACCESS_NOTE_INTERVAL_S`` ago); False: nothing was
    counted, :func:`note_access` must run (it writes). Reads no database."""
    now = ctx.now()
    key = f"access:{principal.user_id}:{ip}"
    found = ctx.cache.get(key)
    last, pending = found if isinstance(found, tuple) else (None, 0)
    if isinstance(last, datetime) and (now - last).total_seconds() < ACCESS_NOTE_INTERVAL_S:
        ctx.cache[key] = (last, pending + 1)
        return True
    return False


def note_access(ctx: ServiceContext, principal: Principal, ip: str) -> None:
    """Record that ``principal`` reached the API from ``ip`` (customer identification rules
    ask for the IP addresses used and when). Requests are counted in the process and written
    at most once a minute per user and address, so the hot path rarely writes; the row's
    ``last_seen`` and ``requests`` lag by at most a minute of this process's traffic."""
    if note_access_in_memory(ctx, principal, ip):
        return
    now = ctx.now()
    key = f"access:{principal.user_id}:{ip}"
    found = ctx.cache.get(key)
    _last, pending = found if isinstance(found, tuple) else (None, 0)
    pending += 1
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
