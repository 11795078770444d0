"""Limits of the API, over the in-process app: failed authentications per client address,
job submissions per tenant, trusted proxies, and the bounds on lease requests.

Findings reproduced: "2,000 bad tokens in 4 s met no rate limit"; "X-Forwarded-For is
trusted from any local peer and feeds the customer-identification IP record"; "an
unapproved lease request holds capacity for any length and size".
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpulease.api.app import create_app
from gpulease.domain.clock import ManualClock
from gpulease.persistence.tables import AccessRecord
from gpulease.services.context import ServiceContext
from gpulease.services.demo import DemoUser
from gpulease.settings import Settings

Client = Callable[..., TestClient]
SUBMISSIONS_PER_MINUTE = 5  # small, so a flood is a few requests
PROXY = "10.20.0.2"  # the reverse proxy of the tests that configure one
JOB = {"gpus": 1, "purpose": "financial AI: fraud model", "command": "train", "duration_s": 60}


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "var",
        submissions_per_minute=SUBMISSIONS_PER_MINUTE,
    )


@pytest.fixture
def served(ctx: ServiceContext) -> Iterator[Client]:
    """``served(token, peer=..., **settings)``: a client of an app built with these settings
    (one app per distinct settings, as a server process would be), from TCP peer ``peer``."""
    apps: dict[str, Any] = {}
    with ExitStack() as stack:

        def client(token: str | None, peer: str = "testclient", **overrides: Any) -> TestClient:
            key = repr(sorted(overrides.items()))
            if key not in apps:
                settings = ctx.settings.model_copy(update={"run_scheduler": False, **overrides})
                if "trusted_proxies" in overrides:  # validated, as from the environment
                    settings = Settings.model_validate(settings.model_dump())
                apps[key] = create_app(
                    ctx=ServiceContext(ctx.db, settings=settings, clock=ctx.clock)
                )
            made = TestClient(apps[key], base_url="http://testserver/api/v1", client=(peer, 40000))
            if token is not None:
                made.headers["Authorization"] = f"Bearer {token}"
            return stack.enter_context(made)

        yield client


def user(demo: list[DemoUser], email: str) -> DemoUser:
    return next(u for u in demo if u.email == email)


def bad_token() -> str:
    return "glt_" + secrets.token_hex(20)


def recorded_addresses(ctx: ServiceContext, user_email: str, demo: list[DemoUser]) -> set[str]:
    from gpulease.services import identity

    principal = identity.authenticate(ctx, user(demo, user_email).token)
    with ctx.db.transaction(write=False) as tx:
        rows = tx.all(select(AccessRecord).where(AccessRecord.user_id == principal.user_id))
    return {r.ip for r in rows}


# --------------------------------------------------------------- authentication failures
FLOOD = 500  # bad tokens from one address (the finding: 2,000 in 4 s met no limit)


def test_a_flood_of_bad_tokens_from_one_address_meets_429(
    served: Client, demo: list[DemoUser], clock: ManualClock, settings: Settings
) -> None:
    limit = settings.auth_failures_per_minute  # 30 by default
    attacker = served(None)
    answers = Counter()
    retry_after: set[int] = set()
    for _ in range(FLOOD):
        answer = attacker.get("/me", headers={"Authorization": f"Bearer {bad_token()}"})
        answers[answer.status_code] += 1
        if answer.status_code == 429:
            assert answer.json()["code"] == "rate_limited"
            retry_after.add(int(answer.headers["Retry-After"]))
    assert answers == {401: limit, 429: FLOOD - limit}
    assert retry_after == {60}  # the clock did not move: the whole window is left
    body = attacker.get("/me", headers={"Authorization": f"Bearer {bad_token()}"}).json()
    assert "too many failed authentications from testclient" in body["message"]
    assert body["details"]["retry_after_s"] == 60

    # the block is per address: another peer still gets an honest 401
    elsewhere = served(None, peer="198.51.100.7")
    assert elsewhere.get("/me", headers={"Authorization": f"Bearer {bad_token()}"}).status_code == (
        401
    )
    # a valid token not yet seen from the blocked address waits for the window too
    bank = user(demo, "admin@bank.example")
    assert served(bank.token).get("/me").status_code == 429
    clock.advance(59)
    assert int(attacker.get("/me").headers["Retry-After"]) == 1
    clock.advance(1)
    assert served(bank.token).get("/me").status_code == 200
    assert attacker.get("/me", headers={"Authorization": f"Bearer {bad_token()}"}).status_code == (
        401
    )


def test_a_token_already_in_use_from_a_blocked_address_still_works(
    served: Client, demo: list[DemoUser], settings: Settings
) -> None:
    """One client behind a NAT guessing tokens does not lock out its neighbours who were
    already working from the same address."""
    neighbour = served(user(demo, "admin@university.example").token)
    assert neighbour.get("/me").status_code == 200
    attacker = served(None)
    for _ in range(settings.auth_failures_per_minute):
        attacker.get("/me", headers={"Authorization": f"Bearer {bad_token()}"})
    assert attacker.get("/me", headers={"Authorization": f"Bearer {bad_token()}"}).status_code == (
        429
    )
    assert neighbour.get("/me").status_code == 200


# --------------------------------------------------------------------- job submissions
def test_a_flood_of_submissions_from_one_tenant_meets_429_and_others_still_submit(
    served: Client, demo: list[DemoUser], clock: ManualClock
) -> None:
    bank = served(user(demo, "admin@bank.example").token)
    inftech = served(user(demo, "admin@inftech.example").token)
    answers = Counter()
    for _ in range(20):
        answer = bank.post("/jobs", json=JOB)
        answers[answer.status_code] += 1
        if answer.status_code == 429:
            assert answer.json()["code"] == "rate_limited"
            assert answer.headers["Retry-After"] == "60"
            assert "jobs in the last minute" in answer.json()["message"]
    assert answers == {201: SUBMISSIONS_PER_MINUTE, 429: 20 - SUBMISSIONS_PER_MINUTE}
    assert inftech.post("/jobs", json=JOB).status_code == 201
    assert bank.get("/jobs").status_code == 200  # reading is not submitting
    clock.advance(60)
    assert bank.post("/jobs", json=JOB).status_code == 201


# ---------------------------------------------------------------------- trusted proxies
def test_forwarded_for_from_an_untrusted_peer_does_not_change_the_address(
    served: Client, demo: list[DemoUser], ctx: ServiceContext
) -> None:
    bank = served(user(demo, "admin@bank.example").token)
    assert bank.get("/me", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    # nor from a local peer (uvicorn's own default trusts 127.0.0.1)
    local = served(user(demo, "admin@bank.example").token, peer="127.0.0.1")
    assert local.get("/me", headers={"X-Forwarded-For": "203.0.113.10"}).status_code == 200
    assert recorded_addresses(ctx, "admin@bank.example", demo) == {"testclient", "127.0.0.1"}


def test_forwarded_for_from_a_configured_proxy_sets_the_address(
    served: Client, demo: list[DemoUser], ctx: ServiceContext
) -> None:
    token = user(demo, "admin@bank.example").token
    proxied = served(token, peer=PROXY, trusted_proxies=["10.20.0.0/24"])
    assert proxied.get("/me", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 200
    # a peer outside the configured network is not believed
    direct = served(token, peer="10.30.0.5", trusted_proxies=["10.20.0.0/24"])
    assert direct.get("/me", headers={"X-Forwarded-For": "203.0.113.66"}).status_code == 200
    assert recorded_addresses(ctx, "admin@bank.example", demo) == {"203.0.113.9", "10.30.0.5"}


def test_auth_failures_count_per_forwarded_client_behind_a_trusted_proxy(
    served: Client, settings: Settings
) -> None:
    proxy = served(None, peer=PROXY, trusted_proxies=[PROXY])

    def guess(client_ip: str) -> int:
        headers = {"Authorization": f"Bearer {bad_token()}", "X-Forwarded-For": client_ip}
        return proxy.get("/me", headers=headers).status_code

    codes = Counter(guess("203.0.113.9") for _ in range(settings.auth_failures_per_minute + 5))
    assert codes == {401: settings.auth_failures_per_minute, 429: 5}
    assert guess("203.0.113.10") == 401  # another client behind the same proxy


def test_a_malformed_trusted_proxy_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="not an IP address or network"):
        Settings(trusted_proxies=["*"])
    assert Settings(trusted_proxies=["10.1.2.3/24"]).trusted_proxies == ["10.1.2.0/24"]


# ------------------------------------------------------------------------- lease bounds
def test_lease_windows_start_now_and_end_within_the_horizon(
    served: Client, demo: list[DemoUser], clock: ManualClock, settings: Settings
) -> None:
    bank = served(user(demo, "admin@bank.example").token)
    now = clock.now()

    def window(start: timedelta, end: timedelta) -> dict[str, Any]:
        return {"gpus": 8, "start": (now + start).isoformat(), "end": (now + end).isoformat()}

    horizon = timedelta(days=settings.lease_horizon_days)
    too_far = bank.post("/leases", json=window(timedelta(days=1), horizon + timedelta(days=1)))
    assert too_far.status_code == 422
    assert too_far.json()["code"] == "invalid_request"
    assert too_far.json()["details"]["field"] == "end"
    assert f"within {settings.lease_horizon_days:,} days" in too_far.json()["message"]
    past = bank.post("/leases", json=window(-timedelta(days=30), timedelta(days=1)))
    assert past.status_code == 422
    assert past.json()["details"]["field"] == "start"
    assert "in the past" in past.json()["message"]
    # "now", as a client's clock and the request's trip make it, is fine; so is the horizon
    assert bank.post("/leases", json=window(-timedelta(seconds=30), horizon)).status_code == 201


def test_one_tenant_cannot_hold_most_of_the_site_with_an_unapproved_request(
    served: Client, demo: list[DemoUser], clock: ManualClock
) -> None:
    start = clock.now() + timedelta(days=1)
    body = {"start": start.isoformat(), "end": (start + timedelta(days=3 * 365)).isoformat()}
    hog = served(user(demo, "admin@inftech.example").token).post(
        "/leases", json=body | {"gpus": 1472}
    )
    assert hog.status_code == 409
    assert hog.json()["code"] == "conflict"
    assert "Ask for at most 576 GPUs" in hog.json()["message"]
    other = served(user(demo, "admin@bank.example").token).post(
        "/leases", json=body | {"gpus": 500}
    )
    assert other.status_code == 201, other.text
