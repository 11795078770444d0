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
from typing import Any

from gpulease.persistence.db import Tx
from gpulease.persistence.tables import AuditRecord, Base


def fields_of(row: Base, names: Iterable[str]) -> dict[str, Any]:
    """A JSON-safe picture of some of a row's fields."""
    return {name: _json_safe(getattr(row, name)) for name in names}


def record(
    tx: Tx,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
) -> None:
    tx.add(
        AuditRecord(
            at=at,
            actor=actor,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            before=before,
            after=after,
            reason=reason[:1000],
        )
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value
