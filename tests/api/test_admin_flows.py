"""Tenants, users and tokens, maintenance windows, node states and the audit trail, over the
in-process app on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock

AsUser = Callable[[str], TestClient]
Api = Callable[[str | None], TestClient]


def test_onboard_a_tenant_and_its_users(as_user: AsUser, api: Api, clock: ManualClock) -> None:
    op = as_user("operator")
    tenant = op.post("/tenants", json={"name": "Lab Satu", "country": "id", "kind": "lab"})
    assert tenant.status_code == 201, tenant.text
    tenant_id = tenant.json()["id"]
    assert tenant.json()["country"] == "ID"
    made = op.post(
        "/users",
        json={
            "name": "Lab admin",
            "email": "admin@labsatu.example",
            "role": "tenant-admin",
            "tenant_id": tenant_id,
        },
    )
    assert made.status_code == 201, made.text
    admin_token = made.json()["token"]
    assert admin_token.startswith("glt_")
    again = op.post(
        "/users",
        json={
            "name": "x",
            "email": "admin@labsatu.example",
            "role": "tenant-admin",
            "tenant_id": tenant_id,
        },
    )
    assert again.status_code == 409

    admin = api(admin_token)
    assert admin.get("/me").json()["tenant_id"] == tenant_id
    assert [t["id"] for t in admin.get("/tenants").json()] == [tenant_id]
    member = admin.post(
        "/users",
        json={"name": "Student", "email": "s@labsatu.example", "role": "tenant-member"},
    )
    assert member.status_code == 201, member.text
    assert member.json()["user"]["tenant_id"] == tenant_id
    escalate = admin.post(
        "/users", json={"name": "Evil", "email": "e@labsatu.example", "role": "operator-admin"}
    )
    assert escalate.status_code == 403

    student = api(member.json()["token"])
    start = clock.now() + timedelta(days=1)
    lease = student.post(
        "/leases",
        json={
            "gpus": 4,
            "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat(),
        },
    )
    assert lease.status_code == 403
    assert lease.json()["code"] == "denied"
    job = student.post(
        "/jobs",
        json={
            "gpus": 1,
            "purpose": "education: coursework",
            "command": "python hw.py",
            "duration_s": 1,
        },
    )
    # no KYC case approved yet: the same procedure applies to every tenant
    assert job.status_code == 403
    assert job.json()["code"] == "not_approved"
    assert "not approved" in job.json()["message"]
    assert student.get("/audit").status_code == 403


def test_maintenance_takes_capacity_out_of_the_calendar(
    as_user: AsUser, clock: ManualClock
) -> None:
    start = (clock.now() + timedelta(days=400)).replace(microsecond=0)
    end = start + timedelta(days=2)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    op, bank = as_user("operator"), as_user("bank")
    nodes = [n["id"] for n in op.get("/nodes").json()][:18]  # one whole rack
    for node in nodes:
        planned = op.post(
            f"/nodes/{node}/maintenance", json=window | {"reason": "NVLink switch tray swap"}
        )
        assert planned.status_code == 201, planned.text
    # after the demo leases end (365 days), the whole site is free but for this rack
    refused = bank.post("/leases", json=window | {"gpus": 2304 - 72 + 1})
    assert refused.status_code == 409
    assert "72 in maintenance" in refused.json()["message"]
    assert refused.json()["code"] == "insufficient_capacity"
    # the calendar has room for 2,232, but one tenant's unapproved requests may hold a
    # quarter of the site at most (lease_hold_share)
    too_much = bank.post("/leases", json=window | {"gpus": 2304 - 72})
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "conflict"
    fits = bank.post("/leases", json=window | {"gpus": 2304 // 4})
    assert fits.status_code == 201, fits.text
    assert (
        bank.post(f"/nodes/{nodes[0]}/maintenance", json=window | {"reason": "x"}).status_code
        == 403
    )


def test_audit_trail_answers_who_did_what(as_user: AsUser) -> None:
    inf, officer = as_user("inftech"), as_user("compliance")
    job = inf.post(
        "/jobs",
        json={"gpus": 8, "purpose": "drug discovery", "command": "dock", "duration_s": 0.3},
    ).json()
    me = inf.get("/me").json()["user_id"]
    trail = officer.get("/audit", params={"subject_type": "job", "subject_id": job["id"]}).json()
    submitted = [r for r in trail if r["action"] == "job.submit"]
    assert len(submitted) == 1
    assert submitted[0]["actor"] == me
    assert submitted[0]["reason"] == "declared purpose: drug discovery"
    assert submitted[0]["after"]["gpus"] == 8
    assert inf.get("/audit").status_code == 403


def test_operator_drains_and_restores_a_node(as_user: AsUser) -> None:
    op, bank = as_user("operator"), as_user("bank")
    node = op.get("/nodes").json()[-1]["id"]
    drained = op.post(f"/nodes/{node}/state", json={"state": "draining", "reason": "RMA"})
    assert drained.status_code == 200, drained.text
    assert drained.json()["id"] == node
    assert drained.json()["state"] == "draining"
    assert drained.json()["state_reason"] == "RMA"
    assert [n["id"] for n in op.get("/nodes", params={"state": "draining"}).json()] == [node]
    refused = bank.post(f"/nodes/{node}/state", json={"state": "up", "reason": "mine"})
    assert refused.status_code == 403
    back = op.post(f"/nodes/{node}/state", json={"state": "up", "reason": "repaired"})
    assert back.json()["state"] == "up"
