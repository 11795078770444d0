"""Signed tree heads and the key file: signatures, key periods (rotation), file modes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.heads import (
    KeyPeriod,
    SignedTreeHead,
    TreeHead,
    check_tree_head,
    format_time,
    parse_time,
    sign_tree_head,
    verify_tree_head,
)
from gpulease.ledger.keys import generate_private_key, key_id, public_key_bytes
from gpulease.ledger.merkle import MerkleTree
from gpulease.services.ledger_keys import KeyFileError, load_private_key, save_private_key

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROTATION = datetime(2026, 6, 1, tzinfo=UTC)
OLD = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NEW = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
KEYS = (
    KeyPeriod(public_key_bytes(OLD), valid_from=T0, valid_until=ROTATION),
    KeyPeriod(public_key_bytes(NEW), valid_from=ROTATION),
)
TREE = MerkleTree()
for i in range(10):
    TREE.append(f"record {i}".encode())


def head(key: Ed25519PrivateKey = OLD, when: datetime = T0 + timedelta(days=1)) -> SignedTreeHead:
    return sign_tree_head(key, tree_size=10, root_hash=TREE.root(), timestamp=when)


def flip(value: bytes, position: int) -> bytes:
    return value[:position] + bytes([value[position] ^ 0x80]) + value[position + 1 :]


def test_a_signed_head_verifies_and_round_trips() -> None:
    signed = head()
    assert verify_tree_head(signed, KEYS)
    again = SignedTreeHead.from_json(signed.to_json())
    assert again == signed
    assert verify_tree_head(again, KEYS)
    assert signed.head.key_id == KEYS[0].key_id
    assert head() == signed  # Ed25519 is deterministic: same head, same bytes


def test_signed_bytes_are_canonical_json_with_a_kind() -> None:
    signed = head()
    assert signed.head.signed_bytes() == (
        b'{"key_id":"' + signed.head.key_id.encode() + b'","kind":"gpulease-ledger-tree-head/1",'
        b'"root_hash":"' + TREE.root().hex().encode() + b'",'
        b'"timestamp":"2026-01-02T00:00:00.000000Z","tree_size":10}'
    )


def test_any_changed_field_or_signature_byte_fails() -> None:
    signed = head()
    changed = [
        TreeHead(11, signed.root_hash, signed.head.timestamp, signed.head.key_id),
        TreeHead(10, flip(signed.root_hash, 0), signed.head.timestamp, signed.head.key_id),
        TreeHead(
            10,
            signed.root_hash,
            signed.head.timestamp + timedelta(microseconds=1),
            signed.head.key_id,
        ),
    ]
    for other in changed:
        assert not verify_tree_head(SignedTreeHead(other, signed.signature), KEYS)
    for position in range(64):
        assert not verify_tree_head(
            SignedTreeHead(signed.head, flip(signed.signature, position)), KEYS
        )


def test_key_periods_enforce_rotation() -> None:
    assert verify_tree_head(head(NEW, ROTATION), KEYS)
    reason = check_tree_head(head(OLD, ROTATION), KEYS)  # the old key after its end
    assert reason is not None
    assert "outside the period" in reason
    reason = check_tree_head(head(NEW, ROTATION - timedelta(microseconds=1)), KEYS)
    assert reason is not None
    assert "outside the period" in reason
    assert not verify_tree_head(head(OLD, T0 - timedelta(seconds=1)), KEYS)


def test_unknown_key_and_swapped_key_fail() -> None:
    stranger = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    reason = check_tree_head(head(stranger), KEYS)
    assert reason is not None
    assert "unknown key" in reason
    forged = SignedTreeHead(
        TreeHead(10, TREE.root(), T0 + timedelta(days=1), KEYS[0].key_id),
        stranger.sign(
            TreeHead(10, TREE.root(), T0 + timedelta(days=1), KEYS[0].key_id).signed_bytes()
        ),
    )
    reason = check_tree_head(forged, KEYS)
    assert reason is not None
    assert "does not verify" in reason


def test_key_period_json_checks_the_key_id() -> None:
    data = KEYS[0].to_json()
    assert KeyPeriod.from_json(data) == KEYS[0]
    data["key_id"] = KEYS[1].key_id
    with pytest.raises(InvalidRequest, match="not the id of its public key"):
        KeyPeriod.from_json(data)
    with pytest.raises(InvalidRequest, match="end after it begins"):
        KeyPeriod(public_key_bytes(OLD), valid_from=ROTATION, valid_until=T0)


def test_timestamps_have_one_spelling() -> None:
    moment = datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=timezone(timedelta(hours=7)))
    text = format_time(moment)
    assert text == "2026-03-03T22:06:07.000890Z"
    assert parse_time(text) == moment
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        format_time(datetime(2026, 1, 1))
    with pytest.raises(InvalidRequest):
        parse_time("2026-03-03T22:06:07Z")


def test_key_ids_derive_from_the_public_key() -> None:
    raw = public_key_bytes(OLD)
    assert key_id(raw).startswith("ed25519:")
    assert len(key_id(raw)) == len("ed25519:") + 32
    assert key_id(raw) != key_id(public_key_bytes(NEW))
    with pytest.raises(InvalidRequest, match="32 bytes"):
        key_id(raw[:31])


# ---------------------------------------------------------------- the key file
def test_key_file_is_written_0600_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    key = generate_private_key()
    old_umask = os.umask(0)
    try:
        save_private_key(path, key)
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(key)
    with pytest.raises(KeyFileError, match="never overwritten"):
        save_private_key(path, generate_private_key())


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o700 | 0o001])
def test_a_key_file_others_can_reach_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "ledger.key"
    save_private_key(path, OLD)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_private_key(path)
    path.chmod(0o400)
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(OLD)


def test_symlinks_missing_files_and_garbage_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    save_private_key(path, OLD)
    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(KeyFileError, match="symbolic link"):
        load_private_key(link)
    with pytest.raises(KeyFileError, match="no key file"):
        load_private_key(tmp_path / "absent.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_bytes(b"not a key")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match="no readable PEM"):
        load_private_key(garbage)
