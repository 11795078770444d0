"""Attack: what a tenant reads must not name another tenant or operator staff.

``docs/security.md``: "a tenant sees and changes only its own tenant's records" and "Texts a
tenant reads name operator staff as 'the operator', never by id".
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from gpulease.domain.clock import ManualClock
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.services import demo as demo_service
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler

Client = Callable[[str | None], TestClient]  # the ``raw_api`` fixture

OPS = "ops@indosat.example"
BANK = "admin@bank.example"
UNIVERSITY = "admin@university.example"


def _me(client_api: Client, token: str) -> dict[str, str]:
    answer = client_api(token).get("/me")
    assert answer.status_code == 200, answer.text
    body: dict[str, str] = answer.json()
    return body


def test_a_preempted_tenant_is_not_told_which_tenant_preempted_it(
    ctx: ServiceContext,
    clock: ManualClock,
    raw_api: Client,
    by_email: dict[str, demo_service.DemoUser],
) -> None:
    bank, university = by_email[BANK], by_email[UNIVERSITY]
    scheduler = LiveScheduler(ctx, SimulatedExecutor(), name="attack-scheduler")
    # the bank borrows the whole idle site beyond its 128-GPU lease
    borrowed = raw_api(bank.token).post(
        "/jobs",
        json={"gpus": 2304, "purpose": "financial AI", "command": "x", "duration_s": 86400},
    )
    assert borrowed.status_code == 201, borrowed.text
    job_id = borrowed.json()["id"]
    scheduler.tick()
    assert raw_api(bank.token).get(f"/jobs/{job_id}").json()["state"] == "running"

    # the university claims its 64-GPU guarantee: the bank's job is reclaimed
    clock.advance(5)
    claim = raw_api(university.token).post(
        "/jobs",
        json={"gpus": 64, "purpose": "scientific computing", "command": "x", "duration_s": 60},
    )
    assert claim.status_code == 201, claim.text
    scheduler.tick()
    clock.advance(ctx.settings.preemption_grace_s + 1)
    scheduler.tick()

    seen = raw_api(bank.token).get(f"/jobs/{job_id}")
    assert seen.status_code == 200
    assert seen.json()["state"] == "queued"
    assert seen.json()["preemptions"] == 1
    university_tenant = _me(raw_api, university.token)["tenant_id"]
    text = seen.text
    assert university_tenant not in text, seen.json()["wait_reason"]
    assert claim.json()["id"] not in text, seen.json()["wait_reason"]


def test_a_tenant_admin_listing_its_tokens_does_not_learn_operator_ids(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    # the operator created the bank's admin (and so its first token) and revokes one of them
    ops, bank = by_email[OPS], by_email[BANK]
    operator_id = _me(raw_api, ops.token)["user_id"]
    bank_id = _me(raw_api, bank.token)["user_id"]
    extra = raw_api(ops.token).post(f"/users/{bank_id}/tokens", json={"label": "ci"})
    assert extra.status_code == 201, extra.text
    revoked = raw_api(ops.token).post(
        f"/tokens/{extra.json()['id']}/revoke", json={"reason": "leaked in a CI log"}
    )
    assert revoked.status_code == 200, revoked.text

    listing = raw_api(bank.token).get(f"/users/{bank_id}/tokens")
    assert listing.status_code == 200, listing.text
    assert operator_id not in listing.text, listing.json()
