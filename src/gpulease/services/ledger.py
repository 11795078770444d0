"""The ledger as the operator runs it: keys, signed tree heads, verification, export.

Design (docs/ledger.md). Every audit record is queued in its own transaction and given its
position by the sequencer (``persistence.ledger_store``, ``services.ledger_sequencer``); this
module does the rest, each use case thin over the pure core (``gpulease.ledger``):

* keys: :func:`ensure_key` (``gpulease init``) generates the first Ed25519 key, its private
  half a file of mode 0600 under the key directory (``Settings.ledger_key_dir``, default
  ``data_dir/ledger``; the files are ``services.ledger_keys``'s), its public half and period
  in ``ledger_keys``, and an audit record
  ``ledger.key_created``; :func:`rotate_key` ends the current key's period, starts a new
  key's and says so in the ledger itself (``ledger.key_rotated``: old and new key ids, the
  new public key and the old key's endorsement, ``ledger.rotation``), then signs a head with
  the new key so the rotation is covered.
* heads: :func:`sign_head` sequences what is queued, then signs the sequenced prefix
  (counter and leaves read in one snapshot: a head covers only sequenced records), only
  after checking that the stored leaves reproduce the latest head (a ledger rewritten
  underneath is never signed over), stores it and appends it to the
  published file (JSON lines). :class:`HeadSigner` is the scheduler leader's periodic hook.
* :func:`verify` reports records queued longer than the maximum merge delay, sequences the
  rest, recomputes every leaf from the audit rows, checks positions, the counter,
  audit rows outside the ledger, every stored head's signature, key period and root, the
  chain of key endorsements, and names the first record modified, deleted, inserted or
  reordered (``ledger.bundle``).
* :func:`export` writes a bundle an auditor checks offline (``gpulease ledger
  verify-bundle``); ``services.ledger_proofs`` answers the API's and the reports' proofs.

Who may do what: heads are public (publishing them is the point); signing on demand is the
operator-admin's (:func:`sign_now`); keys are handled only on the host that holds the key
directory (the CLI).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import Conflict, InvalidRequest, NotFound
from gpulease.ledger.bundle import Bundle, FindingKind, LeafStream, build_bundle, verify_leaves
from gpulease.ledger.heads import (
    KeyPeriod,
    SignedTreeHead,
    TreeHead,
    format_time,
    sign_tree_head,
)
from gpulease.ledger.keys import key_id, public_key_bytes
from gpulease.ledger.merkle import HASH_SIZE, MerkleFrontier
from gpulease.ledger.records import audit_record, record_leaf
from gpulease.ledger.rotation import KeyChain, endorse
from gpulease.persistence import ledger_store
from gpulease.persistence.db import DuplicateRecord
from gpulease.persistence.tables import LedgerHead, LedgerKey
from gpulease.services import audit
from gpulease.services.context import ServiceContext
from gpulease.services.ledger_keys import (
    KeyFileError,
    key_file,
    load_private_key,
    new_key_file,
)
from gpulease.services.ledger_sequencer import sequence
from gpulease.services.periodic import Periodic
from gpulease.settings import Settings

log = logging.getLogger("gpulease.ledger")
ACTOR = "ledger"
_GONE = b"\x00" * HASH_SIZE  # stands for a position or an audit row that is missing


# ------------------------------------------------------------------ paths
def heads_file(settings: Settings) -> Path:
    """Published: beside the key directory, never in it (that one is 0700)."""
    return settings.ledger_heads_file or settings.data_dir / "ledger-heads.jsonl"


class NoKey(Conflict):
    """No head can be signed here: the ledger has no signing key yet (``gpulease init``
    makes it), or this host does not hold its private key file (the message never names
    the file's path)."""


def _period(row: LedgerKey) -> KeyPeriod:
    return KeyPeriod(bytes(row.public_key), row.valid_from, row.valid_until)


def signed_of(row: LedgerHead) -> SignedTreeHead:
    """A stored head as the core's signed head."""
    head = TreeHead(row.tree_size, bytes(row.root_hash), row.signed_at, row.key_id)
    return SignedTreeHead(head, bytes(row.signature))


# ------------------------------------------------------------------ keys
def ensure_key(ctx: ServiceContext) -> str:
    """The current key's id; the first key is made (and recorded) when there is none."""
    with ctx.db.transaction(write=False) as tx:
        current = ledger_store.current_key(tx.session)
    if current is not None:
        return current.key_id
    kid, public = new_key_file(ctx.settings)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        tx.lock("ledger-keys")
        if ledger_store.current_key(tx.session, lock=True) is not None:
            raise Conflict("another process made the ledger's key meanwhile; run init again")
        ledger_store.add_key(tx.session, key_id=kid, public_key=public, valid_from=now)
        audit.record(
            tx,
            at=now,
            actor=ACTOR,
            action="ledger.key_created",
            subject_type="ledger_key",
            subject_id=kid,
            after={"key_id": kid, "public_key": public.hex(), "valid_from": format_time(now)},
        )
    return kid


def rotate_key(ctx: ServiceContext, *, reason: str = "", endorsed: bool = True) -> tuple[str, str]:
    """End the current key's period and start a new key's; recorded in the ledger with the
    outgoing key's endorsement (``ledger.rotation``), then covered by a head the new key
    signs. ``endorsed=False`` is for a lost old key file only (the record says so).
    Returns (old key id, new key id)."""
    with ctx.db.transaction(write=False) as tx:
        first = ledger_store.current_key(tx.session)
        if first is None:
            raise Conflict("the ledger has no key yet: run `gpulease init`")
    old_private = load_private_key(key_file(ctx.settings, first.key_id)) if endorsed else None
    kid, public = new_key_file(ctx.settings)
    with ctx.db.transaction() as tx:
        tx.lock("ledger-keys")
        current = ledger_store.current_key(tx.session, lock=True)
        assert current is not None
        if current.key_id != first.key_id:
            raise Conflict("the key was rotated meanwhile; run the rotation again")
        latest = ledger_store.head(tx.session)
        now = ctx.now()
        if latest is not None and latest.key_id == current.key_id and latest.signed_at >= now:
            now = latest.signed_at + timedelta(microseconds=1)  # the old key's heads stay in
        endorsement = None if old_private is None else endorse(old_private, public, now)
        ledger_store.end_key(tx.session, current.key_id, now)
        ledger_store.add_key(tx.session, key_id=kid, public_key=public, valid_from=now)
        audit.record(
            tx,
            at=now,
            actor=ACTOR,
            action="ledger.key_rotated",
            subject_type="ledger_key",
            subject_id=kid,
            before={"key_id": current.key_id},
            after={
                "key_id": kid,
                "public_key": public.hex(),
                "valid_from": format_time(now),
                "endorsement": None if endorsement is None else endorsement.hex(),
            },
            reason=reason,
        )
        old = current.key_id
    sign_head(ctx, at_least=now)
    return old, kid


def key_periods(ctx: ServiceContext) -> list[KeyPeriod]:
    with ctx.db.transaction(write=False) as tx:
        return [_period(row) for row in ledger_store.keys(tx.session)]


# ------------------------------------------------------------------ heads
def _frontier_root(leaves: Sequence[bytes], check: LedgerHead | None) -> bytes:
    """The root of ``leaves``; raises if their prefix does not reproduce ``check``'s root."""
    frontier = MerkleFrontier()
    for leaf in leaves:
        if check is not None and frontier.size == check.tree_size:
            _same(frontier, check)
        frontier.append_leaf_hash(leaf)
    if check is not None and frontier.size == check.tree_size:
        _same(frontier, check)
    return frontier.root()


def _same(frontier: MerkleFrontier, check: LedgerHead) -> None:
    if frontier.root() != bytes(check.root_hash):
        raise Conflict(
            f"the stored ledger no longer reproduces the signed head of size "
            f"{check.tree_size}: it was changed; run `gpulease ledger verify`",
            tree_size=check.tree_size,
        )


def sign_head(ctx: ServiceContext, *, at_least: datetime | None = None) -> SignedTreeHead | None:
    """Sign, store and publish a head over the sequenced ledger (what is queued is
    sequenced first); None when it is empty. When the latest head already has this size it
    is returned as it is."""
    sequence(ctx)
    with ctx.db.transaction(write=False) as tx:
        size = ledger_store.size(tx.session)
        latest = ledger_store.head(tx.session)
        current = ledger_store.current_key(tx.session)
        if size == 0:
            return None
        if latest is not None and latest.tree_size == size:
            return signed_of(latest)
        leaves = ledger_store.leaf_hashes(tx.session, size)
    if current is None:
        raise NoKey("the ledger has no signing key: run `gpulease init`")
    if len(leaves) != size:
        raise Conflict(
            f"the ledger counter says {size} records but {len(leaves)} positions are "
            "stored: it was changed; run `gpulease ledger verify`"
        )
    if latest is not None and latest.tree_size > size:
        raise Conflict(f"a head of size {latest.tree_size} exceeds the ledger's {size} records")
    root = _frontier_root(leaves, latest)
    try:
        private = load_private_key(key_file(ctx.settings, current.key_id))
    except KeyFileError as error:  # this host does not hold the key (an API-only server)
        log.warning("cannot sign a ledger head here: %s", error.message)
        raise NoKey(
            f"this server does not hold the ledger's signing key {current.key_id}; heads "
            "are signed where it is (the scheduler's host, or `gpulease ledger head --sign`)"
        ) from None
    if key_id(public_key_bytes(private)) != current.key_id:
        raise Conflict(f"the key file of {current.key_id} holds another key")
    moment = ctx.now()
    if at_least is not None and moment < at_least:
        moment = at_least
    if moment < current.valid_from:
        moment = current.valid_from
    signed = sign_tree_head(private, tree_size=size, root_hash=root, timestamp=moment)
    try:
        with ctx.db.transaction() as tx:
            ledger_store.add_head(
                tx.session,
                tree_size=size,
                root_hash=root,
                signed_at=signed.head.timestamp,
                key_id=current.key_id,
                signature=signed.signature,
            )
    except DuplicateRecord:  # another process signed this size first: that head stands
        with ctx.db.transaction(write=False) as tx:
            row = ledger_store.head(tx.session, size)
            assert row is not None
            return signed_of(row)
    publish(ctx.settings, signed)
    return signed


def publish(settings: Settings, signed: SignedTreeHead) -> None:
    """Append ``signed`` to the published heads file (one JSON document a line)."""
    path = heads_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(signed.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def latest_head(ctx: ServiceContext, tree_size: int | None = None) -> SignedTreeHead:
    with ctx.db.transaction(write=False) as tx:
        row = ledger_store.head(tx.session, tree_size)
        if row is None:
            what = "no signed head yet" if tree_size is None else f"no head of size {tree_size}"
            raise NotFound(what, tree_size=tree_size)
        return signed_of(row)


def sign_now(ctx: ServiceContext, principal: Principal) -> SignedTreeHead | None:
    """:func:`sign_head` on demand (operator-admin)."""
    principal.scope(Action.LEDGER_SIGN)
    return sign_head(ctx)


class HeadSigner(Periodic):
    """The scheduler leader's periodic hook: a head every ``interval_s`` when the ledger
    grew, signed in a thread of its own (it reads every leaf hash to check the last head:
    about a second per million records, which must not delay the next pass). A failure
    (no key file on this host) is logged once and retried at the next interval."""

    name = "gpulease-ledger-head"

    def __init__(self, ctx: ServiceContext, interval_s: float | None = None) -> None:
        super().__init__(interval_s or ctx.settings.ledger_head_interval_s)
        self.ctx = ctx
        self._warned = False

    def run(self) -> SignedTreeHead | None:
        return self.sign()

    def sign(self) -> SignedTreeHead | None:
        try:
            signed = sign_head(self.ctx)
            self._warned = False
            return signed
        except NoKey:
            if not self._warned:
                log.info("the ledger has no signing key (run `gpulease init`): no heads signed")
                self._warned = True
        except Exception:
            if not self._warned:
                log.exception(
                    "could not sign a ledger head; retrying every %.3g s", self.interval_s
                )
                self._warned = True
        return None


# ------------------------------------------------------------------ verification
@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # a bundle.FindingKind value, or "counter"
    message: str
    position: int | None = None
    audit_id: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    size: int  # positions stored
    covered: int  # positions [0, covered) are what a verified head signed
    heads: tuple[int, ...]
    key_ids: tuple[str, ...]
    problems: tuple[Problem, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())  # worth a look, not a failure

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_record(self) -> Problem | None:
        records = [p for p in self.problems if p.kind in _RECORD_KINDS]
        placed = [p for p in records if p.position is not None]
        if placed:
            return min(placed, key=lambda p: p.position or 0)
        return records[0] if records else None

    def summary(self) -> str:
        if self.ok:
            return (
                f"ok: {self.size} records, {self.covered} covered by {len(self.heads)} signed "
                f"heads, {self.size - self.covered} not yet signed"
            )
        first = self.first_bad_record
        lead = f"first bad record: {first.message}; " if first is not None else ""
        return lead + f"{len(self.problems)} problem(s)"


_RECORD_KINDS = {k.value for k in FindingKind} - {"bad_head", "forked", "no_head"}


def _late(ctx: ServiceContext) -> list[Problem]:
    """Records queued longer than the maximum merge delay (before this call sequences
    them): the sequencer did not keep its promise (is the scheduler running?)."""
    mmd = ctx.settings.ledger_max_merge_delay_s
    with ctx.db.transaction(write=False) as tx:
        late = ledger_store.waiting(tx.session, older_than_s=mmd, limit=1)
        count = ledger_store.waiting_count(tx.session, older_than_s=mmd) if late else 0
    if not late:
        return []
    oldest = late[0]
    return [
        Problem(
            "unsequenced",
            f"{count} audit record(s) waited longer than the maximum merge delay ({mmd:g} s) "
            f"for a ledger position, audit record {oldest.audit_id} {oldest.age_s:.1f} s: is "
            "the sequencer (the scheduler process) running?",
            None,
            oldest.audit_id,
        )
    ]


def _stuck(ctx: ServiceContext) -> list[Problem]:
    """Records still queued after sequencing whose audit id already holds a position (a
    row queued behind the ledger's back): the sequencer never places them."""
    with ctx.db.transaction(write=False) as tx:
        stuck = [w for w in ledger_store.waiting(tx.session, limit=100) if w.placed_at is not None]
    return [
        Problem(
            "unsequenced",
            f"audit record {w.audit_id} is queued for a ledger position although it holds "
            f"position {w.placed_at}: queued again behind the ledger's back",
            w.placed_at,
            w.audit_id,
        )
        for w in stuck
    ]


def verify(ctx: ServiceContext) -> Verdict:
    """Check the whole ledger against the database (see the module docstring): records
    queued too long are reported, the queue sequenced, then the ledger checked in one
    streamed pass with bounded memory (:func:`_streamed`); only when that pass finds
    anything wrong is the ledger read again whole to name the first bad record
    (:func:`_whole`)."""
    late = _late(ctx)
    sequence(ctx)
    verdict = _streamed(ctx) or _whole(ctx)
    extra = late + _stuck(ctx)
    if not extra:
        return verdict
    return replace(verdict, problems=verdict.problems + tuple(extra))


def _streamed(ctx: ServiceContext) -> Verdict | None:
    """The verdict of a ledger with nothing wrong, in one pass holding one Merkle frontier
    (``bundle.LeafStream``) and the key records; None at the first sign of anything wrong
    (a position missing, an audit row gone or changed, a counter off, a row outside, a key
    problem, a head that does not match)."""
    chain = KeyChain()
    with ctx.db.transaction(write=False) as tx:
        counter = ledger_store.size(tx.session)
        heads = [signed_of(row) for row in ledger_store.heads(tx.session)]
        keys = [_period(row) for row in ledger_store.keys(tx.session)]
        check = LeafStream(heads, keys)
        count = 0
        for entry in ledger_store.entries(tx.session):
            if not check.clean or entry.position != count or entry.fields is None:
                return None
            check.add(record_leaf(entry.fields, read_back=True), entry.leaf_hash)
            chain.see(entry.position, entry.fields)
            count += 1
        if counter != count or ledger_store.outside(tx.session, limit=1):
            return None
    chain.check_periods(keys)
    report = check.report()
    if report is None or chain.problems:
        return None
    return Verdict(
        size=count,
        covered=report.covered,
        heads=report.verified_heads,
        key_ids=report.key_ids,
        warnings=tuple(chain.warnings),
    )


def _whole(ctx: ServiceContext) -> Verdict:
    """The verdict from the whole ledger held in memory (three lists of a record's size),
    naming the first bad record (``bundle.verify_leaves``)."""
    problems: list[Problem] = []
    hashes: list[bytes] = []
    stored: list[bytes] = []
    ids: list[int | None] = []
    chain = KeyChain()  # the keys as the ledger's own records created and rotated them
    with ctx.db.transaction(write=False) as tx:
        counter = ledger_store.size(tx.session)
        heads = [signed_of(row) for row in ledger_store.heads(tx.session)]
        keys = [_period(row) for row in ledger_store.keys(tx.session)]
        for entry in ledger_store.entries(tx.session):
            while len(stored) < entry.position:  # a position missing: deleted
                gone = len(stored)
                problems.append(
                    Problem("deleted", f"position {gone} is missing from the ledger", gone)
                )
                hashes.append(_GONE)
                stored.append(_GONE)
                ids.append(None)
            stored.append(entry.leaf_hash)
            ids.append(entry.audit_id)
            if entry.fields is None:
                problems.append(
                    Problem(
                        "deleted",
                        f"audit record {entry.audit_id} at position {entry.position} was deleted",
                        entry.position,
                        entry.audit_id,
                    )
                )
                hashes.append(_GONE)
            else:
                hashes.append(record_leaf(entry.fields, read_back=True))
                chain.see(entry.position, entry.fields)
        outside = ledger_store.outside(tx.session)
    if counter != len(stored):
        problems.append(
            Problem(
                "counter",
                f"the ledger counter says {counter} records, {len(stored)} positions are stored"
                + (": records at the end were deleted" if counter > len(stored) else ""),
                min(counter, len(stored)),
            )
        )
    for audit_id in outside:
        problems.append(
            Problem(
                "inserted",
                f"audit record {audit_id} is at no ledger position: it was inserted behind "
                "the ledger's back",
                None,
                audit_id,
            )
        )
    chain.check_periods(keys)  # every key the heads are checked against, the ledger named
    for kind, message, spot in chain.problems:
        owner = ids[spot] if spot is not None and spot < len(ids) else None
        problems.append(Problem(kind, message, spot, owner))
    report = verify_leaves(hashes, stored, heads, keys)
    placed = {p.position for p in problems if p.position is not None}
    for finding in report.findings:
        index = finding.index
        if index is not None and index in placed:
            continue  # already named precisely above
        if finding.span is not None and any(finding.span[0] <= p < finding.span[1] for p in placed):
            continue
        named = ids[index] if index is not None and index < len(ids) else None
        where = "" if index is None else f"position {index} (audit record {named}): "
        problems.append(Problem(finding.kind.value, where + finding.message, index, named))
    return Verdict(
        size=len(stored),
        covered=report.covered,
        heads=report.verified_heads,
        key_ids=report.key_ids,
        problems=tuple(problems),
        warnings=tuple(chain.warnings),
    )


# ------------------------------------------------------------------ export
def export(ctx: ServiceContext) -> Bundle:
    """The whole ledger as a bundle: records (None for a deleted audit row), the stored
    leaf hashes, every signed head and every key period."""
    records: list[Any] = []
    leaves: list[bytes] = []
    sequence(ctx)
    with ctx.db.transaction(write=False) as tx:
        for entry in ledger_store.entries(tx.session):
            records.append(
                None if entry.fields is None else audit_record(entry.fields, read_back=True)
            )
            leaves.append(entry.leaf_hash)
        heads = [signed_of(row) for row in ledger_store.heads(tx.session)]
        keys = [_period(row) for row in ledger_store.keys(tx.session)]
    return build_bundle(records, heads, keys, leaf_hashes=leaves)


def list_heads(ctx: ServiceContext, *, after: int = 0, limit: int = 100) -> list[SignedTreeHead]:
    """Signed heads of sizes above ``after``, smallest first (the published sequence)."""
    if not 1 <= limit <= 1000:
        raise InvalidRequest("limit must be between 1 and 1000", field="limit")
    with ctx.db.transaction(write=False) as tx:
        rows = ledger_store.heads(tx.session, after=after, limit=limit)
        return [signed_of(row) for row in rows]
