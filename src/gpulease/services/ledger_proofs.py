"""Ledger proofs for the API and the reports: a record's inclusion proof, consistency
between two signed heads, and a report's ``ledger`` section (``services.ledger`` signs the
heads they lead to).

Who may do what: consistency proofs are public (any authenticated user); a record's inclusion
proof is staff's for every record and a tenant's only for records about itself (its tenant,
its users, leases and jobs); another tenant's record answers exactly as a missing one. Only
staff make a head be signed on demand (a signature reads every leaf); a tenant whose record
no head covers yet is told to ask again after the next periodic head. A record committed but
not yet sequenced (``services.ledger_sequencer``) has no position: staff's request sequences
the queue first; a tenant is told it is not yet sequenced and to ask again after the maximum
merge delay (409, never a 500).

Each process keeps one Merkle tree of the ledger's stored leaf hashes (64 bytes a record),
extended as the ledger grows and rebuilt when its last leaf is no longer the stored one, so a
proof costs O(log n) node hashes, not a pass over the leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gpulease.domain.access import Action, Principal, Scope
from gpulease.domain.errors import Conflict, InvalidRequest, NotFound
from gpulease.ledger.heads import SignedTreeHead
from gpulease.ledger.merkle import MerkleTree
from gpulease.ledger.proofs import ConsistencyProof, InclusionProof, RecordProof
from gpulease.ledger.records import audit_record
from gpulease.persistence import ledger_store
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Job, Lease, User
from gpulease.services.context import ServiceContext
from gpulease.services.ledger import NoKey, key_periods, latest_head, sign_head, signed_of
from gpulease.services.ledger_sequencer import sequence

_TREES: dict[str, MerkleTree] = {}
_TREES_GUARD = threading.Lock()


def _tree(tx: Tx, url: str, size: int) -> MerkleTree:
    """A Merkle tree of at least the first ``size`` stored leaves (kept per database and
    extended; rebuilt when its last leaf is no longer the stored one)."""
    session = tx.session
    with _TREES_GUARD:
        tree = _TREES.get(url)
        if tree is not None and tree.size > 0:
            last = ledger_store.entry_at(session, tree.size - 1)
            if last is None or last.leaf_hash != tree.leaf_hash(tree.size - 1):
                tree = None
        if tree is None:
            tree = MerkleTree()
        if tree.size < size:
            for entry in ledger_store.entries(session, start=tree.size):
                if entry.position != tree.size:
                    raise Conflict(
                        "the ledger has a missing position: run `gpulease ledger verify`"
                    )
                tree.append_leaf_hash(entry.leaf_hash)
                if tree.size >= size:
                    break
        if tree.size < size:
            raise Conflict(
                f"the ledger holds fewer than {size} positions: run `gpulease ledger verify`"
            )
        _TREES[url] = tree
        return tree


def _subject_tenant(tx: Tx, subject_type: str, subject_id: str) -> str | None:
    """The tenant an audit record is about (None: the operator's own records)."""
    if subject_type == "tenant":
        return subject_id
    session = tx.session
    row: Job | Lease | User | None
    if subject_type == "job":
        row = session.get(Job, subject_id)
    elif subject_type == "lease":
        row = session.get(Lease, subject_id)
    elif subject_type == "user":
        row = session.get(User, subject_id)
    else:
        return None
    return None if row is None else row.tenant_id


@dataclass(frozen=True, slots=True)
class Cited:
    """A ledger record as a report cites it: its position, audit id and proof."""

    position: int
    audit_id: int
    proof: RecordProof

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "audit_id": self.audit_id, **self.proof.to_json()}


def prove(
    ctx: ServiceContext,
    principal: Principal,
    *,
    audit_id: int | None = None,
    position: int | None = None,
    tree_size: int | None = None,
) -> Cited:
    """A record's inclusion proof under the head of ``tree_size`` (default: the latest,
    signed now if none covers the record yet and the caller is staff: a tenant asks again
    after the next periodic head)."""
    scope = principal.scope(Action.LEDGER_PROVE)
    if audit_id is None and position is None:
        raise InvalidRequest("name an audit record or a position", field="audit_id")
    what = f"audit record {audit_id}" if audit_id is not None else f"position {position}"
    missing = NotFound(f"no ledger record at {what}", record=what)
    for attempt in (1, 2):
        with ctx.db.transaction(write=False) as tx:
            if audit_id is not None:
                entry = ledger_store.entry_of(tx.session, audit_id)
                fields = ledger_store.queued(tx.session, audit_id) if entry is None else None
            else:
                assert position is not None
                entry, fields = ledger_store.entry_at(tx.session, position), None
            if entry is not None:
                fields = entry.fields
            if fields is None:
                raise missing
            if scope is not Scope.ALL:
                tenant = _subject_tenant(tx, fields["subject_type"], fields["subject_id"])
                if tenant is None or tenant != principal.tenant_id:
                    raise missing  # another tenant's record answers as a missing one
            head_row = ledger_store.head(tx.session, tree_size)
        if entry is not None:
            break
        if scope is not Scope.ALL or attempt == 2:  # committed, not yet given its position
            raise Conflict(
                f"{what} is not yet sequenced: it has no ledger position yet; records get "
                f"theirs within {ctx.settings.ledger_max_merge_delay_s:g} s of their commit: "
                "ask again then",
                record=what,
            )
        sequence(ctx)  # staff: give it its position now
    assert entry is not None
    if tree_size is not None and head_row is None:
        raise NotFound(f"no head of size {tree_size}", tree_size=tree_size)
    if head_row is None or head_row.tree_size <= entry.position:
        if tree_size is not None:
            raise InvalidRequest(
                f"the head of size {tree_size} does not cover position {entry.position}",
                field="tree_size",
            )
        if scope is not Scope.ALL:  # signing reads every leaf: staff's to ask for
            raise Conflict(
                f"position {entry.position} is not yet covered by a signed head; heads are "
                f"signed every {ctx.settings.ledger_head_interval_s:g} s: ask again then",
                position=entry.position,
            )
        signed = sign_head(ctx)
        assert signed is not None
    else:
        signed = signed_of(head_row)
    return cite(ctx, [entry], signed)[0]


def cite(
    ctx: ServiceContext, entries: Iterable[ledger_store.Entry], head: SignedTreeHead
) -> list[Cited]:
    """Inclusion proofs of ``entries`` (with their audit rows) under ``head``."""
    with ctx.db.transaction(write=False) as tx:
        tree = _tree(tx, ctx.db.url, head.tree_size)
    cited = []
    for entry in entries:
        assert entry.fields is not None
        proof = InclusionProof.from_tree(tree, entry.position, head.tree_size)
        record = RecordProof(audit_record(entry.fields, read_back=True), proof, head)
        cited.append(Cited(entry.position, entry.audit_id, record))
    return cited


def cite_audit_ids(ctx: ServiceContext, audit_ids: Sequence[int]) -> dict[str, Any]:
    """A report's ``ledger`` section: each cited audit record's position and inclusion
    proof under the latest head (signed now when it does not cover them), and the key
    periods to check them; records not in the ledger are listed apart, never dropped. With
    no signing key on this host the positions are given without proofs (``head`` None).
    What is queued is sequenced first, so every committed record has its position."""
    sequence(ctx)
    with ctx.db.transaction(write=False) as tx:
        found = ledger_store.entries_of(tx.session, audit_ids)
    entries = sorted(found.values(), key=lambda e: e.position)
    section: dict[str, Any] = {
        "head": None,
        "keys": [],
        "records": [{"position": e.position, "audit_id": e.audit_id} for e in entries],
        "not_in_ledger": [a for a in audit_ids if a not in found],
    }
    if not entries:
        return section
    try:
        head: SignedTreeHead | None = latest_head(ctx)
    except NotFound:
        head = None
    if head is None or head.tree_size <= entries[-1].position:
        try:
            head = sign_head(ctx)
        except NoKey:
            section["note"] = "no signing key on this host: positions without proofs"
            return section
    assert head is not None
    section["head"] = head.to_json()
    section["keys"] = [period.to_json() for period in key_periods(ctx)]
    section["records"] = [c.to_json() for c in cite(ctx, entries, head)]
    return section


def consistency(ctx: ServiceContext, first: int, second: int) -> dict[str, Any]:
    """The consistency proof between two signed heads, with both heads."""
    if not 0 < first <= second:
        raise InvalidRequest("need 0 < first <= second", field="first")
    older, newer = latest_head(ctx, first), latest_head(ctx, second)
    with ctx.db.transaction(write=False) as tx:
        tree = _tree(tx, ctx.db.url, second)
    proof = ConsistencyProof.from_tree(tree, first, second)
    return {"first": older.to_json(), "second": newer.to_json(), "proof": proof.to_json()}
