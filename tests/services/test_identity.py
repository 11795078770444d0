"""Tokens, authentication and the first operator, on the real databases."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, Unauthenticated
from gpulease.persistence.tables import AccessRecord, ApiToken, User
from gpulease.services import identity, tokens
from gpulease.services.context import ServiceContext


def test_bootstrap_then_tokens(ctx: ServiceContext) -> None:
    user, token = identity.bootstrap_operator(ctx, name="Ops", email="ops@example.com")
    principal = identity.authenticate(ctx, token)
    assert (principal.user_id, principal.role, principal.tenant_id) == (
        user.id,
        Role.OPERATOR_ADMIN,
        None,
    )
    with pytest.raises(Conflict):
        identity.bootstrap_operator(ctx, name="Ops 2", email="ops2@example.com")
    with ctx.db.transaction(write=False) as tx:
        stored = tx.all(select(ApiToken))
    assert len(stored) == 1
    assert stored[0].token_hash == tokens.hash_token(token)
    assert token not in {stored[0].token_hash, stored[0].prefix}  # only the hash is kept
    for bad in (None, "", "glt_" + "0" * 40, token + "x"):
        with pytest.raises(Unauthenticated):
            identity.authenticate(ctx, bad)


def test_concurrent_bootstraps_make_one_operator(ctx: ServiceContext) -> None:
    threads = 6
    barrier = threading.Barrier(threads)
    won: list[str] = []
    refused: list[BaseException] = []
    lock = threading.Lock()

    def go(i: int) -> None:
        barrier.wait()
        try:
            user, _token = identity.bootstrap_operator(
                ctx, name=f"Ops {i}", email=f"ops{i}@example.com"
            )
        except Conflict as error:
            with lock:
                refused.append(error)
        else:
            with lock:
                won.append(user.id)

    workers = [threading.Thread(target=go, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert len(won) == 1
    assert len(refused) == threads - 1
    with ctx.db.transaction(write=False) as tx:
        assert [u.id for u in tx.all(select(User))] == won


def test_access_records_count_every_request_with_at_most_a_minute_of_lag(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal
) -> None:

    def row() -> AccessRecord:
        with ctx.db.transaction(write=False) as tx:
            found = tx.first(tx.select(AccessRecord).where(AccessRecord.ip == "192.0.2.9"))
        assert found is not None
        return found

    first = clock.now()
    for _ in range(5):
        identity.note_access(ctx, inftech, "192.0.2.9")
        clock.advance(5)
    assert row().requests == 1  # written at the first request, then counted in memory
    clock.advance(40)
    identity.note_access(ctx, inftech, "192.0.2.9")  # a minute later: the count is written
    written = row()
    assert written.requests == 6
    assert written.first_seen == first
    assert written.last_seen == clock.now()
    assert written.tenant_id == inftech.tenant_id
