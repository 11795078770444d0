"""Append-only audit records, written in the same transaction as the change they describe.

Each record says who (actor: a user id or ``scheduler``), did what (action), to which
subject, the subject's fields before and after, why, and when. Services call
:func:`record` for every state change; nothing updates or deletes an audit row.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Required, TypedDict, Unpack

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AuditRecord, Base
from gpulease.services.context import ServiceContext

REASON_MAX = 500  # the width of the state_reason / wait_reason / end_reason columns


def clip(text: str, limit: int = REASON_MAX) -> str:
    """A reason cut to fit its column (PostgreSQL refuses longer text; the audit record keeps
    up to 1,000 characters of it)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fields_of(row: Base, names: Iterable[str]) -> dict[str, Any]:
    """A JSON-safe picture of some of a row's fields."""
    return {name: _json_safe(getattr(row, name)) for name in names}


class AuditFields(TypedDict, total=False):
    """What an audit record says; ``before``, ``after`` and ``reason`` may be left out."""

    at: Required[datetime]
    actor: Required[str]
    action: Required[str]
    subject_type: Required[str]
    subject_id: Required[str]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str


def record(tx: Tx, **fields: Unpack[AuditFields]) -> None:
    tx.add(entry(**fields))


def entry(**fields: Unpack[AuditFields]) -> AuditRecord:
    """An audit row not yet written: the caller inserts it in the change's transaction
    (``Tx.insert_new``, with the rows it describes)."""
    return AuditRecord(**values(**fields))


def values(**fields: Unpack[AuditFields]) -> dict[str, Any]:
    """An audit row's column values, for a caller that inserts many set at a time
    (``persistence.bulk.RowBatch``): the same fields :func:`entry` gives."""
    return {
        "before": None,
        "after": None,
        **fields,
        "reason": fields.get("reason", "")[:1000],
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def list_records(
    ctx: ServiceContext,
    actor: Principal,
    *,
    subject_type: str | None = None,
    subject_id: str | None = None,
    limit: int = 500,
    by: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
) -> list[AuditRecord]:
    """The trail, newest first: operator staff only (it spans every tenant). Filters: the
    record (``subject_type``, ``subject_id``), who (``by``: an actor), ``since`` a moment;
    paged by ``before_id`` (the next page starts below the last id of this one)."""
    actor.scope(Action.AUDIT_READ)
    if not 1 <= limit <= 10_000:
        raise InvalidRequest("limit must be between 1 and 10000", field="limit")
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if by is not None:
            query = query.where(AuditRecord.actor == by)
        if since is not None:
            query = query.where(AuditRecord.at >= since)
        if before_id is not None:
            query = query.where(AuditRecord.id < before_id)
        if subject_type is not None:
            query = query.where(AuditRecord.subject_type == subject_type)
        if subject_id is not None:
            query = query.where(AuditRecord.subject_id == subject_id)
        return tx.all(query)
