"""Record proofs and head consistency, as a regulator would check them from JSON alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.bundle import record_leaf_hash
from gpulease.ledger.heads import KeyPeriod, SignedTreeHead, sign_tree_head
from gpulease.ledger.keys import public_key_bytes
from gpulease.ledger.merkle import MerkleTree
from gpulease.ledger.proofs import (
    ConsistencyProof,
    InclusionProof,
    RecordProof,
    check_head_consistency,
    check_record_proof,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(b"\x03" * 32)
KEYS = (KeyPeriod(public_key_bytes(KEY), valid_from=T0),)
RECORDS = [{"seq": i, "gpu": f"GPU-{i:05d}", "site": "jkt-1"} for i in range(50)]
TREE = MerkleTree(record_leaf_hash(r) for r in RECORDS)


def head(size: int) -> SignedTreeHead:
    return sign_tree_head(
        KEY, tree_size=size, root_hash=TREE.root(size), timestamp=T0 + timedelta(hours=size)
    )


def record_proof(index: int, size: int) -> RecordProof:
    return RecordProof(RECORDS[index], InclusionProof.from_tree(TREE, index, size), head(size))


def through_json(data: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(data))
    return loaded


def test_a_record_proof_checks_out_from_json_alone() -> None:
    for index, size in [(0, 1), (7, 20), (19, 20), (33, 50)]:
        proof = RecordProof.from_json(through_json(record_proof(index, size).to_json()))
        assert check_record_proof(proof, KEYS) is None


def test_a_changed_record_position_path_or_head_fails() -> None:
    proof = record_proof(7, 20)
    changed_record = RecordProof({**RECORDS[7], "site": "elsewhere"}, proof.inclusion, proof.head)
    assert "not at position 7" in (check_record_proof(changed_record, KEYS) or "")
    moved = RecordProof(proof.record, InclusionProof(8, 20, proof.inclusion.path), proof.head)
    assert check_record_proof(moved, KEYS) is not None
    for element in range(len(proof.inclusion.path)):
        path = list(proof.inclusion.path)
        path[element] = bytes([path[element][0] ^ 1]) + path[element][1:]
        bad = RecordProof(proof.record, InclusionProof(7, 20, tuple(path)), proof.head)
        assert check_record_proof(bad, KEYS) is not None
    other_head = RecordProof(proof.record, proof.inclusion, head(21))
    assert "tree of 20 records" in (check_record_proof(other_head, KEYS) or "")
    forged = RecordProof(proof.record, proof.inclusion, SignedTreeHead(head(20).head, bytes(64)))
    assert "does not verify" in (check_record_proof(forged, KEYS) or "")


def test_heads_are_consistent_and_a_rewritten_history_is_not() -> None:
    for first, second in [(1, 50), (16, 20), (20, 50), (33, 34), (50, 50)]:
        proof = ConsistencyProof.from_json(
            through_json(ConsistencyProof.from_tree(TREE, first, second).to_json())
        )
        assert check_head_consistency(head(first), head(second), proof, KEYS) is None

    rewritten = list(RECORDS)
    rewritten[3] = {**rewritten[3], "site": "sgp-2"}
    other = MerkleTree(record_leaf_hash(r) for r in rewritten)
    later = sign_tree_head(KEY, tree_size=50, root_hash=other.root(), timestamp=T0 + timedelta(9))
    proof = ConsistencyProof.from_tree(other, 20, 50)
    reason = check_head_consistency(head(20), later, proof, KEYS)
    assert reason is not None
    assert "rewritten" in reason
    mismatched = ConsistencyProof.from_tree(TREE, 16, 50)
    assert "between sizes 16 and 50" in (
        check_head_consistency(head(20), head(50), mismatched, KEYS) or ""
    )


@pytest.mark.parametrize(
    "data",
    [
        {"leaf_index": -1, "tree_size": 3, "path": []},
        {"leaf_index": True, "tree_size": 3, "path": []},
        {"leaf_index": 0, "tree_size": 3, "path": "00"},
        {"leaf_index": 0, "tree_size": 3, "path": ["zz"]},
    ],
)
def test_malformed_proofs_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        InclusionProof.from_json(data)
