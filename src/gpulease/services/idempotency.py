"""``Idempotency-Key``: a retried create returns the first result instead of a second record.

Design. The key is scoped to the user. The record of a key (its request fingerprint and the
id it created) is inserted in the *same transaction* as the record it created, so either
both exist or neither does. Two concurrent requests with one key race on the unique index
``(user_id, key)``: the loser's transaction rolls back whole, and its retry finds the
winner's record and returns the winner's id. A key reused with a different request
(another fingerprint) is refused with ``idempotency_mismatch``. Failures are not
remembered: retrying a refused request runs it again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from gpulease.domain.access import Principal
from gpulease.domain.errors import IdempotencyMismatch, InvalidRequest
from gpulease.persistence.db import DuplicateRecord, Tx
from gpulease.persistence.tables import IdempotencyRecord
from gpulease.services.context import ServiceContext

KEY_MAX = 200  # characters of an Idempotency-Key


def key_fits(key: str) -> bool:
    """Whether ``key`` is an ``Idempotency-Key`` :meth:`Idempotent.of` accepts."""
    return 1 <= len(key) <= KEY_MAX


class Identified(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=Identified)


@dataclass(frozen=True, slots=True)
class Idempotent:
    key: str
    fingerprint: str

    @classmethod
    def of(cls, key: str | None, operation: str, payload: Any) -> Idempotent | None:
        if key is None:
            return None
        if not key_fits(key):
            raise InvalidRequest(f"Idempotency-Key must be 1 to {KEY_MAX} characters", field="key")
        body = json.dumps([operation, payload], sort_keys=True, default=str)
        return cls(key, hashlib.sha256(body.encode()).hexdigest())


def replayed(
    idem: Idempotent, fingerprint: str | None, response: dict[str, Any] | None
) -> str | None:
    """The id an earlier request with this key created (None: the key is new), read by the
    caller in its own transaction; a different request under the key is refused."""
    if fingerprint is None:
        return None
    if fingerprint != idem.fingerprint:
        raise IdempotencyMismatch(
            f"Idempotency-Key {idem.key!r} was used for a different request", key=idem.key
        )
    return str((response or {})["id"])


def remember(tx: Tx, user_id: str, idem: Idempotent, record_id: str, at: datetime) -> None:
    """Record in ``tx`` that ``idem`` created ``record_id`` (commits with the record)."""
    tx.add(record_of(user_id, idem, record_id, at))


def record_of(user_id: str, idem: Idempotent, record_id: str, at: datetime) -> IdempotencyRecord:
    """The row saying ``idem`` created ``record_id``, for the caller to insert with it."""
    return IdempotencyRecord(**record_values(user_id, idem, record_id, at))


def record_values(user_id: str, idem: Idempotent, record_id: str, at: datetime) -> dict[str, Any]:
    """:func:`record_of`'s column values (a caller that inserts without the ORM)."""
    return {
        "user_id": user_id,
        "key": idem.key,
        "fingerprint": idem.fingerprint,
        "status_code": 201,
        "response": {"id": record_id},
        "created_at": at,
    }


def once(
    ctx: ServiceContext,
    actor: Principal,
    idem: Idempotent | None,
    create: Callable[[Tx], R],
    load: Callable[[Tx, str], R],
) -> R:
    """Run ``create`` (which returns the new record) at most once per key; a replay returns
    ``load(tx, id)`` of the record the first run created."""
    if idem is None:
        with ctx.db.transaction() as tx:
            return create(tx)
    for attempt in range(2):
        try:
            with ctx.db.transaction() as tx:
                found = tx.first(
                    tx.select(IdempotencyRecord).where(
                        IdempotencyRecord.user_id == actor.user_id,
                        IdempotencyRecord.key == idem.key,
                    )
                )
                if found is not None:
                    earlier = replayed(idem, found.fingerprint, found.response)
                    assert earlier is not None
                    return load(tx, earlier)
                record = create(tx)
                tx.flush()
                remember(tx, actor.user_id, idem, record.id, ctx.now())
                tx.flush()
                return record
        except DuplicateRecord:
            if attempt:
                raise
    raise AssertionError("unreachable")
