"""Usage records: cuts at periods and price changes, named errors instead of double counts,
and the reconciliation property over a simulated week with preemptions and failovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metering_support import PLANS, at

from gpulease.metering.invoices import check, issue
from gpulease.metering.periods import (
    Granularity,
    NaiveTimestamp,
    Period,
    micros_between,
    next_boundary,
    period_start,
)
from gpulease.metering.rating import USAGE_KINDS, LeaseTerm, rate_period
from gpulease.metering.usage import (
    Allocation,
    CapacityClass,
    ConflictingAllocation,
    InvertedInterval,
    MeteringError,
    OverlappingAllocations,
    allocated_micros,
    meter,
)

NOW = at("2026-02-10 12:00")


def one(id_: str, serial: str, start: datetime, end: datetime | None, job: str = "j") -> Allocation:
    return Allocation(id_, "bravo", job, serial, start, end, CapacityClass.ON_DEMAND)


def test_open_allocation_is_metered_up_to_now() -> None:
    recs = meter([one("a", "S1", at("2026-02-10 10:30"), None)], NOW)
    assert [(r.start.hour, r.start.minute, r.gpu_seconds, r.open) for r in recs] == [
        (10, 30, Decimal(1800), True),
        (11, 0, Decimal(3600), True),
    ]
    # Metered again later, the same slices keep their ids and the new ones follow.
    later = meter([one("a", "S1", at("2026-02-10 10:30"), None)], at("2026-02-10 12:10"))
    assert [r.id for r in later][:2] == [r.id for r in recs]
    assert later[-1].gpu_seconds == Decimal(600)


def test_overlapping_allocations_of_one_gpu_are_an_error_naming_both() -> None:
    a = one("a", "S1", at("2026-02-10 08:00"), at("2026-02-10 10:00"))
    b = one("b", "S1", at("2026-02-10 09:59:59"), at("2026-02-10 11:00"))
    with pytest.raises(OverlappingAllocations) as err:
        meter([b, a], NOW)
    assert err.value.details["allocations"] == ["a", "b"]
    assert err.value.code == "overlapping_allocations"
    # A later allocation inside a long earlier one is found too (running maximum end).
    long = one("l", "S2", at("2026-02-10 01:00"), at("2026-02-10 09:00"))
    short = one("s", "S2", at("2026-02-10 02:00"), at("2026-02-10 03:00"))
    inner = one("i", "S2", at("2026-02-10 04:00"), at("2026-02-10 05:00"))
    with pytest.raises(OverlappingAllocations):
        meter([long, short, inner], NOW)
    # An open allocation overlaps whatever starts on its GPU after it.
    with pytest.raises(OverlappingAllocations):
        meter([one("o", "S3", at("2026-02-10 08:00"), None), one("p", "S3", NOW, None)],
              at("2026-02-10 13:00"))  # fmt: skip
    # Back to back is not an overlap, and other GPUs are independent.
    ok = [a, one("c", "S1", at("2026-02-10 10:00"), at("2026-02-10 11:00")), long]
    assert sum(r.micros for r in meter(ok, NOW)) == (2 + 1 + 8) * 3600 * 10**6


def test_duplicates_count_once_and_conflicts_are_errors() -> None:
    a = one("a", "S1", at("2026-02-10 08:00"), at("2026-02-10 10:00"))
    assert sum(r.micros for r in meter([a, a], NOW)) == 2 * 3600 * 10**6
    moved = one("a", "S1", at("2026-02-10 08:00"), at("2026-02-10 10:30"))
    with pytest.raises(ConflictingAllocation):
        meter([a, moved], NOW)


def test_clock_steps_are_errors_not_negative_usage() -> None:
    with pytest.raises(InvertedInterval):
        meter([one("a", "S1", at("2026-02-10 10:00"), at("2026-02-10 09:59"))], NOW)
    with pytest.raises(InvertedInterval, match="open"):
        meter([one("a", "S1", at("2026-02-10 12:00:01"), None)], NOW)
    with pytest.raises(NaiveTimestamp):
        meter([one("a", "S1", datetime(2026, 2, 10, 8), None)], NOW)
    # Any aware offset is taken and converted to UTC.
    plus2 = datetime(2026, 2, 10, 11, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    recs = meter([one("a", "S1", plus2, None)], NOW)
    assert recs[0].start == at("2026-02-10 11:30")


def test_allocation_fields_are_consistent() -> None:
    with pytest.raises(MeteringError, match="lease"):
        Allocation("g", "acme", "j", "S1", NOW, None, CapacityClass.GUARANTEED)
    with pytest.raises(MeteringError, match="borrowed"):
        Allocation("g", "acme", "j", "S1", NOW, None, CapacityClass.ON_DEMAND,
                   lender_lease_id="L1", lender_tenant="bravo")  # fmt: skip
    with pytest.raises(MeteringError, match="itself"):
        Allocation("g", "acme", "j", "S1", NOW, None, CapacityClass.BORROWED,
                   lender_lease_id="L1", lender_tenant="acme")  # fmt: skip


def test_periods_tile_the_time_line() -> None:
    t = at("2026-12-31 23:59:59")
    assert next_boundary(t, Granularity.MONTH) == at("2027-01-01 00:00")
    assert next_boundary(t, Granularity.DAY) == at("2027-01-01 00:00")
    assert period_start(t, Granularity.HOUR) == at("2026-12-31 23:00")
    assert Period.of(at("2026-02-14 05:00"), Granularity.MONTH) == Period(
        at("2026-02-01 00:00"), at("2026-03-01 00:00")
    )


# --- the reconciliation property -------------------------------------------------------

WEEK_START = at("2026-03-13 00:00")  # the week holds plan v2's start (Mar 15 12:00)
WEEK = 7 * 86_400 * 10**6  # microseconds
TENANTS = ("acme", "bravo", "cargo")
# one lease per tenant over the whole simulated week: its guaranteed runs are covered
LEASES = [LeaseTerm(f"L-{t}", t, 4, WEEK_START, WEEK_START + timedelta(days=8)) for t in TENANTS]


@st.composite
def week_of_allocations(draw: st.DrawFn) -> tuple[list[Allocation], datetime]:
    """Per GPU, a run of back-to-back or spaced intervals inside the week: each boundary is
    a preemption (closed, reopened later, maybe by another job) or a failover (the same job
    continued on another GPU: its next interval is put on another GPU's timeline); the last
    interval of a GPU may still be open at ``now``."""
    gpus = draw(st.integers(1, 5))
    now_us = draw(st.integers(WEEK // 2, WEEK))
    allocations: list[Allocation] = []
    n = 0
    for g in range(gpus):
        t = draw(st.integers(0, 86_400 * 10**6))
        for _ in range(draw(st.integers(0, 6))):
            length = draw(st.integers(0, 2 * 86_400 * 10**6))
            if t >= now_us:
                break
            is_open = t + length >= now_us or (draw(st.booleans()) and draw(st.booleans()))
            tenant = draw(st.sampled_from(TENANTS))
            job = f"job-{draw(st.integers(0, 4))}"  # shared ids: failovers and requeues
            cap = draw(st.sampled_from(list(CapacityClass)))
            lender = None
            if cap is CapacityClass.BORROWED and tenant != "acme" and draw(st.booleans()):
                lender = ("L-acme", "acme")  # acme's idle guaranteed GPUs
            n += 1
            start = WEEK_START + timedelta(microseconds=t)
            end = None if is_open else start + timedelta(microseconds=length)
            allocations.append(
                Allocation(f"a{n}", tenant, job, f"S{g}", start, end, cap,
                           lease_id=f"L-{tenant}" if cap is CapacityClass.GUARANTEED else None,
                           lender_lease_id=None if lender is None else lender[0],
                           lender_tenant=None if lender is None else lender[1])
            )  # fmt: skip
            if is_open:
                break
            t += length + draw(st.sampled_from([0, 0, 1, 10**6, 3600 * 10**6]))
    allocations.reverse()  # order of the input does not matter
    return allocations, WEEK_START + timedelta(microseconds=now_us)


def test_an_empty_allocation_beside_a_real_one_at_the_same_instant_is_no_overlap() -> None:
    """Found by the property below: a10 = [T, T+1h) and a8 = [T, T) on one GPU sort as
    a10, a8 (ids compared as text) and were called an overlap."""
    t = WEEK_START
    empty = Allocation("a8", "acme", "job-1", "S4", t, t, CapacityClass.GUARANTEED, "L-acme")
    real = Allocation(
        "a10",
        "acme",
        "job-2",
        "S4",
        t,
        t + timedelta(hours=1),
        CapacityClass.GUARANTEED,
        "L-acme",
    )
    records = meter([empty, real], t + timedelta(hours=2))
    assert sum(r.micros for r in records) == 3_600 * 10**6


@settings(max_examples=60, deadline=None)
@given(week_of_allocations(), st.sampled_from(list(Granularity)))
def test_metered_gpu_seconds_equal_allocated(
    case: tuple[list[Allocation], datetime], granularity: Granularity
) -> None:
    allocations, now = case
    changes = PLANS["acme"].change_times()
    records = meter(allocations, now, granularity, changes)
    # Independently computed allocated time, per allocation and in all.
    expected = {
        a.id: micros_between(a.start, a.end if a.end is not None else now) for a in allocations
    }
    got: dict[str, int] = {}
    for r in records:
        got[r.allocation_id] = got.get(r.allocation_id, 0) + r.micros
        assert r.micros > 0
        # inside one period of the granularity, and on one side of every price change
        assert r.end <= next_boundary(r.start, granularity)
        assert not any(r.start < c < r.end for c in changes)
    assert got == {k: v for k, v in expected.items() if v}
    assert sum(r.micros for r in records) == allocated_micros(allocations, now)
    assert sum(r.gpu_seconds for r in records) == Decimal(sum(expected.values())).scaleb(-6)
    assert len({r.id for r in records}) == len(records)
    # Metering is deterministic whatever the order of the input.
    assert meter(sorted(allocations, key=lambda a: a.id), now, granularity, changes) == records
    # Invoices: every tenant's month adds up and cites exactly its usage in the month.
    by_id = {r.id: r for r in records}
    for month in {Period.of(r.start, Granularity.MONTH) for r in records}:
        in_month = [r for r in records if month.start <= r.start < month.end]
        for tenant in TENANTS:
            rated = rate_period(tenant, month, in_month, LEASES, PLANS)
            invoice = issue(rated, f"{tenant}-{month.start:%Y%m}", month.end)
            check(invoice, by_id)
            assert invoice.total == sum((ln.amount for ln in invoice.lines), Decimal(0))
            cited = [u for ln in invoice.lines if ln.kind in USAGE_KINDS for u in ln.usage_ids]
            assert sorted(cited) == sorted(r.id for r in in_month if r.tenant == tenant)


@settings(max_examples=40, deadline=None)
@given(week_of_allocations(), st.data())
def test_an_overlap_is_always_named(
    case: tuple[list[Allocation], datetime], data: st.DataObject
) -> None:
    allocations, now = case
    victims = [a for a in allocations if (a.end or now) > a.start]
    if not victims:
        return
    a = data.draw(st.sampled_from(victims))
    end = a.end or now
    inside = a.start + (end - a.start) / 2
    dup = Allocation("dup", a.tenant, a.job_id, a.gpu_serial, inside, end, CapacityClass.BORROWED)
    with pytest.raises(OverlappingAllocations):
        meter([*allocations, dup], now)
