"""The purpose review queue and refused purposes over the in-process API on the demo
(SQLite and PostgreSQL; on PostgreSQL submissions take the lean path first)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler

AsUser = Callable[[str], TestClient]
QUEUE = "/compliance/purpose-reviews"


def _job(purpose: str) -> dict[str, object]:
    return {"gpus": 8, "purpose": purpose, "command": "train"}


def _audit(as_user: AsUser, action: str) -> list[dict[str, object]]:
    found = as_user("compliance").get("/audit", params={"action": action})
    assert found.status_code == 200, found.text
    return [r for r in found.json() if r["action"] == action]


def test_a_held_job_is_listed_and_released_by_an_officer(
    as_user: AsUser, ctx: ServiceContext, scheduler: LiveScheduler
) -> None:
    made = as_user("inftech").post("/jobs", json=_job("drug-discovery: anthrax genomics"))
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["state"] == "queued"
    assert job["wait_reason"].startswith("held until a compliance officer reviews")
    for who in ("inftech", "bank", "operator"):
        assert as_user(who).get(QUEUE).status_code == 403
    [review] = as_user("compliance").get(QUEUE, params={"state": "pending"}).json()
    assert review["subject_id"] == job["id"]
    assert as_user("compliance").get(f"{QUEUE}/{review['id']}").json()["state"] == "pending"
    assert as_user("bank").get(f"{QUEUE}/{review['id']}").status_code == 403
    refused = as_user("inftech").post(f"{QUEUE}/{review['id']}/approve", json={"reason": "mine"})
    assert refused.status_code == 403
    empty = as_user("compliance").post(f"{QUEUE}/{review['id']}/approve", json={"reason": ""})
    assert empty.status_code == 422
    assert empty.json()["details"]["field"] == "reason"
    approved = as_user("compliance").post(
        f"{QUEUE}/{review['id']}/approve", json={"reason": "vaccine genomics, verified"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    scheduler.tick()
    assert as_user("inftech").get(f"/jobs/{job['id']}").json()["state"] == "running"
    again = as_user("compliance").post(
        f"{QUEUE}/{review['id']}/reject", json={"reason": "changed my mind"}
    )
    assert again.status_code == 409


def test_a_refused_purpose_is_a_403_with_an_audit_record_and_no_job(as_user: AsUser) -> None:
    inftech = as_user("inftech")
    before = len(inftech.get("/jobs").json())
    refused = inftech.post("/jobs", json=_job("financial AI: w3ap0ns for the army"))
    assert refused.status_code == 403, refused.text
    error = refused.json()
    assert error["code"] == "not_approved"
    assert "'weapon' (written 'w3ap0ns')" in error["message"]
    assert len(inftech.get("/jobs").json()) == before
    [record] = _audit(as_user, "purpose.refuse")
    assert record["reason"] == error["message"]
    assert as_user("compliance").get(QUEUE).json() == []
