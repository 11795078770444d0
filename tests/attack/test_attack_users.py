"""Attack: the user and token lifecycle, from a tenant-admin's side.

The issue: "Operator staff are managed only by operator-admins. Token lifecycle: expiry,
revocation, listing a user's tokens, disabling a user". A user the operator disabled (a
compliance or abuse decision) must not be brought back by the tenant it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from gpulease.services import demo as demo_service

Client = Callable[[str | None], TestClient]  # the ``raw_api`` fixture

OPS = "ops@indosat.example"
BANK = "admin@bank.example"


def _user_id(client_api: Client, token: str) -> str:
    answer = client_api(token).get("/me")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["user_id"])


def test_a_tenant_admin_cannot_undo_the_operators_disabling_of_its_user(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    ops, bank = by_email[OPS], by_email[BANK]
    # the bank's admin makes a second admin; the operator disables it (abuse, compliance)
    made = raw_api(bank.token).post(
        "/users",
        json={"name": "Second", "email": "second@bank.example", "role": "tenant-admin"},
    )
    assert made.status_code == 201, made.text
    second_id, second_token = made.json()["user"]["id"], made.json()["token"]
    disabled = raw_api(ops.token).post(
        f"/users/{second_id}/disable", json={"reason": "operator: abuse investigation"}
    )
    assert disabled.status_code == 200, disabled.text
    assert raw_api(second_token).get("/me").status_code == 401

    # the tenant's other admin enables it again, and the old token works again
    enabled = raw_api(bank.token).post(f"/users/{second_id}/enable", json={"reason": "we disagree"})
    assert enabled.status_code in (403, 404), enabled.text
    assert raw_api(second_token).get("/me").status_code == 401


def test_a_disabled_users_old_tokens_stay_dead_after_it_is_enabled(
    raw_api: Client, by_email: dict[str, demo_service.DemoUser]
) -> None:
    # a user is disabled because its token leaked; enabling it again must not revive the
    # leaked token (the doc: disabling "stops all its tokens at once")
    ops, bank = by_email[OPS], by_email[BANK]
    bank_id = _user_id(raw_api, bank.token)
    assert (
        raw_api(ops.token)
        .post(f"/users/{bank_id}/disable", json={"reason": "token leaked"})
        .status_code
        == 200
    )
    assert (
        raw_api(ops.token)
        .post(f"/users/{bank_id}/enable", json={"reason": "new token issued"})
        .status_code
        == 200
    )
    assert raw_api(bank.token).get("/me").status_code == 401
