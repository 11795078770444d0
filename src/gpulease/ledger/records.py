"""The ledger record of an audit row: the one JSON form its leaf hash is taken over.

A ledger leaf is ``SHA-256(0x00 || RFC 8785 bytes of the record)``. The record is built
from the audit row's fields by :func:`audit_record`, at append time from the values being
inserted and at verification time from the row read back, so it must be a function of what
the database stores, not of the Python objects a service happened to hold:

* ``before`` and ``after`` go through the JSON text they are stored as (``json.dumps``
  then ``json.loads``, as the JSON columns and psycopg do): a tuple becomes a list, an
  integer key a string key;
* what RFC 8785 cannot write exactly is written as a string: an integer beyond
  ``2**53 - 1`` (``"12345678901234567890"``) and a non-finite float (``"nan"``), so that
  no audit record is ever refused by the ledger;
* ``at`` is written as ``heads.format_time`` spells an instant (UTC, microseconds, ``Z``);
* the audit row's own id is not in the record: the ledger's position is the record's
  number (``ledger_entries`` maps it to the row), and a submission's single statement
  hashes the record before the database assigns the id.

``kind`` names the form, so a future form can be told apart. Invariants: pure and
deterministic; equal stored rows give equal records and equal leaf hashes on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gpulease.ledger.canonical import MAX_SAFE_INTEGER, canonical_json, is_plain
from gpulease.ledger.heads import format_time
from gpulease.ledger.merkle import leaf_hash

RECORD_KIND = "gpulease-audit/1"
FIELDS = ("at", "actor", "action", "subject_type", "subject_id", "before", "after", "reason")


def audit_record(fields: Mapping[str, Any], *, read_back: bool = False) -> dict[str, Any]:
    """The ledger record of an audit row given as its column values (``FIELDS``);
    ``read_back``: the values were read from the database (their JSON already parsed, so
    the trip through JSON text is skipped: it would change nothing)."""
    stored = _exact if read_back else _stored
    at = fields["at"]
    if not isinstance(at, datetime):
        raise TypeError(f"an audit record's 'at' is a datetime, not {type(at).__name__}")
    return {
        "action": fields["action"],
        "actor": fields["actor"],
        "after": stored(fields.get("after")),
        "at": format_time(at),
        "before": stored(fields.get("before")),
        "kind": RECORD_KIND,
        "reason": fields.get("reason") or "",
        "subject_id": fields["subject_id"],
        "subject_type": fields["subject_type"],
    }


def record_leaf(fields: Mapping[str, Any], *, read_back: bool = False) -> bytes:
    """The leaf hash of the audit row given as its column values."""
    return leaf_hash(canonical_json(audit_record(fields, read_back=read_back)))


def _stored(value: Any) -> Any:
    """``value`` as a JSON column gives it back, made exactly representable."""
    if value is None:
        return None
    loaded = json.loads(json.dumps(value))
    return loaded if is_plain(loaded) else _exact(loaded)  # plain: already exact


def _exact(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_SAFE_INTEGER else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, list):
        return [_exact(item) for item in value]
    if isinstance(value, dict):
        return {key: _exact(item) for key, item in value.items()}
    return value
