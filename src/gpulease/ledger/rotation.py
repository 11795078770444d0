"""A key rotation endorsed by the key it replaces.

When the operator rotates the ledger's signing key, the outgoing key signs a *rotation
statement*, the RFC 8785 canonical JSON of

    {"kind": "gpulease-ledger-key-rotation/1", "new_key_id": ..., "new_public_key": <hex>,
     "old_key_id": ..., "valid_from": "YYYY-MM-DDTHH:MM:SS.ffffffZ"}

and the statement's signature goes into the ledger record of the rotation
(``ledger.key_rotated``). Whoever trusts the first key can so follow the chain of keys:
each one is vouched for by its predecessor, inside the very log it signs, so a key
substituted later (a rewritten ``ledger_keys`` table, a bundle carrying a fresh key) has no
endorsement that verifies.

Invariants: pure; :func:`check_rotation` returns None when the signature is the old key's
over exactly these fields, and otherwise says what failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.canonical import canonical_json
from gpulease.ledger.heads import KeyPeriod, format_time, parse_time
from gpulease.ledger.keys import key_id, public_key_bytes

ROTATION_KIND = "gpulease-ledger-key-rotation/1"


def rotation_statement(old_key_id: str, new_public_key: bytes, valid_from: datetime) -> bytes:
    """The bytes the outgoing key signs."""
    return canonical_json(
        {
            "kind": ROTATION_KIND,
            "new_key_id": key_id(new_public_key),
            "new_public_key": new_public_key.hex(),
            "old_key_id": old_key_id,
            "valid_from": format_time(valid_from),
        }
    )


def endorse(old: Ed25519PrivateKey, new_public_key: bytes, valid_from: datetime) -> bytes:
    """The outgoing key's signature over the rotation statement."""
    statement = rotation_statement(key_id(public_key_bytes(old)), new_public_key, valid_from)
    return old.sign(statement)


def check_rotation(
    old_public_key: bytes, new_public_key: bytes, valid_from: datetime, signature: bytes
) -> str | None:
    """Why ``signature`` is not the old key's endorsement of the new one, or None."""
    statement = rotation_statement(key_id(old_public_key), new_public_key, valid_from)
    try:
        Ed25519PublicKey.from_public_bytes(old_public_key).verify(signature, statement)
    except (InvalidSignature, ValueError):
        return (
            f"the rotation to {key_id(new_public_key)} is not endorsed by {key_id(old_public_key)}"
        )
    return None


class KeyChain:
    """Follows the ledger's key records in position order (``ledger.key_created``,
    ``ledger.key_rotated``: audit records or their ledger records alike) and checks each
    rotation's endorsement by the key it replaces; :meth:`check_periods` then checks that
    every key the heads are verified against is one those records named, with that public
    key. ``problems`` are (kind, message, position); ``warnings`` are for a rotation the
    operator declared unendorsed (a lost key file), which an auditor must accept otherwise.
    """

    def __init__(self) -> None:
        self.recorded: dict[str, bytes] = {}
        self.problems: list[tuple[str, str, int | None]] = []
        self.warnings: list[str] = []

    def see(self, position: int, record: Mapping[str, Any]) -> None:
        if record.get("subject_type") != "ledger_key":
            return
        action = record.get("action")
        if action not in ("ledger.key_created", "ledger.key_rotated"):
            return
        try:
            after = record["after"] or {}
            kid, public = str(after["key_id"]), bytes.fromhex(after["public_key"])
            if key_id(public) != kid:
                raise ValueError(f"{kid} is not the id of its public key")
            self.recorded[kid] = public
            if action == "ledger.key_created":
                return
            old = str((record["before"] or {})["key_id"])
            signature = after.get("endorsement")
            if signature is None:
                self.warnings.append(
                    f"position {position}: the rotation to {kid} is not endorsed by {old} "
                    "(its key file was lost): accept the new key by other means"
                )
                return
            why = (
                f"the key it replaces, {old}, is not recorded before it"
                if old not in self.recorded
                else check_rotation(
                    self.recorded[old],
                    public,
                    parse_time(after["valid_from"]),
                    bytes.fromhex(signature),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError, InvalidRequest) as error:
            why = f"a malformed key record ({error})"
        if why is not None:
            self.problems.append(("bad_rotation", f"position {position}: {why}", position))

    def check_periods(self, periods: Iterable[KeyPeriod]) -> None:
        for period in periods:
            if self.recorded.get(period.key_id) != period.public_key:
                self.problems.append(
                    (
                        "bad_key",
                        f"key {period.key_id} is not a key the ledger's own records created "
                        "or rotated to: it was put in afterwards",
                        None,
                    )
                )
