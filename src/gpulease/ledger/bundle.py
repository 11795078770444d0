"""Export bundles, and ``verify_bundle``: an auditor's check that needs nothing else.

The format (``gpulease-ledger-bundle/1``), one JSON document::

    {"format": "gpulease-ledger-bundle/1",
     "records": [<record>, ...],           # leaf i is the RFC 8785 form of records[i]
     "leaf_hashes": ["<hex>", ...],        # the leaf hashes the ledger stored at append time
     "heads": [<signed tree head>, ...],   # heads.SignedTreeHead.to_json
     "keys": [<key period>, ...]}          # heads.KeyPeriod.to_json

How the first bad record is named. A signed head commits to the root of the first
``tree_size`` leaves and to nothing finer, so the verifier works in two steps:

1. *Which signed interval.* Heads whose signature and key period check out are taken in
   order of size ``s1 < s2 < ...``. The records are streamed through a Merkle frontier
   (constant memory) and the recomputed root compared at each ``s_j``. If the roots agree up
   to ``s_(j-1)`` and differ at ``s_j``, records ``[0, s_(j-1))`` are exactly what was signed
   (SHA-256 is collision resistant) and the first bad record lies in ``[s_(j-1), s_j)``.
2. *Which record.* The stored leaf hashes are streamed through a second frontier (only
   once the records have failed a head: an untouched bundle is hashed once). If they
   reproduce the roots of every head up to ``s_j``, they are what was signed, and the first
   index ``i >= s_(j-1)`` where a record's hash differs from its stored leaf hash is the
   first bad record, named exactly. It is classified by where the two hashes are found
   further on: the record's hash later among the stored hashes and the stored hash later
   among the records is a *reorder*; only the record's hash found later (the signed record
   ``i`` is gone) a *deletion*; only the stored hash found later (record ``i`` was never
   signed) an *insertion*; neither a *modification*. Fewer records than a head's size is a
   deletion at the end.

   If the stored hashes were rewritten too (they no longer reproduce ``s_j``'s root), nothing
   in the bundle can tell which record of ``[s_(j-1), s_j)`` changed: the finding names that
   range (and the first record whose hash disagrees with its stored hash, as a suspect). The
   precision is therefore the distance between signed heads: sign heads often (every few
   thousand records, and on demand) to keep it small.

Records after the last signed head are not covered by any signature; the report counts them,
and one whose hash differs from its stored leaf hash is still a finding. A stored leaf hash
that differs from a record the heads prove intact is reported too (someone edited the
ledger's hash column), though no record is bad. A head whose
signature or key period fails, and two valid heads of one size with different roots (the log
forked), are findings too. The keys in a bundle are the operator's own word: an auditor who
holds published key ids or earlier heads passes them (``trusted_keys``, ``known_heads``) so a
rewritten history re-signed with a fresh key is caught; :attr:`Report.key_ids` lists the keys
the verdict rests on, to compare with the published ones.

Invariants: pure (no clock, no files); the verdict depends only on the bundle and the
auditor's arguments; ``verify_bundle(build_bundle(...))`` of an untouched ledger has no
finding; memory beyond the bundle itself is the records' leaf hashes (32 bytes each), the
frontiers and, only when classifying, a set of the hashes after the first bad record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gpulease.domain.errors import InvalidRequest
from gpulease.ledger.canonical import CanonicalJsonError, canonical_json, parse_json
from gpulease.ledger.heads import KeyPeriod, SignedTreeHead, check_tree_head
from gpulease.ledger.merkle import HASH_SIZE, MerkleFrontier, leaf_hash

BUNDLE_FORMAT = "gpulease-ledger-bundle/1"
_UNHASHABLE = b"\xff" * HASH_SIZE  # stands for a record with no canonical form


class FindingKind(StrEnum):
    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    CHANGED_IN_RANGE = "changed_in_range"  # stored hashes rewritten too: a range, not a record
    UNCANONICAL = "uncanonical"  # a record with no RFC 8785 form
    STORED_HASH_CHANGED = "stored_hash_changed"  # the record is intact, its stored hash not
    BAD_HEAD = "bad_head"
    FORKED = "forked"
    NO_HEAD = "no_head"


RECORD_KINDS = frozenset(
    {
        FindingKind.MODIFIED,
        FindingKind.DELETED,
        FindingKind.INSERTED,
        FindingKind.REORDERED,
        FindingKind.CHANGED_IN_RANGE,
        FindingKind.UNCANONICAL,
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong. ``index`` is the record's position (0-based) when it is known;
    ``span`` the half-open range of positions the first bad record lies in."""

    kind: FindingKind
    message: str
    index: int | None = None
    span: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Report:
    record_count: int
    verified_heads: tuple[int, ...]  # sizes of the heads whose signature checked out
    covered: int  # records [0, covered) are exactly what a verified head signed
    key_ids: tuple[str, ...]  # the keys the verdict rests on
    findings: tuple[Finding, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def uncovered(self) -> int:
        """Records after the last verified head: no signature covers them yet."""
        return max(self.record_count - self.covered, 0)

    @property
    def first_bad_record(self) -> Finding | None:
        """The finding about the earliest record, if any record is bad."""
        records = [f for f in self.findings if f.kind in RECORD_KINDS]
        return min(records, key=_position, default=None)

    def summary(self) -> str:
        if self.ok:
            return (
                f"ok: {self.record_count} records, {self.covered} covered by "
                f"{len(self.verified_heads)} signed heads, {self.uncovered} not yet signed"
            )
        return "; ".join(f.message for f in self.findings)


def _position(finding: Finding) -> int:
    if finding.index is not None:
        return finding.index
    return finding.span[0] if finding.span else 0


@dataclass(frozen=True, slots=True)
class Bundle:
    records: tuple[Any, ...]
    leaf_hashes: tuple[bytes, ...]
    heads: tuple[SignedTreeHead, ...]
    keys: tuple[KeyPeriod, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "heads": [head.to_json() for head in self.heads],
            "keys": [key.to_json() for key in self.keys],
            "leaf_hashes": [leaf.hex() for leaf in self.leaf_hashes],
            "records": list(self.records),
        }

    def dumps(self) -> bytes:
        """The bundle's bytes (canonical JSON, so two exports of one ledger are identical)."""
        return canonical_json(self.to_json())

    @classmethod
    def loads(cls, data: str | bytes) -> Bundle:
        """Read a bundle strictly (duplicate names, NaN, wrong format: refused)."""
        document = parse_json(data)
        if not isinstance(document, Mapping) or document.get("format") != BUNDLE_FORMAT:
            raise InvalidRequest(f"not a {BUNDLE_FORMAT} document")
        try:
            records, leaves = document["records"], document["leaf_hashes"]
            heads, keys = document["heads"], document["keys"]
        except KeyError as error:
            raise InvalidRequest(f"the bundle lacks {error.args[0]!r}") from error
        if not all(isinstance(part, list) for part in (records, leaves, heads, keys)):
            raise InvalidRequest("records, leaf_hashes, heads and keys must be lists")
        try:
            leaf_hashes = tuple(bytes.fromhex(leaf) for leaf in leaves)
        except (TypeError, ValueError) as error:
            raise InvalidRequest("a leaf hash is not hex") from error
        return cls(
            records=tuple(records),
            leaf_hashes=leaf_hashes,
            heads=tuple(SignedTreeHead.from_json(head) for head in heads),
            keys=tuple(KeyPeriod.from_json(key) for key in keys),
        )


def build_bundle(
    records: Sequence[Any],
    heads: Iterable[SignedTreeHead],
    keys: Iterable[KeyPeriod],
    leaf_hashes: Sequence[bytes] | None = None,
) -> Bundle:
    """A bundle of ``records`` (leaf hashes recomputed unless the stored ones are given)."""
    leaves = (
        tuple(leaf_hashes)
        if leaf_hashes is not None
        else tuple(leaf_hash(canonical_json(record)) for record in records)
    )
    return Bundle(tuple(records), leaves, tuple(heads), tuple(keys))


def record_leaf_hash(record: Any) -> bytes:
    """The leaf hash of one record: SHA-256(0x00 || RFC 8785 bytes)."""
    return leaf_hash(canonical_json(record))


def verify_bundle(
    bundle: Bundle | str | bytes,
    *,
    trusted_keys: Sequence[KeyPeriod] | None = None,
    known_heads: Iterable[SignedTreeHead] = (),
) -> Report:
    """Check every record of ``bundle`` against its signed heads; name the first bad record.

    ``trusted_keys`` replaces the bundle's own keys (an auditor's pinned keys);
    ``known_heads`` are heads the auditor kept from earlier publications, checked like the
    bundle's own.
    """
    if not isinstance(bundle, Bundle):
        bundle = Bundle.loads(bundle)
    findings: list[Finding] = []
    hashes: list[bytes] = []
    for index, record in enumerate(bundle.records):
        try:
            hashes.append(record_leaf_hash(record))
        except CanonicalJsonError as error:
            hashes.append(_UNHASHABLE)
            if any(f.kind is FindingKind.UNCANONICAL for f in findings):
                continue  # the first is the one to fix; the tree check names the rest
            findings.append(
                Finding(
                    FindingKind.UNCANONICAL,
                    f"record {index} has no canonical form: {error.message}",
                    index=index,
                )
            )
    return verify_leaves(
        hashes,
        bundle.leaf_hashes,
        bundle.heads,
        tuple(trusted_keys) if trusted_keys is not None else bundle.keys,
        known_heads=known_heads,
        findings=findings,
    )


def verify_leaves(
    hashes: Sequence[bytes],
    stored: Sequence[bytes],
    heads: Iterable[SignedTreeHead],
    keys: Sequence[KeyPeriod],
    *,
    known_heads: Iterable[SignedTreeHead] = (),
    findings: Iterable[Finding] = (),
) -> Report:
    """:func:`verify_bundle` once the records are hashed: ``hashes`` the records' leaf
    hashes as recomputed, ``stored`` the leaf hashes the ledger stored (the database's
    own verifier streams the records and keeps only their hashes). ``findings`` are
    reported first (what the caller found while hashing)."""
    findings = list(findings)
    valid = _valid_heads((*heads, *known_heads), keys, findings)
    sizes = sorted(size for size in valid if size > 0)
    if not sizes:
        findings.append(Finding(FindingKind.NO_HEAD, "no valid signed head commits to records"))

    signed = [valid[s] for s in sizes]
    covered, mismatch = _signed_prefix(hashes, signed)
    edited = _first_difference(hashes, stored, 0, min(covered, len(stored)))
    if edited is not None:
        findings.append(
            Finding(
                FindingKind.STORED_HASH_CHANGED,
                f"the stored leaf hash of record {edited} was changed; the record itself is "
                "what a signed head committed to",
                index=edited,
            )
        )
    if mismatch is not None:
        stored_ok = _stored_reproduce(stored, [h for h in signed if h.tree_size <= mismatch])
        findings.append(_locate(hashes, stored, covered, mismatch, stored_ok))
    else:
        tail = _first_difference(hashes, stored, covered, max(len(hashes), len(stored)))
        if tail is not None:
            findings.append(
                Finding(
                    _classify(hashes, stored, tail),
                    f"record {tail} (after the last signed head, at {covered}) differs from "
                    "the leaf hash the ledger stored for it",
                    index=tail,
                )
            )
    used = sorted({valid[s].head.key_id for s in sizes})
    return Report(
        record_count=len(hashes),
        verified_heads=tuple(sizes),
        covered=covered,
        key_ids=tuple(used),
        findings=tuple(findings),
    )


def _valid_heads(
    heads: Iterable[SignedTreeHead], keys: Sequence[KeyPeriod], findings: list[Finding]
) -> dict[int, SignedTreeHead]:
    """The heads whose signature and key period check out, by size; a bad head and two
    valid heads of one size with different roots (a fork) are added to ``findings``."""
    valid: dict[int, SignedTreeHead] = {}
    for head in heads:
        reason = check_tree_head(head, keys)
        if reason is not None:
            findings.append(Finding(FindingKind.BAD_HEAD, reason))
            continue
        earlier = valid.get(head.tree_size)
        if earlier is not None and earlier.root_hash != head.root_hash:
            findings.append(
                Finding(
                    FindingKind.FORKED,
                    f"two valid heads of size {head.tree_size} have different roots: "
                    "the log was forked or rewritten",
                )
            )
            continue
        valid[head.tree_size] = head
    return valid


class LeafStream:
    """:func:`verify_leaves` for a ledger with nothing wrong, streamed: memory is one
    frontier and the heads, whatever the number of records. Feed each record's recomputed
    and stored leaf hashes in order (:meth:`add`); at the first sign of anything wrong (a
    record differing from its stored hash, a root differing from a head's, a bad or forked
    head, no valid head) it stops being :attr:`clean`, and the caller runs
    :func:`verify_leaves` over the whole ledger, which names the finding. While clean,
    :meth:`report` is exactly :func:`verify_leaves`' report (no findings)."""

    def __init__(self, heads: Iterable[SignedTreeHead], keys: Sequence[KeyPeriod]) -> None:
        found: list[Finding] = []
        valid = _valid_heads(heads, keys, found)
        self.sizes = sorted(size for size in valid if size > 0)
        self._roots = [valid[size].root_hash for size in self.sizes]
        self._keys = tuple(sorted({valid[size].head.key_id for size in self.sizes}))
        self._next = 0  # the next head to compare
        self._frontier = MerkleFrontier()
        self.clean = not found and bool(self.sizes)

    def add(self, recomputed: bytes, stored: bytes) -> bool:
        """One more record; False once anything is wrong (then stop feeding)."""
        if not self.clean or recomputed != stored:
            self.clean = False
            return False
        frontier = self._frontier
        frontier.append_leaf_hash(recomputed)
        while self._next < len(self.sizes) and self.sizes[self._next] == frontier.size:
            if frontier.root() != self._roots[self._next]:
                self.clean = False
                return False
            self._next += 1
        return True

    def report(self) -> Report | None:
        """The report once every record was fed; None unless clean (every head reached)."""
        if not self.clean or self._next < len(self.sizes):
            return None
        return Report(
            record_count=self._frontier.size,
            verified_heads=tuple(self.sizes),
            covered=self.sizes[-1],
            key_ids=self._keys,
        )


def _signed_prefix(
    hashes: Sequence[bytes], heads: Sequence[SignedTreeHead]
) -> tuple[int, int | None]:
    """Stream the records' leaf hashes through a frontier, comparing roots at each head.

    Returns (covered, the size of the first head the records fail, or None).
    """
    frontier = MerkleFrontier()
    covered = 0
    for head in heads:
        size = head.tree_size
        while frontier.size < min(size, len(hashes)):
            frontier.append_leaf_hash(hashes[frontier.size])
        if frontier.size < size or frontier.root() != head.root_hash:
            return covered, size
        covered = size
    return covered, None


def _stored_reproduce(stored: Sequence[bytes], heads: Sequence[SignedTreeHead]) -> bool:
    """Do the stored leaf hashes give every one of ``heads``' roots? (Only asked once the
    records have failed a head, so an untouched bundle is hashed once.)"""
    frontier = MerkleFrontier()
    for head in heads:
        while frontier.size < min(head.tree_size, len(stored)):
            frontier.append_leaf_hash(stored[frontier.size])
        if frontier.size < head.tree_size or frontier.root() != head.root_hash:
            return False
    return True


def _locate(
    hashes: Sequence[bytes], stored: Sequence[bytes], lo: int, hi: int, stored_ok: bool
) -> Finding:
    """The finding for the first bad record, known to lie in ``[lo, hi)``."""
    first = _first_difference(hashes, stored, lo, hi)
    if stored_ok and first is not None:
        kind = _classify(hashes, stored, first)
        return Finding(
            kind,
            f"record {first} was {kind.value} (records before {lo} match a signed head; the "
            f"stored leaf hashes match the head of size {hi})",
            index=first,
            span=(lo, hi),
        )
    suspect = "" if first is None else f"; record {first} disagrees with its stored hash"
    return Finding(
        FindingKind.CHANGED_IN_RANGE,
        f"a record in [{lo}, {hi}) was changed, deleted, inserted or moved: records before "
        f"{lo} match a signed head, the head of size {hi} does not match, and the stored leaf "
        f"hashes were rewritten too{suspect}",
        index=None,
        span=(lo, hi),
    )


def _first_difference(
    hashes: Sequence[bytes], stored: Sequence[bytes], lo: int, hi: int
) -> int | None:
    for index in range(lo, hi):
        if index >= len(hashes) or index >= len(stored) or hashes[index] != stored[index]:
            return index
    return None


def _classify(hashes: Sequence[bytes], stored: Sequence[bytes], index: int) -> FindingKind:
    if index >= len(hashes):
        return FindingKind.DELETED  # the records end before the signed ones do
    if index >= len(stored):
        return FindingKind.INSERTED
    if hashes[index] == _UNHASHABLE:
        return FindingKind.MODIFIED
    record_later = hashes[index] in set(stored[index + 1 :])
    stored_later = stored[index] in set(hashes[index + 1 :])
    if record_later and stored_later:
        return FindingKind.REORDERED
    if record_later:
        return FindingKind.DELETED
    if stored_later:
        return FindingKind.INSERTED
    return FindingKind.MODIFIED
