"""Signed tree heads: a key's signature over (tree size, root hash, timestamp, key id).

Vocabulary. A :class:`TreeHead` states that the ledger's first ``tree_size`` records have the
Merkle root ``root_hash`` (RFC 9162 MTH), at ``timestamp`` (given by the caller: the core
reads no clock), under the key ``key_id``. A :class:`SignedTreeHead` adds the Ed25519
signature over the head's *signed bytes*: the RFC 8785 canonical JSON of

    {"kind": "gpulease-ledger-tree-head/1", "key_id": ..., "root_hash": <64 hex digits>,
     "timestamp": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "tree_size": n}

``kind`` separates these signatures from anything else the key might sign. The timestamp is
UTC with microseconds, so a head has one spelling. A :class:`KeyPeriod` is a public key with
the period ``[valid_from, valid_until)`` (``valid_until`` exclusive, ``None`` while current) in
which it may sign: key rotation ends one period where the next begins.

Verification (:func:`check_tree_head`) accepts a head only if a period for its key id exists
whose public key has that id, whose period contains the head's timestamp, and whose key
verifies the signature. A head signed outside its key's period fails, so a retired key
cannot sign new history under its own date; it can still claim an old date, which is why
heads are published: a backdated head must also be consistent with every head published
since, which a rewritten history is not.

Invariants: pure (signing is deterministic, RFC 8032); :meth:`SignedTreeHead.to_json` and
:meth:`SignedTreeHead.from_json` round-trip exactly; any change to a signed field, the
signature or the key makes verification fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.canonical import MAX_SAFE_INTEGER, canonical_json
from gpulease.ledger.keys import key_id, public_key_bytes
from gpulease.ledger.merkle import HASH_SIZE

HEAD_KIND = "gpulease-ledger-tree-head/1"
SIGNATURE_SIZE = 64
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_time(moment: datetime) -> str:
    """The one spelling of an aware instant: UTC, microseconds, ``Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidRequest("a ledger timestamp must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """Read :func:`format_time`'s spelling back (anything else is refused)."""
    try:
        moment = datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError) as error:
        raise InvalidRequest(
            f"{text!r} is not a ledger timestamp (YYYY-MM-DDTHH:MM:SS.ffffffZ)"
        ) from error
    if format_time(moment) != text:
        raise InvalidRequest(f"{text!r} is not in the canonical timestamp form")
    return moment


@dataclass(frozen=True, slots=True)
class TreeHead:
    """What a signature commits to."""

    tree_size: int
    root_hash: bytes
    timestamp: datetime
    key_id: str

    def __post_init__(self) -> None:
        if not 0 <= self.tree_size <= MAX_SAFE_INTEGER:
            raise InvalidRequest(f"tree size {self.tree_size} is out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise InvalidRequest(f"a root hash has {HASH_SIZE} bytes, not {len(self.root_hash)}")
        format_time(self.timestamp)  # refuses a naive datetime

    def signed_bytes(self) -> bytes:
        """The canonical bytes the signature covers."""
        return canonical_json(
            {
                "kind": HEAD_KIND,
                "key_id": self.key_id,
                "root_hash": self.root_hash.hex(),
                "timestamp": format_time(self.timestamp),
                "tree_size": self.tree_size,
            }
        )


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    head: TreeHead
    signature: bytes

    @property
    def tree_size(self) -> int:
        return self.head.tree_size

    @property
    def root_hash(self) -> bytes:
        return self.head.root_hash

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.head.key_id,
            "root_hash": self.head.root_hash.hex(),
            "signature": self.signature.hex(),
            "timestamp": format_time(self.head.timestamp),
            "tree_size": self.head.tree_size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SignedTreeHead:
        """Read :meth:`to_json`'s form; a malformed head raises :class:`InvalidRequest`."""
        try:
            size = data["tree_size"]
            if not isinstance(size, int) or isinstance(size, bool):
                raise InvalidRequest(f"tree_size {size!r} is not an integer")
            if not isinstance(data["key_id"], str):
                raise InvalidRequest("key_id is not a string")
            return cls(
                head=TreeHead(
                    tree_size=size,
                    root_hash=_hex(data["root_hash"], "root_hash"),
                    timestamp=parse_time(data["timestamp"]),
                    key_id=data["key_id"],
                ),
                signature=_hex(data["signature"], "signature"),
            )
        except KeyError as error:
            raise InvalidRequest(f"a signed tree head lacks {error.args[0]!r}") from error


@dataclass(frozen=True, slots=True)
class KeyPeriod:
    """A public key and the period ``[valid_from, valid_until)`` in which it may sign."""

    public_key: bytes
    valid_from: datetime
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        key_id(self.public_key)  # refuses a key of the wrong size
        format_time(self.valid_from)
        if self.valid_until is not None:
            format_time(self.valid_until)
            if self.valid_until <= self.valid_from:
                raise InvalidRequest("a key period must end after it begins")

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def covers(self, moment: datetime) -> bool:
        return self.valid_from <= moment and (self.valid_until is None or moment < self.valid_until)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": self.public_key.hex(),
            "valid_from": format_time(self.valid_from),
            "valid_until": None if self.valid_until is None else format_time(self.valid_until),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyPeriod:
        try:
            until = data["valid_until"]
            period = cls(
                public_key=_hex(data["public_key"], "public_key"),
                valid_from=parse_time(data["valid_from"]),
                valid_until=None if until is None else parse_time(until),
            )
            if data["key_id"] != period.key_id:
                raise InvalidRequest(
                    f"key id {data['key_id']!r} is not the id of its public key ({period.key_id})"
                )
        except KeyError as error:
            raise InvalidRequest(f"a key period lacks {error.args[0]!r}") from error
        return period


def sign_tree_head(
    private_key: Ed25519PrivateKey, *, tree_size: int, root_hash: bytes, timestamp: datetime
) -> SignedTreeHead:
    """Sign a head for the first ``tree_size`` records with root ``root_hash``."""
    head = TreeHead(
        tree_size=tree_size,
        root_hash=root_hash,
        timestamp=timestamp,
        key_id=key_id(public_key_bytes(private_key)),
    )
    return SignedTreeHead(head=head, signature=private_key.sign(head.signed_bytes()))


def check_tree_head(signed: SignedTreeHead, keys: Iterable[KeyPeriod]) -> str | None:
    """Why ``signed`` is not a valid head under ``keys``, or None when it is."""
    head = signed.head
    periods = [period for period in keys if period.key_id == head.key_id]
    if not periods:
        return f"head of size {head.tree_size} is signed by unknown key {head.key_id}"
    if len(signed.signature) != SIGNATURE_SIZE:
        return f"head of size {head.tree_size} has a malformed signature"
    in_period = [period for period in periods if period.covers(head.timestamp)]
    if not in_period:
        spans = ", ".join(
            f"[{format_time(p.valid_from)}, "
            f"{'now' if p.valid_until is None else format_time(p.valid_until)})"
            for p in periods
        )
        return (
            f"head of size {head.tree_size} is dated {format_time(head.timestamp)}, outside "
            f"the period of key {head.key_id} ({spans})"
        )
    message = head.signed_bytes()
    for period in in_period:
        try:
            Ed25519PublicKey.from_public_bytes(period.public_key).verify(signed.signature, message)
        except InvalidSignature:
            continue
        return None
    return f"head of size {head.tree_size}: the signature does not verify under {head.key_id}"


def verify_tree_head(signed: SignedTreeHead, keys: Iterable[KeyPeriod]) -> bool:
    """Is ``signed`` signed by a key of ``keys`` within that key's period?"""
    return check_tree_head(signed, keys) is None


def _hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as error:
        raise InvalidRequest(f"{name} is not hex") from error
