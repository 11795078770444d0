"""The ledger's Ed25519 signing key: generation, key ids (pure: no file I/O).

A key is named by its *key id*, ``ed25519:`` and the first 16 bytes of the SHA-256 of its
raw 32-byte public key, in hex: anyone holding the public key derives the same id, so a
bundle cannot pair a key id with another key. The private key's file (mode 0600, never
overwritten, refused when others may reach it) is kept by ``services.ledger_keys``, outside
this pure package.

Invariants: generation is the only place in the ledger core that draws randomness (from the
operating system, as a signing key must; it is not a decision, so no seed is taken). Ed25519
signatures themselves are deterministic (RFC 8032), so signing a head is a pure function of
the key and the head.
"""

from __future__ import annotations

from hashlib import sha256

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gpulease.domain.errors import InvalidRequest

KEY_ID_PREFIX = "ed25519:"
PUBLIC_KEY_SIZE = 32


def generate_private_key() -> Ed25519PrivateKey:
    """A new Ed25519 signing key, from the operating system's randomness."""
    return Ed25519PrivateKey.generate()


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key (RFC 8032 encoding)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    """The key id of a raw public key: ``ed25519:`` + 32 hex digits of its SHA-256."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise InvalidRequest(
            f"an Ed25519 public key has {PUBLIC_KEY_SIZE} bytes, not {len(public_key)}"
        )
    return KEY_ID_PREFIX + sha256(public_key).hexdigest()[:32]
