"""Private key files of Ed25519 keys: the ledger's signing keys and node agents' keys.

Design. A private key lives in one file outside the database (PEM, PKCS #8), written with
mode 0600 and never overwritten: rotating keys means a new file and a new key period, and
the old file is kept until its heads no longer need re-signing. A key file that any group or
other user may read, write or execute is refused when loaded (as ssh refuses such a key),
because a key others could have read proves nothing. The file is opened without following a
symbolic link and checked on the opened descriptor, so the check and the read see one file.

The ledger's keys are ``key_dir(settings)/<key id without its prefix>.pem`` (the directory
``0700``). The pure key code (generation, key ids, signatures) is ``gpulease.ledger.keys``
and ``gpulease.ledger.heads``; this module is the file I/O beside ``services.ledger``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.keys import generate_private_key, key_id, public_key_bytes
from gpulease.settings import Settings


def key_dir(settings: Settings) -> Path:
    return settings.ledger_key_dir or settings.data_dir / "ledger"


def key_file(settings: Settings, kid: str) -> Path:
    return key_dir(settings) / f"{kid.removeprefix('ed25519:')}.pem"


def new_key_file(settings: Settings) -> tuple[str, bytes]:
    """A new key, saved (mode 0600) under the key directory; its id and public key."""
    private = generate_private_key()
    public = public_key_bytes(private)
    kid = key_id(public)
    folder = key_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_private_key(key_file(settings, kid), private)
    return kid, public


class KeyFileError(InvalidRequest):
    """A private key file that cannot be used as it is (says why and how to fix it)."""


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
