"""Attack: custody, location attestation and alerts, from outside, as a tenant and as a
compromised node, through the in-process API on the demo.

A node agent's route takes no bearer token: the signature is its credential, so every way
of getting a statement refused without the node's key must be throttled like token guessing
before the expensive work, and one node's key must never vouch for another node. Readers of
custody are operator staff only: a tenant learns nothing, not even which serials exist.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock
from gpulease.inventory.attestation import Statement, sign
from gpulease.services import demo as demo_service
from gpulease.settings import Settings

Client = Callable[[str | None], TestClient]  # the ``raw_api`` fixture: a 500 is a response

OPERATOR = "ops@indosat.example"
OFFICER = "compliance@indosat.example"
TENANT = "admin@inftech.example"
NODE, OTHER = "jkt1-r00-n00", "jkt1-r00-n01"
SERIAL = "AIV-NVL72-G000000"
LIMIT = 4  # failed authentications a minute per address, for these tests


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "var", auth_failures_per_minute=LIMIT)


def _public(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def _body(key: Ed25519PrivateKey, statement: Statement) -> dict[str, object]:
    return {"statement": statement.as_dict(), "signature": sign(key, statement)}


def test_a_replayed_statement_is_throttled_like_a_forged_one(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser], clock: ManualClock
) -> None:
    """A statement captured on the wire verifies (an Ed25519 check, then a write
    transaction holding the node's lock) and is then refused as a replay: sent again and
    again from the eavesdropper's address, it must meet the failed-authentication limit like
    a forged one, not cost that work forever."""
    operator = raw_api(by_email[OPERATOR].token)
    key = Ed25519PrivateKey.generate()
    made = operator.post(f"/custody/nodes/{NODE}/key", json={"public_key": _public(key)})
    assert made.status_code == 201, made.text
    agent = raw_api(None)
    captured = Statement(NODE, "jkt1", clock.now(), "ab" * 8)
    assert agent.post("/custody/attestations", json=_body(key, captured)).status_code == 201
    clock.advance(1)
    eve = TestClient(
        agent.app,
        base_url=str(agent.base_url),
        raise_server_exceptions=False,
        client=("198.51.100.7", 40000),
    )
    codes = [
        eve.post("/custody/attestations", json=_body(key, captured)).status_code
        for _ in range(LIMIT + 1)
    ]
    assert codes[:LIMIT] == [422] * LIMIT  # refused as a replay, naming the field
    assert codes[LIMIT] == 429
    # the real agent (its own address) is unaffected: only the eavesdropper's address waits
    fresh = Statement(NODE, "jkt1", clock.now(), "cd" * 8)
    assert agent.post("/custody/attestations", json=_body(key, fresh)).status_code == 201


def test_a_host_behind_the_sites_nat_cannot_silence_its_neighbours(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser], clock: ManualClock
) -> None:
    """Agents of one site often leave through one address. A compromised host there sends
    forged statements until the address is blocked; before the fix the neighbours' genuine
    statements were then refused too (429), so they went stale and were drained by the
    attacker's doing. A node accepted from the address keeps attesting; new names wait."""
    operator = raw_api(by_email[OPERATOR].token)
    key = Ed25519PrivateKey.generate()
    assert (
        operator.post(f"/custody/nodes/{NODE}/key", json={"public_key": _public(key)}).status_code
        == 201
    )
    agent = raw_api(None)  # every in-process client comes from one address: a NAT
    first = Statement(NODE, "jkt1", clock.now(), "ab" * 8)
    assert agent.post("/custody/attestations", json=_body(key, first)).status_code == 201
    mallory = Ed25519PrivateKey.generate()
    for i in range(LIMIT):
        forged = Statement(OTHER, "jkt1", clock.now(), f"{i:016x}")
        answer = agent.post("/custody/attestations", json=_body(mallory, forged))
        assert answer.status_code == 401
    late = Statement(OTHER, "jkt1", clock.now(), "ef" * 8)
    assert agent.post("/custody/attestations", json=_body(mallory, late)).status_code == 429
    clock.advance(30)
    honest = Statement(NODE, "jkt1", clock.now(), "cd" * 8)
    assert agent.post("/custody/attestations", json=_body(key, honest)).status_code == 201
    # a forgery naming the known node is checked and refused, and changes nothing
    fake = Statement(NODE, "sgp1", clock.now(), "ee" * 8)
    assert agent.post("/custody/attestations", json=_body(mallory, fake)).status_code == 401
    alerts = operator.get("/custody/alerts", params={"state": "open"}).json()
    assert [a for a in alerts if a["node_id"] == NODE] == []


def test_one_nodes_key_never_vouches_for_another_node(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser], clock: ManualClock
) -> None:
    """With one key registered for two nodes (an agent image baked with one key), the
    agent of a compromised or stolen node signs "the other node is home" and keeps it from
    going stale wherever it really is. A key already registered for another node is a 409,
    and the key is not stored."""
    operator = raw_api(by_email[OPERATOR].token)
    key = Ed25519PrivateKey.generate()
    assert (
        operator.post(f"/custody/nodes/{NODE}/key", json={"public_key": _public(key)}).status_code
        == 201
    )
    shared = operator.post(f"/custody/nodes/{OTHER}/key", json={"public_key": _public(key)})
    assert shared.status_code == 409, shared.text
    assert NODE not in shared.text  # which node holds it is not the point; no leak needed
    # NODE's key signs a statement for OTHER: no key is registered for OTHER, refused
    forged = Statement(OTHER, "jkt1", clock.now(), "ab" * 8)
    assert raw_api(None).post("/custody/attestations", json=_body(key, forged)).status_code == 401
    # the same key again for the same node is a re-registration, not a conflict
    again = operator.post(f"/custody/nodes/{NODE}/key", json={"public_key": _public(key)})
    assert again.status_code == 201, again.text


NEUTRAL = "01" + "00" * 31  # the neutral point of the curve, a valid encoding
SMALL_ORDER = [
    NEUTRAL,
    "00" * 32,  # order 4
    "ec" + "ff" * 30 + "7f",  # p - 1: order 2
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
]


def test_a_key_under_which_anyone_can_sign_is_refused(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser], clock: ManualClock
) -> None:
    """Ed25519 as verified here accepts, under a public key of small order (the neutral
    point ``01 00..00``, or ``00..00`` typed as a placeholder), the signature R = neutral,
    S = 0 for every statement (or for one nonce in a few): with such a key registered,
    anyone on the network attests for the node. Such keys are a 422 naming the field."""
    operator = raw_api(by_email[OPERATOR].token)
    for weak in SMALL_ORDER:
        refused = operator.post(f"/custody/nodes/{NODE}/key", json={"public_key": weak})
        assert refused.status_code == 422, (weak, refused.text)
        assert refused.json()["details"]["field"] == "public_key"
    # nothing was registered: the forgery that verifies under the neutral key is refused
    forged = Statement(NODE, "jkt1", clock.now(), "ab" * 8)
    body = {"statement": forged.as_dict(), "signature": NEUTRAL + "00" * 32}
    assert raw_api(None).post("/custody/attestations", json=body).status_code == 401


def test_tenants_read_nothing_of_custody_and_decide_nothing(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    """A tenant is refused alike for a serial that exists and one that does not (no
    enumeration), and may not register keys, record events or clear alerts."""
    tenant = raw_api(by_email[TENANT].token)
    real, missing = tenant.get(f"/custody/{SERIAL}"), tenant.get("/custody/NO-SUCH-SERIAL")
    assert real.status_code == missing.status_code == 403
    assert real.json() == missing.json()
    assert tenant.get("/custody/alerts").status_code == 403
    key = _public(Ed25519PrivateKey.generate())
    assert tenant.post(f"/custody/nodes/{NODE}/key", json={"public_key": key}).status_code == 403
    cleared = tenant.post("/custody/alerts/alert-x/clear", json={"reason": "mine"})
    assert cleared.status_code == 403
    officer = raw_api(by_email[OFFICER].token)
    assert officer.post(f"/custody/nodes/{NODE}/key", json={"public_key": key}).status_code == 403
    anonymous = raw_api(None)
    assert anonymous.get(f"/custody/{SERIAL}").status_code == 401
    assert anonymous.post(f"/custody/nodes/{NODE}/key", json={"public_key": key}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 2_000_000,
        b"{" * 100_000,
        b'{"statement": [], "signature": 1}',
        b'{"statement": {"kind": "gpulease-location-attestation/1", "node_id": "n",'
        b' "site_id": "s", "at": "2026-02-30T25:61:61.000000Z", "nonce": "abababababababab"},'
        b' "signature": "' + b"a" * 128 + b'"}',
        b'{"statement": {"kind": "gpulease-location-attestation/1", "node_id": "\\u0000",'
        b' "site_id": "' + b"s" * 100_000 + b'", "at": "x", "nonce": "z"}, "signature": "zz"}',
    ],
    ids=["2MB", "deep", "types", "bad-date", "nul-and-long"],
)
def test_malformed_statements_are_refused_never_a_500(raw_api: Client, body: bytes) -> None:
    answer = raw_api(None).post(
        "/custody/attestations", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code in (400, 401, 413, 422), answer.text[:300]
