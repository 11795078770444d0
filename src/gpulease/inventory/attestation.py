"""Location attestation: "node N was seen at site S at time T", signed, checked, assessed.

Vocabulary. A *statement* (:class:`Statement`) says that a node is at a site at a moment;
a node agent signs its canonical bytes (RFC 8785 JSON, :func:`statement_bytes`) with the
node's own Ed25519 key, whose public key an operator registered for that node. An
*attestation* is a statement that passed :func:`check_statement`; the executor of a site may
also attest its nodes (unsigned: the control plane's own view of where its executor runs).
An *alert* (:class:`AlertKind`) is raised for a node whose attestations stopped (``stale``:
none for ``stale_after`` seconds) or disagree with the site the inventory records
(``mismatch``); :func:`assess` decides which, purely.

Invariants:

* a signature is checked against the node's registered key only, over the exact canonical
  bytes; any altered byte (node, site, time, nonce, signature) fails;
* statements of a node are accepted in strictly increasing time, within ``skew`` of the
  receiver's clock: an old statement replayed, or one dated far ahead, is refused;
* an alert, once cleared by an operator, is not raised again for the same cause: staleness
  counts from the later of the last attestation and the clearance, and a mismatch needs an
  attestation made after the clearance.

No clock, no database, no randomness: ``now`` is an argument (the nonce is the agent's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.canonical import canonical_json
from gpulease.ledger.heads import format_time, parse_time
from gpulease.ledger.keys import PUBLIC_KEY_SIZE

STATEMENT_KIND = "gpulease-location-attestation/1"
SIGNATURE_SIZE = 64
_NONCE = re.compile(r"^[0-9a-f]{16,64}$")
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class AlertKind(StrEnum):
    STALE = "stale"  # no attestation for longer than the threshold
    MISMATCH = "mismatch"  # attested at another site than the recorded one


class AlertState(StrEnum):
    OPEN = "open"  # the node is drained until an operator decides
    CLEARED = "cleared"  # an operator decided (the node back up, or kept out)


ALERT_TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    AlertState.OPEN: frozenset({AlertState.CLEARED}),
}


class AttestationSource(StrEnum):
    AGENT = "agent"  # signed by the node's own key
    EXECUTOR = "executor"  # reported by the site's executor from the scheduler loop


@dataclass(frozen=True, slots=True)
class Statement:
    node_id: str
    site_id: str
    at: datetime
    nonce: str

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": STATEMENT_KIND,
            "node_id": self.node_id,
            "site_id": self.site_id,
            "at": format_time(self.at),
            "nonce": self.nonce,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Statement:
        if data.get("kind") != STATEMENT_KIND:
            raise InvalidRequest(f"a statement's kind is {STATEMENT_KIND!r}", field="kind")
        values = {}
        for name in ("node_id", "site_id", "at", "nonce"):
            value = data.get(name)
            if not isinstance(value, str):
                raise InvalidRequest(f"{name} must be a string", field=name)
            values[name] = value
        for name in ("node_id", "site_id"):
            if not _IDENT.match(values[name]):
                raise InvalidRequest(f"{name} is not an id", field=name)
        if not _NONCE.match(values["nonce"]):
            raise InvalidRequest("nonce: 16 to 64 lower-case hex digits", field="nonce")
        try:
            at = parse_time(values["at"])
        except InvalidRequest as bad:
            raise InvalidRequest(bad.message, field="at") from None
        return cls(values["node_id"], values["site_id"], at, values["nonce"])


def statement_bytes(statement: Statement) -> bytes:
    """The exact bytes a node agent signs."""
    return canonical_json(statement.as_dict())


def sign(key: Ed25519PrivateKey, statement: Statement) -> str:
    """The agent's signature of ``statement``, in hex."""
    return key.sign(statement_bytes(statement)).hex()


def public_key_from_hex(text: str) -> bytes:
    """The raw key of ``text``; refused unless it is a point of the curve of large order."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise InvalidRequest("a public key is 64 hex digits", field="public_key") from None
    if len(raw) != PUBLIC_KEY_SIZE:
        raise InvalidRequest(
            f"an Ed25519 public key has {PUBLIC_KEY_SIZE} bytes, not {len(raw)}",
            field="public_key",
        )
    if weak_key(raw):
        raise InvalidRequest(
            "not an Ed25519 public key anyone holds the private key of (a point of small "
            "order, or none of the curve: with such a key a signature of any statement can "
            "be made without a private key)",
            field="public_key",
        )
    return raw


# Edwards25519 (RFC 8032 5.1): -x^2 + y^2 = 1 + d x^2 y^2 over GF(p)
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, _P - 2, _P) % _P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P
    return x3, y3


def weak_key(public_key: bytes) -> bool:
    """Whether ``public_key`` encodes no point of the curve (or not canonically), or a point
    of small order (eight times it is the neutral point). Verification of Ed25519 as the
    ``cryptography`` package does it does not refuse these: under the neutral point
    ``01 00..00`` the signature R = neutral, S = 0 verifies for every message, and under
    another point of small order for one message in 2, 4 or 8 (the agent picks the nonce)."""
    y = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    if y >= _P:
        return True
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x2 = u * pow(v, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)  # a square root of x2, if it has one (RFC 8032 5.1.3)
    if x * x % _P != x2:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
        if x * x % _P != x2:
            return True
    point = (x, y)
    for _ in range(3):
        point = _add(point, point)
    return point == (0, 1)


def signature_valid(public_key: bytes, statement: Statement, signature_hex: str) -> bool:
    """Whether ``signature_hex`` is the registered key's signature of ``statement``."""
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, statement_bytes(statement))
    except (InvalidSignature, ValueError):
        return False
    return True


def check_freshness(
    statement: Statement, last_at: datetime | None, now: datetime, skew: timedelta
) -> None:
    """Refuse a replayed (not newer than the node's last) or mis-dated statement."""
    if statement.at > now + skew or statement.at < now - skew:
        raise InvalidRequest(
            f"the statement is dated {format_time(statement.at)}, more than "
            f"{skew.total_seconds():g} s from the receiver's clock; check the node's clock",
            field="at",
        )
    if last_at is not None and statement.at <= last_at:
        raise InvalidRequest(
            "the statement is not newer than the node's last attestation (a replay?)",
            field="at",
        )


@dataclass(frozen=True, slots=True)
class NodeSighting:
    """What is known of one node: where the inventory has it, its last attestation, and
    when an operator last cleared an alert of each kind for it."""

    node_id: str
    recorded_site: str
    since: datetime  # attestation is expected from this moment (the node's registration)
    last_at: datetime | None = None
    last_site: str | None = None
    cleared_stale: datetime | None = None
    cleared_mismatch: datetime | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    node_id: str
    kind: AlertKind
    detail: str


def assess(nodes: Iterable[NodeSighting], now: datetime, stale_after: timedelta) -> list[Finding]:
    """The alerts due (module doc): a mismatch wins over staleness for one node."""
    found = []
    for node in nodes:
        if (
            node.last_at is not None
            and node.last_site is not None
            and node.last_site != node.recorded_site
            and (node.cleared_mismatch is None or node.last_at > node.cleared_mismatch)
        ):
            found.append(
                Finding(
                    node.node_id,
                    AlertKind.MISMATCH,
                    f"attested at site {node.last_site} at {format_time(node.last_at)}; "
                    f"the inventory has it at {node.recorded_site}",
                )
            )
            continue
        reference = max(
            [m for m in (node.since, node.last_at, node.cleared_stale) if m is not None]
        )
        if now - reference > stale_after:
            seen = (
                f"last attested {format_time(node.last_at)}"
                if node.last_at is not None
                else "never attested"
            )
            found.append(
                Finding(
                    node.node_id,
                    AlertKind.STALE,
                    f"{seen}; no attestation for more than {stale_after.total_seconds():g} s",
                )
            )
    return found
