"""The Merkle tree against RFC 9162's definitions, written naively here as the reference.

The reference (:func:`mth`, :func:`path`, :func:`proof`) is the RFC's recursive text of
sections 2.1.1, 2.1.3.1 and 2.1.4.1 over a plain list of leaves, with no caching. The tree
under test must give the same roots and proofs for every size up to 64 (every leaf, every
pair of sizes) and, by hypothesis, for sizes up to 260; its proofs must verify with the
RFC's verification algorithms, and fail once any byte of the proof, the leaf or the root is
changed, or the index or sizes are wrong.
"""

from __future__ import annotations

from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.ledger.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    MerkleTree,
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)


# ---------------------------------------------------------------- the RFC, naively
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 MTH over leaf data."""
    n = len(leaves)
    if n == 0:
        return sha256(b"").digest()
    if n == 1:
        return sha256(b"\x00" + leaves[0]).digest()
    k = _k(n)
    return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def proof(m: int, leaves: list[bytes]) -> list[bytes]:
    return subproof(m, leaves, True)


def data(n: int) -> list[bytes]:
    return [f"record {i}".encode() for i in range(n)]


def tree_of(leaves: list[bytes]) -> MerkleTree:
    tree = MerkleTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree


def flipped(value: bytes, position: int) -> bytes:
    return value[:position] + bytes([value[position] ^ 0x01]) + value[position + 1 :]


# ---------------------------------------------------------------- exhaustive, small sizes
SMALL = 64
LEAVES = data(SMALL)
TREE = tree_of(LEAVES)


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert MerkleTree().root() == EMPTY_ROOT == sha256(b"").digest()
    assert MerkleFrontier().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    one = MerkleTree()
    one.append(b"x")
    assert one.root() == sha256(b"\x00x").digest()
    two = tree_of([b"a", b"b"])
    assert two.root() == sha256(b"\x01" + leaf_hash(b"a") + leaf_hash(b"b")).digest()


def test_every_root_every_path_every_pair_matches_the_rfc() -> None:
    frontier = MerkleFrontier()
    for n in range(1, SMALL + 1):
        frontier.append(LEAVES[n - 1])
        root = mth(LEAVES[:n])
        assert TREE.root(n) == root == frontier.root(), n
        for m in range(n):
            audit = TREE.inclusion_proof(m, n)
            assert audit == path(m, LEAVES[:n]), (m, n)
            assert verify_inclusion(leaf_hash(LEAVES[m]), m, n, audit, root)
        for m in range(1, n + 1):
            consistency = TREE.consistency_proof(m, n)
            assert consistency == proof(m, LEAVES[:n]), (m, n)
            assert verify_consistency(m, n, mth(LEAVES[:m]), root, consistency), (m, n)


def test_a_proof_for_another_index_or_size_fails() -> None:
    for n in range(2, 24):
        root = TREE.root(n)
        for m in range(n):
            audit = TREE.inclusion_proof(m, n)
            leaf = leaf_hash(LEAVES[m])
            for other in range(n):
                if other != m:
                    assert not verify_inclusion(leaf, other, n, audit, root), (m, other, n)
            assert not verify_inclusion(leaf, m, n + 1, audit, TREE.root(n + 1))
            assert not verify_inclusion(leaf, m, n, [*audit, root], root)
            if audit:
                assert not verify_inclusion(leaf, m, n, audit[:-1], root)


def test_every_changed_byte_of_a_proof_leaf_or_root_fails() -> None:
    n = 37
    root = TREE.root(n)
    for m in (0, 5, 31, 32, 36):
        audit = TREE.inclusion_proof(m, n)
        leaf = leaf_hash(LEAVES[m])
        for position in range(32):
            assert not verify_inclusion(flipped(leaf, position), m, n, audit, root)
            assert not verify_inclusion(leaf, m, n, audit, flipped(root, position))
            for element in range(len(audit)):
                bad = list(audit)
                bad[element] = flipped(bad[element], position)
                assert not verify_inclusion(leaf, m, n, bad, root)
    for first in (1, 4, 7, 32):
        consistency = TREE.consistency_proof(first, n)
        old = TREE.root(first)
        for position in range(32):
            assert not verify_consistency(first, n, flipped(old, position), root, consistency)
            assert not verify_consistency(first, n, old, flipped(root, position), consistency)
            for element in range(len(consistency)):
                bad = list(consistency)
                bad[element] = flipped(bad[element], position)
                assert not verify_consistency(first, n, old, root, bad), (first, element)


def test_malformed_proofs_fail_without_raising() -> None:
    root = TREE.root(10)
    leaf = leaf_hash(LEAVES[3])
    audit = TREE.inclusion_proof(3, 10)
    assert root_from_inclusion_proof(leaf, 10, 10, audit) is None
    assert root_from_inclusion_proof(leaf, -1, 10, audit) is None
    assert not verify_inclusion(leaf, 3, 10, [a[:31] for a in audit], root)
    assert not verify_consistency(0, 10, EMPTY_ROOT, root, [])
    assert not verify_consistency(5, 10, TREE.root(5), root, [])
    assert not verify_consistency(10, 5, root, TREE.root(5), TREE.consistency_proof(5, 10))
    assert verify_consistency(10, 10, root, root, [])
    assert not verify_consistency(10, 10, root, TREE.root(9), [])


def test_bounds_are_refused_when_asking_the_tree() -> None:
    with pytest.raises(ValueError, match="tree size"):
        TREE.root(SMALL + 1)
    with pytest.raises(ValueError, match="leaf index"):
        TREE.inclusion_proof(5, 5)
    with pytest.raises(ValueError, match="consistency proof"):
        TREE.consistency_proof(0, 5)
    with pytest.raises(ValueError, match="consistency proof"):
        TREE.consistency_proof(6, 5)
    with pytest.raises(ValueError, match="32 bytes"):
        MerkleTree().append_leaf_hash(b"short")


def test_a_tree_built_from_leaf_hashes_equals_one_built_from_data() -> None:
    rebuilt = MerkleTree(TREE.leaf_hash(i) for i in range(SMALL))
    assert rebuilt.root() == TREE.root()
    assert rebuilt.inclusion_proof(17) == TREE.inclusion_proof(17)


# ---------------------------------------------------------------- hypothesis, larger sizes
BIG = 260
BIG_LEAVES = data(BIG)
BIG_TREE = tree_of(BIG_LEAVES)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, BIG).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_proofs_match_the_rfc_up_to_260(case: tuple[int, int]) -> None:
    n, m = case
    audit = BIG_TREE.inclusion_proof(m, n)
    assert audit == path(m, BIG_LEAVES[:n])
    assert verify_inclusion(leaf_hash(BIG_LEAVES[m]), m, n, audit, mth(BIG_LEAVES[:n]))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, BIG).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_proofs_match_the_rfc_up_to_260(case: tuple[int, int]) -> None:
    m, n = case
    consistency = BIG_TREE.consistency_proof(m, n)
    assert consistency == proof(m, BIG_LEAVES[:n])
    assert verify_consistency(m, n, BIG_TREE.root(m), mth(BIG_LEAVES[:n]), consistency)
    if m < n:  # a changed leaf anywhere breaks it
        assert not verify_consistency(
            m, n, mth([b"forged", *BIG_LEAVES[1:m]]), BIG_TREE.root(n), consistency
        )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=8), max_size=80))
def test_frontier_and_tree_agree_on_any_leaves(leaves: list[bytes]) -> None:
    frontier = MerkleFrontier()
    tree = MerkleTree()
    for leaf in leaves:
        frontier.append(leaf)
        tree.append(leaf)
    assert frontier.root() == tree.root() == mth(leaves)
    assert frontier.size == tree.size == len(leaves)


# ---------------------------------------------------------------- cost, counted in hashes
def test_appends_and_proofs_cost_logarithmic_node_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The docstring's costs, counted (not timed): amortised one node hash per append, and a
    root or proof in a tree of ~140,000 leaves within (log2 n)^2 node hashes."""
    from gpulease.ledger import merkle

    calls = 0
    real = merkle.node_hash

    def counting(left: bytes | bytearray, right: bytes | bytearray) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(merkle, "node_hash", counting)
    size = 2**17 + 12_345
    tree = MerkleTree()
    for index in range(size):
        tree.append_leaf_hash(sha256(index.to_bytes(4, "big")).digest())
    assert calls < size  # a perfect subtree is hashed once, when its last leaf arrives
    bound = size.bit_length() ** 2
    for action in (
        lambda: tree.root(),
        lambda: tree.root(size // 3),
        lambda: tree.inclusion_proof(size - 1),
        lambda: tree.inclusion_proof(77_777),
        lambda: tree.consistency_proof(size // 3),
        lambda: tree.consistency_proof(99_999, size - 5),
    ):
        calls = 0
        action()
        assert calls <= bound, calls
