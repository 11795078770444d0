"""The authentication epoch and the one-statement reads of the request hot path.

Design. ``auth_epoch`` holds one counter. Every change that can withdraw a credential (a
token revoked, a user disabled or enabled, a role changed) calls :func:`bump_epoch` in its
own transaction; the ``UPDATE`` locks the row until commit, so bumps are serialised and
commit in epoch order. API processes keep checked tokens in memory and trust an entry only
while the epoch they read now equals the epoch they read with the entry: a revocation is seen
by the very next request in every process, with one indexed read instead of two.

The reads here are each one statement:

* :func:`current_epoch`: the counter alone, outside any transaction (PostgreSQL: autocommit,
  one round trip);
* :func:`token_facts`: a token, its user and the epoch, by the token's hash;
* :func:`submission_facts`: the epoch, the tenant's row (its standing) and the user's
  ``Idempotency-Key`` record if any, for a job submission's single transaction.

Invariants: a missing counter row (a new database, or one emptied by ``TRUNCATE``) reads as
epoch 0 and the first bump writes it (an upsert, so two first bumps do not clash); the epoch
read with a token's row comes from the same statement, so a cached entry never pairs a row
with a later epoch than the one it was read at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from gpulease.persistence.db import Database, Tx
from gpulease.persistence.tables import ApiToken, AuthEpoch, IdempotencyRecord, Tenant, User

EPOCH_ROW = 1
UNKNOWN_EPOCH = -1  # matches no cached credential: it is read again


def _epoch_column() -> ColumnElement[int]:
    found = select(AuthEpoch.epoch).where(AuthEpoch.id == EPOCH_ROW).scalar_subquery()
    return func.coalesce(found, 0)


def bump_epoch(tx: Tx) -> None:
    """Advance the epoch in ``tx``: every cached credential is re-read after commit. One
    upsert (the row is written by the first bump), which holds the row until commit."""
    dialect = pg_insert if not tx.db.is_sqlite else sqlite_insert
    statement = dialect(AuthEpoch).values(id=EPOCH_ROW, epoch=1)
    tx.session.execute(
        statement.on_conflict_do_update(
            index_elements=[AuthEpoch.id], set_={"epoch": AuthEpoch.epoch + 1}
        )
    )


def current_epoch(db: Database) -> int:
    """The epoch now, read in one statement outside any transaction."""
    return int(db.scalar_now(_EPOCH) or 0)


@dataclass(frozen=True, slots=True)
class TokenFacts:
    user_id: str
    role: str
    tenant_id: str | None
    disabled: bool
    revoked: bool
    expires_at: datetime | None
    epoch: int


def token_facts(tx: Tx, token_hash: str) -> TokenFacts | None:
    """The token with this hash, its user and the epoch (None: no such token)."""
    row = tx.session.execute(_TOKEN, {"token_hash": token_hash}).first()
    if row is None:
        return None
    user_id, role, tenant_id, disabled_at, revoked_at, expires_at, epoch = row
    return TokenFacts(
        user_id=user_id,
        role=role,
        tenant_id=tenant_id,
        disabled=disabled_at is not None,
        revoked=revoked_at is not None,
        expires_at=expires_at,
        epoch=int(epoch),
    )


@dataclass(frozen=True, slots=True)
class SubmissionFacts:
    epoch: int
    tenant: Tenant
    replay_fingerprint: str | None  # an earlier request with the same Idempotency-Key
    replay_response: dict[str, Any] | None


def submission_facts(
    tx: Tx, tenant_id: str, user_id: str, idempotency_key: str | None
) -> SubmissionFacts | None:
    """What a submission reads before it writes, in one statement (None: no such tenant)."""
    if idempotency_key is None:
        query, params = _FACTS, {"tenant_id": tenant_id}
    else:
        query = _FACTS_KEYED
        params = {"tenant_id": tenant_id, "user_id": user_id, "key": idempotency_key}
    found = tx.session.execute(query, params).first()
    if found is None:
        return None
    values = found._asdict()
    epoch = values.pop("epoch")
    fingerprint = values.pop("fingerprint", None)
    response = values.pop("response", None)
    # A plain statement, so the tenant comes back as columns: loading it as an ORM entity
    # (identity map, instance state) cost a submission more than the rest of its read. The
    # row is read-only here: a transient Tenant built from its columns, never flushed.
    return SubmissionFacts(int(epoch), Tenant(**values), fingerprint, response)


# The statements, built once (executed with parameters; SQLAlchemy caches their compiled form).
_EPOCH = select(_epoch_column())
_TOKEN = (
    select(
        ApiToken.user_id,
        User.role,
        User.tenant_id,
        User.disabled_at,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        _epoch_column(),
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)
_TENANTS = Tenant.__table__
_KEYS = IdempotencyRecord.__table__
assert isinstance(_TENANTS, Table)
assert isinstance(_KEYS, Table)
# Table columns, not mapped attributes: Core statements, whose rows skip the ORM's loading.
_FACTS = select(_epoch_column().label("epoch"), *_TENANTS.c).where(
    _TENANTS.c.id == bindparam("tenant_id")
)
_FACTS_KEYED = (
    _FACTS.add_columns(_KEYS.c.fingerprint, _KEYS.c.response)
    .select_from(_TENANTS)
    .outerjoin(
        _KEYS,
        and_(_KEYS.c.user_id == bindparam("user_id"), _KEYS.c.key == bindparam("key")),
    )
)
