"""The served API (``gpulease serve``, uvicorn) believes X-Forwarded-For only from the
configured trusted proxies. The finding: uvicorn's default trusted it from any local peer,
and it fed the customer-identification record of the addresses a tenant's users came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from e2e_support import Server
from sqlalchemy import select

from gpulease.persistence.db import Database
from gpulease.persistence.tables import AccessRecord, User


def addresses(db_url: str, email: str) -> set[str]:
    db = Database(db_url)
    try:
        with db.transaction(write=False) as tx:
            user = tx.first(select(User).where(User.email == email))
            assert user is not None
            rows = tx.all(select(AccessRecord).where(AccessRecord.user_id == user.id))
            return {r.ip for r in rows}
    finally:
        db.dispose()


def me_via(server: Server, who: str, forwarded_for: str) -> None:
    with server.client(who) as client:
        answer = client.get("/me", headers={"X-Forwarded-For": forwarded_for})
        assert answer.status_code == 200, answer.text


def test_forwarded_for_is_believed_only_from_configured_proxies(
    start_server: Callable[..., Server], e2e_db_url: str
) -> None:
    # no trusted proxies: the local peer's header is ignored
    plain = start_server("--no-scheduler")
    me_via(plain, "bank", "203.0.113.77")
    assert addresses(e2e_db_url, "admin@bank.example") == {"127.0.0.1"}

    # 127.0.0.1 configured as the proxy: its header names the client
    behind_proxy = start_server(
        "--no-scheduler", GPULEASE_TRUSTED_PROXIES=json.dumps(["127.0.0.1"])
    )
    me_via(behind_proxy, "university", "203.0.113.78")
    assert addresses(e2e_db_url, "admin@university.example") == {"203.0.113.78"}
