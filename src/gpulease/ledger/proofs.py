"""Proofs that travel: a record's inclusion under a signed head, and consistency of two heads.

A report handed to a regulator cites a record by its ledger position and carries a
:class:`RecordProof`: the record, its inclusion proof (RFC 9162 audit path) and the signed
head the proof leads to. Anyone holding the operator's public keys checks it with
:func:`check_record_proof` and nothing else; anyone who kept an earlier published head checks
that the head in the report extends it with a :class:`ConsistencyProof`
(:func:`check_head_consistency`), which is how a later rewrite of history is caught.

JSON forms (hashes in lower-case hex) are part of the exported format::

    inclusion:   {"leaf_index": i, "tree_size": n, "path": ["<hex>", ...]}
    consistency: {"first_size": m, "second_size": n, "path": ["<hex>", ...]}
    record:      {"record": <record>, "inclusion": <inclusion>, "head": <signed head>}

Invariants: pure; each ``check_`` function returns None when the proof holds and otherwise
a sentence saying what failed; changing any byte of the record, a path hash or a signed field
of the head makes the check fail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.canonical import CanonicalJsonError, canonical_json
from gpulease.ledger.heads import KeyPeriod, SignedTreeHead, check_tree_head
from gpulease.ledger.merkle import (
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]

    @classmethod
    def from_tree(cls, tree: MerkleTree, leaf_index: int, tree_size: int) -> InclusionProof:
        return cls(leaf_index, tree_size, tuple(tree.inclusion_proof(leaf_index, tree_size)))

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "path": [node.hex() for node in self.path],
            "tree_size": self.tree_size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InclusionProof:
        return cls(_count(data, "leaf_index"), _count(data, "tree_size"), _hashes(data.get("path")))


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first_size: int
    second_size: int
    path: tuple[bytes, ...]

    @classmethod
    def from_tree(cls, tree: MerkleTree, first_size: int, second_size: int) -> ConsistencyProof:
        return cls(first_size, second_size, tuple(tree.consistency_proof(first_size, second_size)))

    def to_json(self) -> dict[str, Any]:
        return {
            "first_size": self.first_size,
            "path": [node.hex() for node in self.path],
            "second_size": self.second_size,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsistencyProof:
        return cls(
            _count(data, "first_size"), _count(data, "second_size"), _hashes(data.get("path"))
        )


@dataclass(frozen=True, slots=True)
class RecordProof:
    record: Any
    inclusion: InclusionProof
    head: SignedTreeHead

    def to_json(self) -> dict[str, Any]:
        return {
            "head": self.head.to_json(),
            "inclusion": self.inclusion.to_json(),
            "record": self.record,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordProof:
        try:
            return cls(
                record=data["record"],
                inclusion=InclusionProof.from_json(data["inclusion"]),
                head=SignedTreeHead.from_json(data["head"]),
            )
        except KeyError as error:
            raise InvalidRequest(f"a record proof lacks {error.args[0]!r}") from error


def check_record_proof(proof: RecordProof, keys: Iterable[KeyPeriod]) -> str | None:
    """Why ``proof`` does not show its record at its position under a valid head, or None."""
    reason = check_tree_head(proof.head, keys)
    if reason is not None:
        return reason
    inclusion = proof.inclusion
    if inclusion.tree_size != proof.head.tree_size:
        return (
            f"the inclusion proof is for a tree of {inclusion.tree_size} records, the head "
            f"signs {proof.head.tree_size}"
        )
    try:
        leaf = leaf_hash(canonical_json(proof.record))
    except CanonicalJsonError as error:
        return f"the record has no canonical form: {error.message}"
    if not verify_inclusion(
        leaf, inclusion.leaf_index, inclusion.tree_size, inclusion.path, proof.head.root_hash
    ):
        return (
            f"the record is not at position {inclusion.leaf_index} of the tree the head of "
            f"size {proof.head.tree_size} signs"
        )
    return None


def check_head_consistency(
    older: SignedTreeHead,
    newer: SignedTreeHead,
    proof: ConsistencyProof,
    keys: Iterable[KeyPeriod],
) -> str | None:
    """Why ``newer`` is not a valid append-only extension of ``older``, or None."""
    keys = tuple(keys)
    for head in (older, newer):
        reason = check_tree_head(head, keys)
        if reason is not None:
            return reason
    if (proof.first_size, proof.second_size) != (older.tree_size, newer.tree_size):
        return (
            f"the proof is between sizes {proof.first_size} and {proof.second_size}, the heads "
            f"are of sizes {older.tree_size} and {newer.tree_size}"
        )
    if not verify_consistency(
        older.tree_size, newer.tree_size, older.root_hash, newer.root_hash, proof.path
    ):
        return (
            f"the head of size {newer.tree_size} does not extend the head of size "
            f"{older.tree_size}: the history between them was rewritten"
        )
    return None


def _count(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequest(f"{name} must be a non-negative integer, not {value!r}")
    return value


def _hashes(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(node, str) for node in value):
        raise InvalidRequest("a proof's path must be a list of hex strings")
    try:
        return tuple(bytes.fromhex(node) for node in value)
    except ValueError as error:
        raise InvalidRequest("a proof's path holds a hash that is not hex") from error
