"""The ledger's API: heads and consistency proofs for every user, a record's inclusion proof
for staff and for the tenant it is about (another tenant's answers as a missing one), and
proofs that verify offline and fail when any byte is altered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpulease.ledger.heads import KeyPeriod, SignedTreeHead
from gpulease.ledger.proofs import (
    ConsistencyProof,
    RecordProof,
    check_head_consistency,
    check_record_proof,
)
from gpulease.persistence.tables import AuditRecord
from gpulease.services import ledger, ledger_sequencer
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser

Api = Callable[[str | None], TestClient]
JOB = {"gpus": 4, "purpose": "financial AI: credit risk models", "command": "true"}


def _tokens(demo: list[DemoUser]) -> dict[str, str]:
    return {u.email: u.token for u in demo}


def _flip(text: str) -> str:
    """``text`` (hex) with its last digit changed."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def _audit_id(ctx: ServiceContext, subject_id: str) -> int:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(select(AuditRecord).where(AuditRecord.subject_id == subject_id))[0].id


@pytest.mark.slow  # the API's lifespan, a submission, a head signed
def test_a_tenant_proves_its_own_records_only(
    ctx: ServiceContext, api: Api, demo: list[DemoUser]
) -> None:
    ledger.ensure_key(ctx)
    tokens = _tokens(demo)
    bank = api(tokens["admin@bank.example"])
    university = api(tokens["admin@university.example"])
    job = bank.post("/jobs", json=JOB)
    assert job.status_code == 201, job.text
    audit_id = _audit_id(ctx, job.json()["id"])
    queued = bank.get(f"/ledger/records/{audit_id}/proof")  # committed, no position yet
    assert queued.status_code == 409, queued.text
    assert "not yet sequenced" in queued.json()["message"]
    foreign = university.get(f"/ledger/records/{audit_id}/proof")  # queued or not: not theirs
    assert foreign.status_code == 404, foreign.text
    ledger_sequencer.sequence(ctx)  # the scheduler's sequencer
    early = bank.get(f"/ledger/records/{audit_id}/proof")  # no head covers it yet
    assert early.status_code == 409, early.text
    assert "not yet covered by a signed head" in early.json()["message"]
    ledger.sign_head(ctx)  # the periodic head

    answer = bank.get(f"/ledger/records/{audit_id}/proof")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    keys = [KeyPeriod.from_json(k) for k in bank.get("/ledger/keys").json()]
    proof = RecordProof.from_json(body)
    assert check_record_proof(proof, keys) is None
    assert body["record"]["subject_id"] == job.json()["id"]
    assert body["position"] == body["inclusion"]["leaf_index"]

    # any byte altered: the record, a path hash, the root or the signature
    record = dict(body, record=dict(body["record"], reason="something else"))
    path = dict(body, inclusion=dict(body["inclusion"]))
    path["inclusion"]["path"] = [
        _flip(body["inclusion"]["path"][0]),
        *body["inclusion"]["path"][1:],
    ]
    root = dict(body, head=dict(body["head"], root_hash=_flip(body["head"]["root_hash"])))
    signature = dict(body, head=dict(body["head"], signature=_flip(body["head"]["signature"])))
    for altered in (record, path, root, signature):
        assert check_record_proof(RecordProof.from_json(altered), keys) is not None

    foreign = university.get(f"/ledger/records/{audit_id}/proof")
    missing = university.get("/ledger/records/999999999/proof")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["code"] == missing.json()["code"]
    assert "999999999" not in foreign.text
    assert str(audit_id) in foreign.text
    officer = api(tokens["compliance@indosat.example"])
    assert officer.get(f"/ledger/records/{audit_id}/proof").status_code == 200


@pytest.mark.slow
def test_heads_and_consistency_proofs(ctx: ServiceContext, api: Api, demo: list[DemoUser]) -> None:
    ledger.ensure_key(ctx)
    tokens = _tokens(demo)
    operator = api(tokens["ops@indosat.example"])
    member_view = api(tokens["admin@university.example"])
    first = operator.post("/ledger/heads")
    assert first.status_code == 200, first.text
    assert api(tokens["compliance@indosat.example"]).post("/ledger/heads").status_code == 403
    assert member_view.post("/ledger/heads").status_code == 403
    assert api(tokens["admin@bank.example"]).post("/jobs", json=JOB).status_code == 201
    second = operator.post("/ledger/heads").json()
    older, newer = first.json()["tree_size"], second["tree_size"]
    assert newer == older + 1

    listed = member_view.get("/ledger/heads").json()
    assert [h["tree_size"] for h in listed] == [older, newer]
    assert member_view.get("/ledger/heads/latest").json() == second
    assert member_view.get(f"/ledger/heads/{older}").json() == first.json()
    answer = member_view.get("/ledger/consistency", params={"first": older, "second": newer})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    keys = [KeyPeriod.from_json(k) for k in member_view.get("/ledger/keys").json()]
    heads = SignedTreeHead.from_json(body["first"]), SignedTreeHead.from_json(body["second"])
    proof = ConsistencyProof.from_json(body["proof"])
    assert check_head_consistency(*heads, proof, keys) is None
    bad = ConsistencyProof.from_json(
        dict(body["proof"], path=[_flip(p) for p in body["proof"]["path"]])
    )
    assert check_head_consistency(*heads, bad, keys) is not None


def test_bad_input_is_refused_at_the_edge(api: Api, demo: list[DemoUser]) -> None:
    client = api(_tokens(demo)["ops@indosat.example"])
    for path, params in (
        ("/ledger/heads/0", {}),
        ("/ledger/heads/99999999999999999999", {}),
        ("/ledger/records/abc/proof", {}),
        ("/ledger/records/1/proof", {"tree_size": "-1"}),
        ("/ledger/consistency", {"first": "1"}),
        ("/ledger/heads", {"limit": "100000"}),
    ):
        answer = client.get(path, params=params)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["code"] == "invalid_request"
    assert client.get("/ledger/heads/latest").status_code == 404  # none signed yet
    assert api(None).get("/ledger/heads").status_code == 401
