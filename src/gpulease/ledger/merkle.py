"""Merkle trees of RFC 9162 (Certificate Transparency v2) section 2.1, kept incrementally.

Vocabulary (RFC 9162 2.1.1). ``D[n]`` is the list of the first ``n`` leaves (a leaf is a
record's canonical bytes). The leaf hash is ``SHA-256(0x00 || data)``, an interior node
``SHA-256(0x01 || left || right)``. The Merkle Tree Hash (MTH) of ``n > 1`` leaves splits at
``k``, the largest power of two smaller than ``n``: ``MTH(D[n]) = node(MTH(D[0:k]),
MTH(D[k:n]))``; ``MTH({}) = SHA-256()``. An *inclusion proof* (audit path, 2.1.3.1) is the
list of sibling hashes from a leaf up to the root; a *consistency proof* (2.1.4.1) between
sizes ``m < n`` is the list of hashes that let anyone holding ``MTH(D[m])`` recompute both
it and ``MTH(D[n])``, which proves the larger tree extends the smaller one (nothing was
rewritten, only appended). The 0x00/0x01 prefixes keep a leaf from passing for a node.

Two structures, for two jobs:

* :class:`MerkleFrontier` keeps only the right edge of the tree: the roots of the perfect
  subtrees that the binary digits of ``n`` decompose ``D[n]`` into, at most ``log2(n) + 1``
  hashes. Appending is amortised one node hash (a carry through the set bits); the root is
  at most ``log2(n)`` node hashes. A verifier streams a million records through it in
  constant memory and compares roots at each signed head's size.
* :class:`MerkleTree` keeps every complete aligned subtree: level ``h`` holds the hashes of
  the subtrees of ``2**h`` leaves starting at multiples of ``2**h`` (each level one
  ``bytearray`` of 32-byte digests: about ``64 * n`` bytes in all, 64 MB for a million
  leaves). Appending is amortised one node hash, as for the frontier (the frontier is the
  last node of each level whose bit is set in ``n``). Any ``MTH(D[lo:hi])`` that the RFC's
  recursions ask for is a perfect aligned subtree (one lookup) or a suffix ending at the
  tree size, folded from at most ``log2(n)`` lookups. So the root at any past size, an
  inclusion proof or a consistency proof costs ``O(log n)`` lookups and ``O(log^2 n)``
  node hashes at worst (about 400 for a million leaves), never a pass over the leaves.

The verification functions are the RFC's algorithms (2.1.3.2 and 2.1.4.2) step by step; they
need nothing but the proof, the sizes and the hashes, and return ``False`` (never raise) on a
malformed proof. Conventions beyond the RFC, stated so a verifier elsewhere can match them:
a consistency proof between equal sizes is empty and holds when the roots are equal; one
from size 0 is not defined (every tree extends the empty one: nothing to prove), so it is
refused by :meth:`MerkleTree.consistency_proof` and fails verification.

Invariants: pure (hashing only); ``MerkleTree.root(m)`` equals the RFC's recursive MTH of the
first ``m`` leaves for every ``m <= size``; every proof it returns verifies, and changing any
byte of the proof, the leaf or the root makes verification fail (tested against a naive
implementation of the definitions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || data)``."""
    return sha256(_LEAF + data).digest()


def node_hash(left: bytes | bytearray, right: bytes | bytearray) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return sha256(_NODE + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (``size >= 2``)."""
    return 1 << ((size - 1).bit_length() - 1)


class MerkleFrontier:
    """The right edge of an append-only tree: appends and the current root, O(log n) memory."""

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []  # perfect subtree roots, largest (leftmost) first

    @property
    def size(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        """Append one leaf's data (hashed as a leaf)."""
        self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, leaf: bytes) -> None:
        """Append a leaf given by its leaf hash: amortised one node hash."""
        node = leaf
        carry = self._size
        while carry & 1:  # each set low bit is a subtree of equal size waiting for a sibling
            node = node_hash(self._stack.pop(), node)
            carry >>= 1
        self._stack.append(node)
        self._size += 1

    def root(self) -> bytes:
        """``MTH(D[size])``: the perfect subtrees folded from the right."""
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


class MerkleTree:
    """An append-only Merkle tree that answers roots and proofs for any size it has held."""

    __slots__ = ("_levels", "_size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._size = 0
        self._levels: list[bytearray] = [bytearray()]
        for leaf in leaf_hashes:
            self.append_leaf_hash(leaf)

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> int:
        """Append one leaf's data; returns its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, leaf: bytes) -> int:
        """Append a leaf given by its hash; returns its index. Amortised one node hash."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf)}")
        index = self._size
        levels = self._levels
        levels[0] += leaf
        node = leaf
        position = index
        height = 0
        while position & 1:  # the new node closes a pair: its parent is now complete
            start = (position - 1) * HASH_SIZE
            node = node_hash(levels[height][start : start + HASH_SIZE], node)
            height += 1
            if height == len(levels):
                levels.append(bytearray())
            levels[height] += node
            position >>= 1
        self._size = index + 1
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        self._check_index(index, self._size)
        return self._node(0, index)

    def root(self, tree_size: int | None = None) -> bytes:
        """``MTH(D[tree_size])``, the root the tree had at that size (default: now)."""
        size = self._size if tree_size is None else tree_size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._range(0, size)

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        """RFC 9162 ``PATH(index, D[tree_size])``: sibling hashes from the leaf up."""
        size = self._size if tree_size is None else tree_size
        self._check_size(size)
        self._check_index(index, size)
        lo, hi = 0, size
        siblings: list[bytes] = []  # collected root-down; the path is leaf-up
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                siblings.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                siblings.append(self._range(lo, lo + k))
                lo += k
        return list(reversed(siblings))

    def consistency_proof(self, first_size: int, second_size: int | None = None) -> list[bytes]:
        """RFC 9162 ``PROOF(first_size, D[second_size])`` for ``0 < first <= second``."""
        second = self._size if second_size is None else second_size
        self._check_size(second)
        if not 0 < first_size <= second:
            raise ValueError(
                f"a consistency proof needs 0 < first size <= second size "
                f"(got {first_size} and {second})"
            )
        siblings: list[bytes] = []  # root-down, as SUBPROOF recurses; returned leaf-up
        m, lo, hi, whole = first_size, 0, second, True
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                siblings.append(self._range(lo + k, hi))
                hi = lo + k
            else:
                siblings.append(self._range(lo, lo + k))
                m -= k
                lo += k
                whole = False
        if not whole:  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
            siblings.append(self._range(lo, hi))
        return list(reversed(siblings))

    # ------------------------------------------------------------------ internals
    def _node(self, height: int, index: int) -> bytes:
        start = index * HASH_SIZE
        return bytes(self._levels[height][start : start + HASH_SIZE])

    def _range(self, lo: int, hi: int) -> bytes:
        """``MTH(D[lo:hi])`` from the stored subtrees (``hi <= size``)."""
        width = hi - lo
        if width & (width - 1) == 0 and lo % width == 0:  # a perfect aligned subtree: stored
            return self._node(width.bit_length() - 1, lo // width)
        k = _split(width)
        return node_hash(self._range(lo, lo + k), self._range(lo + k, hi))

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self._size:
            raise ValueError(f"tree size {size} is outside 0..{self._size}")

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is outside 0..{size - 1}")


def root_from_inclusion_proof(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes]
) -> bytes | None:
    """RFC 9162 2.1.3.2 steps 1-4: the root ``path`` leads to, or None if malformed."""
    if not 0 <= index < tree_size or any(len(p) != HASH_SIZE for p in path):
        return None
    fn, sn = index, tree_size - 1
    r = leaf
    for p in path:
        if sn == 0:
            return None  # longer than the tree is high
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:  # fn == sn: skip the levels where this node has no right sibling
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2: does ``path`` prove leaf hash ``leaf`` at ``index`` under ``root``?"""
    return root_from_inclusion_proof(leaf, index, tree_size, path) == root


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    path: Sequence[bytes],
) -> bool:
    """RFC 9162 2.1.4.2: does ``path`` prove the tree of ``second_root`` extends ``first_root``?"""
    if any(len(p) != HASH_SIZE for p in path):
        return False
    if first_size == second_size:
        return first_size > 0 and not path and first_root == second_root
    if not 0 < first_size < second_size or not path:
        return False  # step 1: an empty path proves nothing
    nodes = list(path)
    if first_size & (first_size - 1) == 0:  # step 2: the old tree is a whole subtree
        nodes.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]  # step 5
    for c in nodes[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root  # step 7
