"""The pure cores of custody and attestation: the transition rules, the sale rules, the
merged story of a chip, signatures that fail on any altered byte, and the assessment."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gpulease.domain.errors import InvalidRequest, InvalidTransition
from gpulease.domain.states import transition
from gpulease.inventory import attestation as att
from gpulease.inventory import custody as core
from gpulease.inventory.custody import CustodyEntry, CustodyKind, Documents, UnitKind

T0 = datetime(2024, 7, 1, tzinfo=UTC)
K = CustodyKind

# The decisions, written out: a change to the table must change this test too.
PHASES_ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("manufactured", "shipped"),
        ("manufactured", "decommissioned"),
        ("shipped", "received"),
        ("received", "installed"),
        ("received", "shipped"),
        ("received", "decommissioned"),
        *(
            (phase, nxt)
            for phase in ("installed", "moved", "repaired")
            for nxt in ("moved", "repaired", "shipped", "decommissioned")
        ),
    }
)


def entry(kind: CustodyKind, day: int, **fields: str) -> CustodyEntry:
    docs = Documents(
        fields.pop("invoice", ""),
        fields.pop("export_authorization", ""),
        fields.pop("end_user_statement", ""),
    )
    return CustodyEntry(
        unit_kind=UnitKind(fields.pop("unit_kind", "gpu")),
        unit_id=fields.pop("unit_id", "G1"),
        at=T0 + timedelta(days=day),
        kind=kind,
        holder=fields.pop("holder", "Maker"),
        location=fields.pop("location", "Somewhere"),
        documents=docs,
        **fields,
    )


def chain_to(phase: CustodyKind) -> list[CustodyEntry]:
    """A consistent chain that leaves its unit in ``phase``."""
    path = {
        K.MANUFACTURED: [K.MANUFACTURED],
        K.SHIPPED: [K.MANUFACTURED, K.SHIPPED],
        K.RECEIVED: [K.MANUFACTURED, K.SHIPPED, K.RECEIVED],
        K.INSTALLED: [K.MANUFACTURED, K.SHIPPED, K.RECEIVED, K.INSTALLED],
        K.MOVED: [K.MANUFACTURED, K.SHIPPED, K.RECEIVED, K.INSTALLED, K.MOVED],
        K.REPAIRED: [K.MANUFACTURED, K.SHIPPED, K.RECEIVED, K.INSTALLED, K.REPAIRED],
        K.DECOMMISSIONED: [K.MANUFACTURED, K.DECOMMISSIONED],
    }[phase]
    return [entry(kind, day) for day, kind in enumerate(path)]


def test_the_phase_table_is_the_written_decision() -> None:
    table = {(a.value, b.value) for a, nexts in core.PHASE_TRANSITIONS.items() for b in nexts}
    assert table == PHASES_ALLOWED
    assert K.SOLD not in core.PHASE_TRANSITIONS  # a sale is not a phase
    assert K.DECOMMISSIONED not in core.PHASE_TRANSITIONS  # terminal


@pytest.mark.parametrize("phase", [k for k in K if k is not K.SOLD])
@pytest.mark.parametrize("nxt", [k for k in K if k is not K.SOLD])
def test_every_pair_of_physical_events(phase: CustodyKind, nxt: CustodyKind) -> None:
    chain = chain_to(phase)
    new = entry(nxt, 30)
    if (phase.value, nxt.value) in PHASES_ALLOWED:
        assert core.check_next(chain, new).kind is nxt
    else:
        with pytest.raises(InvalidRequest) as refused:
            core.check_next(chain, new)
        assert refused.value.details["field"] == "event"


def test_installed_before_received_says_why() -> None:
    chain = chain_to(K.SHIPPED)
    with pytest.raises(InvalidRequest) as refused:
        core.check_next(chain, entry(K.INSTALLED, 9))
    assert "cannot be installed now: it was not received" in refused.value.message
    assert refused.value.details == {"field": "event", "phase": "shipped"}


def test_a_chain_starts_with_manufactured_and_ends_with_decommissioned() -> None:
    with pytest.raises(InvalidRequest, match="before it was manufactured"):
        core.check_next([], entry(K.SHIPPED, 0))
    with pytest.raises(InvalidRequest, match="before it was manufactured"):
        core.check_next([], entry(K.SOLD, 0, from_party="A", to_party="B", invoice="I"))
    with pytest.raises(InvalidRequest, match="decommissioned; nothing can follow"):
        core.check_next(
            chain_to(K.DECOMMISSIONED), entry(K.SOLD, 9, from_party="Maker", to_party="B")
        )


def test_events_are_in_time_order_and_not_in_the_future() -> None:
    chain = chain_to(K.SHIPPED)
    with pytest.raises(InvalidRequest) as refused:
        core.check_next(chain, entry(K.RECEIVED, 0))
    assert refused.value.details["field"] == "at"
    now = T0 + timedelta(days=5)
    with pytest.raises(InvalidRequest, match="in the future"):
        core.check_next(chain, entry(K.RECEIVED, 6), now=now)
    assert core.check_next(chain, entry(K.RECEIVED, 5), now=now).kind is K.RECEIVED


def test_a_sale_names_seller_buyer_and_invoice_and_the_seller_holds_the_unit() -> None:
    chain = chain_to(K.MANUFACTURED)  # held by "Maker"
    sale = entry(K.SOLD, 3, from_party="Maker", to_party="Builder", invoice="INV-1")
    done = core.check_next(chain, replace(sale, holder=""))
    assert done.holder == "Builder"  # the buyer holds it after the sale
    assert core.phase_of([*chain, done]) is K.MANUFACTURED  # a sale moves nothing
    cases = {
        "from_party": replace(sale, from_party="Someone Else"),
        "to_party": replace(sale, to_party="maker"),
        "invoice": replace(sale, documents=Documents()),
    }
    for field, bad in cases.items():
        with pytest.raises(InvalidRequest) as refused:
            core.check_next(chain, bad)
        assert refused.value.details["field"] == field, field
    with pytest.raises(InvalidRequest, match="held by 'Maker', not by the seller 'Someone'"):
        core.check_next(chain, replace(sale, from_party="Someone"))


def test_texts_are_bounded_and_places_named() -> None:
    chain = chain_to(K.SHIPPED)
    with pytest.raises(InvalidRequest) as refused:
        core.check_next(chain, entry(K.RECEIVED, 5, holder="x" * 201))
    assert refused.value.details["field"] == "holder"
    with pytest.raises(InvalidRequest) as refused:
        core.check_next(chain, entry(K.RECEIVED, 5, location=" "))
    assert refused.value.details["field"] == "location"
    with pytest.raises(InvalidRequest) as refused:
        core.check_next(chain, entry(K.RECEIVED, 5, note="n" * 501))
    assert refused.value.details["field"] == "note"


def test_problems_of_a_stored_chain() -> None:
    good = chain_to(K.INSTALLED)
    assert core.problems(good) == []
    edited = [good[0], good[1], good[3]]  # the receipt deleted
    [problem] = core.problems(edited)
    assert "cannot be installed now: it was not received" in problem


def test_a_chip_story_merges_its_rack_and_tray_chains() -> None:
    gpu = [entry(K.MANUFACTURED, 0, holder="NVIDIA"), entry(K.SHIPPED, 10)]
    rack = [entry(K.MANUFACTURED, 10, unit_kind="rack", unit_id="R1", holder="Aivres")]
    tray = [entry(K.REPAIRED, 5, unit_kind="tray", unit_id="T1")]
    merged = core.story(gpu, tray, rack)
    assert [(e.unit_kind.value, e.kind.value) for e in merged] == [
        ("gpu", "manufactured"),
        ("tray", "repaired"),
        ("rack", "manufactured"),  # same day as the chip's shipment: the rack first
        ("gpu", "shipped"),
    ]


# ------------------------------------------------------------------ attestation
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def test_alert_states_table() -> None:
    assert transition(att.ALERT_TRANSITIONS, att.AlertState.OPEN, att.AlertState.CLEARED)
    with pytest.raises(InvalidTransition):
        transition(att.ALERT_TRANSITIONS, att.AlertState.CLEARED, att.AlertState.OPEN)


def test_a_signature_verifies_and_fails_on_any_altered_byte() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    statement = att.Statement("jkt1-r00-n00", "jkt1", NOW, "00" * 16)
    signature = att.sign(key, statement)
    assert att.signature_valid(public, statement, signature)
    for changed in (
        replace(statement, node_id="jkt1-r00-n01"),
        replace(statement, site_id="sgp1"),
        replace(statement, at=NOW + timedelta(microseconds=1)),
        replace(statement, nonce="00" * 15 + "01"),
    ):
        assert not att.signature_valid(public, changed, signature)
    raw = bytes.fromhex(signature)
    for i in range(len(raw)):
        flipped = raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :]
        assert not att.signature_valid(public, statement, flipped.hex())
    other = Ed25519PrivateKey.generate()
    assert not att.signature_valid(public, statement, att.sign(other, statement))
    assert not att.signature_valid(public, statement, "zz")


def test_a_statement_round_trips_and_bad_fields_are_named() -> None:
    statement = att.Statement("jkt1-r00-n00", "jkt1", NOW, "ab" * 8)
    assert att.Statement.from_dict(dict(statement.as_dict())) == statement
    for field, value in (("nonce", "XYZ"), ("at", "2026-03-02"), ("node_id", "a b")):
        with pytest.raises(InvalidRequest) as refused:
            att.Statement.from_dict({**statement.as_dict(), field: value})
        assert refused.value.details["field"] == field


def test_replays_and_misdated_statements_are_refused() -> None:
    statement = att.Statement("n", "jkt1", NOW, "ab" * 8)
    att.check_freshness(statement, None, NOW, SKEW)
    with pytest.raises(InvalidRequest, match="replay"):
        att.check_freshness(statement, NOW, NOW, SKEW)
    with pytest.raises(InvalidRequest, match="clock"):
        att.check_freshness(statement, None, NOW + timedelta(minutes=6), SKEW)


def test_assess_flags_stale_and_mismatched_nodes_once_per_decision() -> None:
    stale_after = timedelta(minutes=15)
    fresh = att.NodeSighting("a", "jkt1", NOW, NOW, "jkt1")
    old = att.NodeSighting("b", "jkt1", NOW, NOW, "jkt1")
    moved = att.NodeSighting("c", "jkt1", NOW, NOW + timedelta(minutes=10), "sgp1")
    never = att.NodeSighting("d", "jkt1", NOW)
    later = NOW + timedelta(minutes=16)
    found = {
        (f.node_id, f.kind.value)
        for f in att.assess([replace(fresh, last_at=later), old, moved, never], later, stale_after)
    }
    assert found == {("b", "stale"), ("c", "mismatch"), ("d", "stale")}
    # an operator cleared them: not raised again for the same cause
    cleared = [
        replace(old, cleared_stale=later),
        replace(moved, cleared_mismatch=later),
    ]
    assert att.assess(cleared, later + timedelta(minutes=1), stale_after) == []
    # ...until the cause comes back: silence past the clearance, a new disagreeing statement
    again = [
        replace(old, cleared_stale=later),
        replace(moved, cleared_mismatch=later, last_at=later + timedelta(seconds=1)),
    ]
    found = {
        (f.node_id, f.kind.value)
        for f in att.assess(again, later + timedelta(minutes=16), stale_after)
    }
    assert found == {("b", "stale"), ("c", "mismatch")}
