"""The lease calendar (pure): admission never oversells, at any instant of the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.domain.errors import InsufficientCapacity, InvalidRequest
from gpulease.leasing.calendar import Hold, admit, availability
from gpulease.leasing.pricing import quote

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def hold(start: float, end: float, gpus: int, what: str = "") -> Hold:
    return Hold(at(start), at(end), gpus, what)


def test_exact_fit_is_admitted_and_one_more_is_refused_naming_the_instant() -> None:
    holds = [hold(0, 10, 600), hold(5, 8, 100)]  # peak 700 held over [5, 8)
    found = admit(1000, 300, at(0), at(10), holds)
    assert found.free_min == 300
    assert found.at == at(5)
    assert found.leased_peak == 700
    with pytest.raises(InsufficientCapacity) as caught:
        admit(1000, 301, at(0), at(10), holds)
    error = caught.value
    assert error.code == "insufficient_capacity"
    assert at(5).isoformat() in error.message
    assert error.details == {"requested": 301, "free": 300, "at": at(5).isoformat()}
    # outside the peak the same request fits
    assert admit(1000, 400, at(8), at(10), holds).free_min == 400


def test_more_than_the_site_is_refused() -> None:
    with pytest.raises(InsufficientCapacity, match="1,000 GPUs in all"):
        admit(1000, 1001, at(0), at(1), [])
    with pytest.raises(InvalidRequest):
        admit(1000, 0, at(0), at(1), [])
    with pytest.raises(InvalidRequest):
        admit(1000, 1, at(1), at(1), [])


def test_intervals_are_half_open() -> None:
    full = [hold(0, 10, 1000)]
    # back to back: a lease ending at 10 and one starting at 10 do not overlap
    assert admit(1000, 1000, at(10), at(20), full).free_min == 1000
    assert admit(1000, 1000, at(-5), at(0), full).free_min == 1000
    # one instant of overlap is an overlap
    with pytest.raises(InsufficientCapacity):
        admit(1000, 1, at(9.99), at(20), full)
    with pytest.raises(InsufficientCapacity):
        admit(1000, 1, at(-5), at(0.01), full)


def test_maintenance_reduces_capacity() -> None:
    leases = [hold(0, 10, 500)]
    maintenance = [hold(4, 6, 72, "rack 3 maintenance")]
    found = availability(1000, at(0), at(10), leases, maintenance)
    assert (found.free_min, found.at, found.leased_peak, found.maintenance_peak) == (
        428,
        at(4),
        500,
        72,
    )
    assert admit(1000, 428, at(0), at(10), leases, maintenance).free_min == 428
    with pytest.raises(InsufficientCapacity, match="72 in maintenance"):
        admit(1000, 429, at(0), at(10), leases, maintenance)
    # after the window the capacity is back
    assert admit(1000, 500, at(6), at(10), leases, maintenance).free_min == 500


def _brute_force_fits(total: int, gpus: int, start: int, end: int, holds: list[Hold]) -> bool:
    """Check every breakpoint (every hour boundary the holds use) inside the window."""
    for t in range(start, end):
        used = sum(h.gpus for h in holds if h.start <= at(t) < h.end)
        if used + gpus > total:
            return False
    return True


intervals = st.tuples(st.integers(0, 24), st.integers(1, 12), st.integers(1, 60)).map(
    lambda s: hold(s[0], s[0] + s[1], s[2])
)


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(1, 120),
    holds=st.lists(intervals, max_size=8),
    maintenance=st.lists(intervals, max_size=3),
    start=st.integers(0, 30),
    length=st.integers(1, 12),
    gpus=st.integers(1, 120),
)
def test_admit_iff_brute_force(
    total: int, holds: list[Hold], maintenance: list[Hold], start: int, length: int, gpus: int
) -> None:
    expected = gpus <= total and _brute_force_fits(
        total, gpus, start, start + length, holds + maintenance
    )
    try:
        found = admit(total, gpus, at(start), at(start + length), holds, maintenance)
    except InsufficientCapacity:
        assert not expected
    else:
        assert expected
        assert found.free_min >= gpus
        assert found.free_min == min(
            total - sum(h.gpus for h in holds + maintenance if h.start <= at(t) < h.end)
            for t in range(start, start + length)
        )


def test_quote_is_exact_decimal() -> None:
    q = quote(576, at(0), at(24 * 365), Decimal("3.50"), "USD")
    assert q.gpu_hours == Decimal("5045760.00")
    assert q.amount == Decimal("17660160.00")
    assert (q.rate_per_gpu_hour, q.currency) == (Decimal("3.50"), "USD")
    # a third of an hour of one GPU at 1.00 rounds half-up to the cent
    third = quote(1, at(0), at(0) + timedelta(minutes=20), Decimal("1.00"), "EUR")
    assert third.amount == Decimal("0.33")
    assert third.gpu_hours == Decimal("0.33")
    half_cent = quote(1, at(0), at(0) + timedelta(seconds=18), Decimal("1.00"), "USD")
    assert half_cent.amount == Decimal("0.01")  # 0.005 -> 0.01, half up (not banker's)
    odd = quote(3, at(0), at(0) + timedelta(seconds=7), Decimal("2.17"), "USD")
    assert odd.amount == Decimal("0.01")  # 3*7*2.17/3600 = 0.0126583...
    assert all(isinstance(v, Decimal) for v in (q.amount, q.gpu_hours, odd.amount))
