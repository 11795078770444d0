"""Column types and error mapping on the real databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.persistence.db import Database, DuplicateRecord
from gpulease.persistence.tables import Lease, Site, Tenant, User

T0 = datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=UTC)


def _site(site_id: str = "s1", at: datetime = T0) -> Site:
    return Site(
        id=site_id, name="Site", country="ID", city="Jakarta", hardware="gb200-nvl72", created_at=at
    )


def test_utc_datetime_round_trips_aware_utc(db: Database) -> None:
    plus7 = timezone(timedelta(hours=7))
    local = T0.astimezone(plus7)  # same instant, written with a +07:00 offset
    with db.transaction() as tx:
        tx.add(_site("utc", T0))
        tx.add(_site("plus7", local))
    with db.transaction(write=False) as tx:
        utc = tx.require(Site, "utc", "site")
        other = tx.require(Site, "plus7", "site")
        assert utc.created_at == T0
        assert utc.created_at.utcoffset() == timedelta(0)
        assert other.created_at == T0
        assert other.created_at.utcoffset() == timedelta(0)
        assert other.created_at.microsecond == 123456
        # comparisons in SQL use the instant
        found = tx.all(select(Site).where(Site.created_at >= T0).order_by(Site.id))
        assert [s.id for s in found] == ["plus7", "utc"]
        assert tx.all(select(Site).where(Site.created_at > T0)) == []


def test_utc_datetime_refuses_naive(db: Database) -> None:
    def write_naive() -> None:
        with db.transaction() as tx:
            tx.add(_site("naive", datetime(2026, 3, 2, 9, 0)))

    with pytest.raises(StatementError, match="naive datetime"):
        write_naive()
    with db.transaction(write=False) as tx:
        assert tx.get(Site, "naive") is None


def test_money_keeps_decimal_exactly(db: Database) -> None:
    amounts = [
        Decimal("0.01"),
        Decimal("12345678901234567890.123456789"),
        Decimal("0.1") + Decimal("0.2"),
        Decimal("-3.50"),
        Decimal("100.10"),
    ]
    with db.transaction() as tx:
        tx.add(_site())
        tx.add(Tenant(id="t1", name="T", country="ID", kind="bank", created_at=T0))
        tx.flush()
        for i, amount in enumerate(amounts):
            tx.add(
                Lease(
                    id=f"lease-{i}",
                    tenant_id="t1",
                    site_id="s1",
                    gpus=1,
                    racks=None,
                    start=T0,
                    end=T0 + timedelta(hours=1),
                    state="requested",
                    state_reason="",
                    price=amount,
                    rate=Decimal("3.50"),
                    currency="USD",
                    created_by="u",
                    created_at=T0,
                    updated_at=T0,
                )
            )
    with db.transaction(write=False) as tx:
        for i, amount in enumerate(amounts):
            lease = tx.require(Lease, f"lease-{i}", "lease")
            assert isinstance(lease.price, Decimal)
            assert lease.price == amount
            assert str(lease.price) == str(amount)  # the exponent too: 100.10 stays 100.10
            assert str(lease.rate) == "3.50"
        assert lease.version == 1


def test_unique_clash_is_duplicate_record(db: Database) -> None:
    def user(user_id: str) -> User:
        return User(
            id=user_id,
            tenant_id=None,
            name=user_id,
            email="same@example.com",
            role="operator-admin",
            created_at=T0,
        )

    with db.transaction() as tx:
        tx.add(user("u1"))
    with pytest.raises(DuplicateRecord) as caught, db.transaction() as tx:
        tx.add(user("u2"))
    assert isinstance(caught.value, Conflict)
    assert caught.value.code == "conflict"
    with db.transaction(write=False) as tx:  # the failed transaction left nothing behind
        assert [u.id for u in tx.all(select(User))] == ["u1"]

    # and a primary-key clash is reported the same way
    def same_key_twice() -> None:
        with db.transaction() as tx:
            tx.add(_site("dup"))
            tx.flush()
            tx.session.expunge_all()
            tx.add(_site("dup"))

    with pytest.raises(DuplicateRecord):
        same_key_twice()


def test_value_refused_by_the_database_is_invalid_request(postgres_url: str) -> None:
    """PostgreSQL enforces column widths; the refusal is a DomainError, not a driver error."""
    db = Database(postgres_url)
    try:

        def too_long() -> None:
            with db.transaction() as tx:
                tx.add(_site("s" * 10, T0))
                tx.flush()
                tx.require(Site, "s" * 10, "site").name = "n" * 201

        with pytest.raises(InvalidRequest, match="too long"):
            too_long()
        with db.transaction(write=False) as tx:
            assert tx.all(select(Site)) == []
    finally:
        db.dispose()
