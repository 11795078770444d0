"""``POST /leases/{id}/amend``: an operator resizes or extends a lease over the API; a
tenant may not; the calendar's refusal and the validation reach the client as codes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock

AsUser = Callable[[str], TestClient]


def test_an_operator_amends_a_lease_a_tenant_may_not(as_user: AsUser, clock: ManualClock) -> None:
    uni, op = as_user("university"), as_user("operator")
    start = clock.now() + timedelta(days=10)
    window = {"start": start.isoformat(), "end": (start + timedelta(days=30)).isoformat()}
    lease = uni.post("/leases", json={"gpus": 72, **window}).json()
    op.post(f"/leases/{lease['id']}/approve", json={"reason": "KYC passed"})

    refused = uni.post(f"/leases/{lease['id']}/amend", json={"gpus": 144, "reason": "more"})
    assert (refused.status_code, refused.json()["code"]) == (403, "denied")

    longer = (start + timedelta(days=40)).isoformat()
    amended = op.post(
        f"/leases/{lease['id']}/amend", json={"gpus": 144, "end": longer, "reason": "phase 2"}
    )
    assert amended.status_code == 200, amended.text
    body = amended.json()
    assert (body["gpus"], body["state"]) == (144, "scheduled")
    assert body["end"].startswith(longer[:19])
    assert body["price"] == f"{144 * 40 * 24 * 3.5:.2f}"

    oversold = op.post(f"/leases/{lease['id']}/amend", json={"gpus": 5000, "reason": "x"})
    assert (oversold.status_code, oversold.json()["code"]) == (409, "insufficient_capacity")
    no_reason = op.post(f"/leases/{lease['id']}/amend", json={"gpus": 8})
    assert no_reason.status_code == 422
    assert uni.get(f"/leases/{lease['id']}").json()["gpus"] == 144
