"""The ledger's Ed25519 signing key: generation, the private key file, key ids.

Design. The private key lives in one file outside the database (PEM, PKCS #8), written with
mode 0600 and never overwritten: rotating keys means a new file and a new key period, and
the old file is kept until its heads no longer need re-signing. A key file that any group or
other user may read, write or execute is refused when loaded (as ssh refuses such a key),
because a key others could have read proves nothing. The file is opened without following a
symbolic link and checked on the opened descriptor, so the check and the read see one file.

A key is named by its *key id*, ``ed25519:`` and the first 16 bytes of the SHA-256 of its
raw 32-byte public key, in hex: anyone holding the public key derives the same id, so a
bundle cannot pair a key id with another key.

Invariants: generation is the only place in the ledger core that draws randomness (from the
operating system, as a signing key must; it is not a decision, so no seed is taken). Ed25519
signatures themselves are deterministic (RFC 8032), so signing a head is a pure function of
the key and the head.
"""

from __future__ import annotations

import os
import stat
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from gpulease.domain.errors import InvalidRequest

KEY_ID_PREFIX = "ed25519:"
PUBLIC_KEY_SIZE = 32


class KeyFileError(InvalidRequest):
    """A private key file that cannot be used as it is (says why and how to fix it)."""


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


def save_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to a new file at ``path`` with mode 0600; an existing file is refused."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as error:
        raise KeyFileError(
            f"{path} already exists: a ledger key is never overwritten; "
            "choose another path for a new key",
            path=str(path),
        ) from error
    try:
        os.fchmod(fd, 0o600)  # the umask may only remove bits; make the mode exact
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read the key file at ``path``; refused unless it is a regular file of mode 0600 or less."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as error:
        raise KeyFileError(f"no key file at {path}", path=str(path)) from error
    except OSError as error:  # ELOOP: a symbolic link
        raise KeyFileError(
            f"cannot open {path} ({error.strerror}); a key file must be a regular file, "
            "not a symbolic link",
            path=str(path),
        ) from error
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise KeyFileError(f"{path} is not a regular file", path=str(path))
        loose = stat.S_IMODE(status.st_mode) & 0o077
        if loose:
            raise KeyFileError(
                f"{path} has mode {stat.S_IMODE(status.st_mode):04o}: others may read or "
                f"change the ledger's signing key; run `chmod 600 {path}`, and rotate the key "
                "if anyone could have copied it",
                path=str(path),
                mode=f"{stat.S_IMODE(status.st_mode):04o}",
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            pem = handle.read()
    finally:
        os.close(fd)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as error:
        raise KeyFileError(f"{path} holds no readable PEM private key", path=str(path)) from error
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key
