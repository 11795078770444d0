"""Export bundles: an untouched ledger verifies; every kind of tampering is named.

The ledger here is 100 records with heads signed every 16 (sizes 16..96), so 4 records at
the end are not yet signed. Tampering is done the way an SQL user would: on the records
alone (the stored leaf hashes are left as they were), or on both (then only the signed
interval can be named).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.ledger.bundle import (
    Bundle,
    FindingKind,
    build_bundle,
    record_leaf_hash,
    verify_bundle,
)
from gpulease.ledger.heads import KeyPeriod, SignedTreeHead, sign_tree_head
from gpulease.ledger.keys import public_key_bytes
from gpulease.ledger.merkle import MerkleTree

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
KEYS = (KeyPeriod(public_key_bytes(KEY), valid_from=T0),)


def record(seq: int) -> dict[str, Any]:
    return {"seq": seq, "kind": "job.started", "tenant": f"t-{seq % 3}", "gpus": seq % 8 + 1}


def heads_for(
    records: list[dict[str, Any]], every: int, key: Ed25519PrivateKey = KEY
) -> list[SignedTreeHead]:
    tree = MerkleTree(record_leaf_hash(r) for r in records)
    return [
        sign_tree_head(
            key, tree_size=size, root_hash=tree.root(size), timestamp=T0 + timedelta(hours=size)
        )
        for size in range(every, len(records) + 1, every)
    ]


RECORDS = [record(i) for i in range(100)]
HEADS = heads_for(RECORDS, 16)
BUNDLE = build_bundle(RECORDS, HEADS, KEYS)


def tampered(records: list[dict[str, Any]], *, rewrite_hashes: bool = False) -> Bundle:
    """The bundle with ``records`` in place of the originals; stored hashes kept unless
    ``rewrite_hashes`` (the tamperer recomputed them too)."""
    if rewrite_hashes:
        return build_bundle(records, HEADS, KEYS)
    return replace(BUNDLE, records=tuple(records))


def test_an_untouched_bundle_verifies() -> None:
    report = verify_bundle(BUNDLE)
    assert report.ok, report.summary()
    assert report.verified_heads == (16, 32, 48, 64, 80, 96)
    assert report.covered == 96
    assert report.uncovered == 4
    assert report.key_ids == (KEYS[0].key_id,)
    assert report.first_bad_record is None
    assert "100 records, 96 covered by 6 signed heads" in report.summary()


def test_the_bundle_round_trips_as_canonical_bytes() -> None:
    data = BUNDLE.dumps()
    assert Bundle.loads(data) == BUNDLE
    assert Bundle.loads(data).dumps() == data
    assert verify_bundle(data).ok


def test_a_modified_record_is_named() -> None:
    records = list(RECORDS)
    records[40] = {**records[40], "tenant": "someone-else"}
    report = verify_bundle(tampered(records))
    bad = report.first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index, bad.span) == (FindingKind.MODIFIED, 40, (32, 48))
    assert report.covered == 32
    assert not report.ok


def test_a_deleted_record_is_named() -> None:
    records = RECORDS[:40] + RECORDS[41:]
    bad = verify_bundle(tampered(records)).first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index) == (FindingKind.DELETED, 40)


def test_an_inserted_record_is_named() -> None:
    records = [*RECORDS[:40], record(1000), *RECORDS[40:]]
    bad = verify_bundle(tampered(records)).first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index) == (FindingKind.INSERTED, 40)


@pytest.mark.parametrize("other", [41, 47, 70])
def test_reordered_records_are_named(other: int) -> None:
    records = list(RECORDS)
    records[40], records[other] = records[other], records[40]
    bad = verify_bundle(tampered(records)).first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index) == (FindingKind.REORDERED, 40)


def test_records_cut_short_are_a_deletion_at_the_cut() -> None:
    bad = verify_bundle(tampered(RECORDS[:90])).first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index) == (FindingKind.DELETED, 90)


def test_rewritten_hashes_leave_the_signed_interval_named() -> None:
    records = list(RECORDS)
    records[40] = {**records[40], "gpus": 72}
    report = verify_bundle(tampered(records, rewrite_hashes=True))
    bad = report.first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index, bad.span) == (FindingKind.CHANGED_IN_RANGE, None, (32, 48))
    assert "[32, 48)" in bad.message
    assert report.covered == 32


def test_an_edited_stored_hash_is_reported_though_no_record_is_bad() -> None:
    stored = list(BUNDLE.leaf_hashes)
    stored[10] = bytes(32)
    report = verify_bundle(replace(BUNDLE, leaf_hashes=tuple(stored)))
    assert [(f.kind, f.index) for f in report.findings] == [(FindingKind.STORED_HASH_CHANGED, 10)]
    assert report.first_bad_record is None
    assert report.covered == 96


def test_a_change_after_the_last_head_is_still_found() -> None:
    records = list(RECORDS)
    records[98] = {**records[98], "tenant": "x"}
    report = verify_bundle(tampered(records))
    assert report.covered == 96
    bad = report.first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index) == (FindingKind.MODIFIED, 98)
    assert "after the last signed head" in bad.message


def test_a_record_without_canonical_form_is_named() -> None:
    records: list[Any] = list(RECORDS)
    records[20] = {"n": 2**60}  # beyond the exact range of a JSON number
    records[30] = {"n": 2**61}
    report = verify_bundle(tampered(records))
    uncanonical = [f for f in report.findings if f.kind is FindingKind.UNCANONICAL]
    assert [f.index for f in uncanonical] == [20]  # the first one to fix
    assert "has no canonical form" in uncanonical[0].message
    bad = report.first_bad_record
    assert bad is not None
    assert bad.index == 20
    assert report.covered == 16


def test_a_forged_or_out_of_period_head_is_a_finding() -> None:
    forged = SignedTreeHead(HEADS[0].head, bytes(64))
    report = verify_bundle(replace(BUNDLE, heads=(forged, *HEADS[1:])))
    assert [f.kind for f in report.findings] == [FindingKind.BAD_HEAD]
    assert report.verified_heads == (32, 48, 64, 80, 96)  # the rest still cover the records

    early = [
        sign_tree_head(KEY, tree_size=16, root_hash=HEADS[0].root_hash, timestamp=T0 - timedelta(1))
    ]
    report = verify_bundle(replace(BUNDLE, heads=tuple(early)))
    assert [f.kind for f in report.findings] == [FindingKind.BAD_HEAD, FindingKind.NO_HEAD]
    assert "outside the period" in report.findings[0].message


def test_two_valid_heads_of_one_size_with_different_roots_are_a_fork() -> None:
    other = [*RECORDS[:15], record(999)]
    fork = heads_for(other, 16)[0]
    report = verify_bundle(replace(BUNDLE, heads=(*HEADS, fork)))
    assert FindingKind.FORKED in {f.kind for f in report.findings}


def test_a_history_re_signed_with_a_fresh_key_fails_against_what_the_auditor_kept() -> None:
    impostor = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
    records = list(RECORDS)
    records[5] = {**records[5], "tenant": "hidden"}
    rewritten = build_bundle(
        records,
        heads_for(records, 16, impostor),
        (KeyPeriod(public_key_bytes(impostor), valid_from=T0),),
    )
    assert verify_bundle(rewritten).ok  # self-consistent on its own keys...
    assert verify_bundle(rewritten).key_ids != (KEYS[0].key_id,)  # ...which the auditor compares
    pinned = verify_bundle(rewritten, trusted_keys=KEYS)
    assert {f.kind for f in pinned.findings} == {FindingKind.BAD_HEAD, FindingKind.NO_HEAD}
    kept = verify_bundle(rewritten, trusted_keys=KEYS, known_heads=[HEADS[0], HEADS[2]])
    bad = kept.first_bad_record
    assert bad is not None
    assert (bad.kind, bad.span) == (FindingKind.CHANGED_IN_RANGE, (0, 16))


# ---------------------------------------------------------------- any single tampering
SMALL = [record(i) for i in range(40)]
SMALL_BUNDLE = build_bundle(SMALL, heads_for(SMALL, 8), KEYS)


@st.composite
def tampering(draw: st.DrawFn) -> tuple[list[dict[str, Any]], FindingKind, int]:
    records = list(SMALL)
    kind = draw(st.sampled_from(["modified", "deleted", "inserted", "reordered"]))
    if kind == "inserted":
        index = draw(st.integers(0, len(records)))
        records.insert(index, record(5000 + index))
        return records, FindingKind.INSERTED, index
    index = draw(st.integers(0, len(records) - 1))
    if kind == "modified":
        records[index] = {**records[index], "gpus": 99}
        return records, FindingKind.MODIFIED, index
    if kind == "deleted":
        del records[index]
        return records, FindingKind.DELETED, index
    other = draw(st.integers(0, len(records) - 1).filter(lambda j: j != index))
    records[index], records[other] = records[other], records[index]
    return records, FindingKind.REORDERED, min(index, other)


@settings(max_examples=120, deadline=None)
@given(tampering())
def test_any_single_tampering_is_named_exactly(case: tuple[list[Any], FindingKind, int]) -> None:
    records, kind, index = case
    report = verify_bundle(replace(SMALL_BUNDLE, records=tuple(records)))
    bad = report.first_bad_record
    assert bad is not None
    assert (bad.kind, bad.index) == (kind, index)
    assert report.covered == index // 8 * 8  # the heads before the damage still hold
