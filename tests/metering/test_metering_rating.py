"""The issue's literal rating examples, each worked out by hand in its comment.

Plan ``std`` (``metering_support``): v1 from 2026-01-01: reserved 2.00, on-demand 3.00,
borrowed 40% off (1.80), lending share 25%; v2 from 2026-03-15 12:00: reserved 2.40,
on-demand 3.60, borrowed 50% off (1.80), lending share 30%. All USD per GPU-hour; amounts are
rounded half-up to cents (USD has 2 minor units in CLDR).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from metering_support import PLANS, at

from gpulease.domain.errors import InvalidRequest
from gpulease.metering.invoices import check, issue
from gpulease.metering.money import UnknownCurrency, minor_units, round_money
from gpulease.metering.periods import Granularity, Period
from gpulease.metering.plans import NoPlanInForce, PlanSchedule, PlanVersion
from gpulease.metering.rating import (
    Degradation,
    GuaranteeWait,
    LeaseTerm,
    Line,
    LineKind,
    SlaEvidence,
    SlaRule,
    UncoveredUsage,
    rate_period,
)
from gpulease.metering.usage import Allocation, CapacityClass, UsageRecord, meter

FEB = Period.of(at("2026-02-01 00:00"), Granularity.MONTH)
MAR = Period.of(at("2026-03-01 00:00"), Granularity.MONTH)
NOW = at("2026-04-01 00:00")
L1 = LeaseTerm("L1", "acme", 8, at("2026-02-10 00:00"), at("2026-02-12 00:00"))
RULE = SlaRule(
    slo_wait=timedelta(minutes=30),
    wait_multiple=Decimal(2),
    degraded_multiple=Decimal(1),
    cap_share=Decimal("0.5"),
)


def alloc(
    id_: str,
    tenant: str,
    serial: str,
    start: str,
    end: str | None,
    capacity: CapacityClass,
    lease: str | None = None,
    lender: tuple[str, str] | None = None,
) -> Allocation:
    return Allocation(
        id=id_,
        tenant=tenant,
        job_id=f"job-{id_}",
        gpu_serial=serial,
        start=at(start),
        end=None if end is None else at(end),
        capacity=capacity,
        lease_id=lease,
        lender_lease_id=None if lender is None else lender[0],
        lender_tenant=None if lender is None else lender[1],
    )


def records_of(*allocations: Allocation) -> list[UsageRecord]:
    return meter(allocations, NOW, Granularity.HOUR, PLANS["acme"].change_times())


def only(lines: tuple[Line, ...], kind: LineKind) -> Line:
    found = [ln for ln in lines if ln.kind is kind]
    assert len(found) == 1, found
    return found[0]


def test_reserved_lease_billed_whether_used_or_not() -> None:
    # 8 GPUs x 48 h (Feb 10 00:00 .. Feb 12 00:00) = 384 GPU-h x 2.00 = 768.00, with no usage.
    rated = rate_period("acme", FEB, [], [L1], PLANS)
    line = only(rated.lines, LineKind.RESERVED)
    assert line.quantity == Decimal("384.000000")
    assert line.unit_price == Decimal("2.00")
    assert line.amount == Decimal("768.00")
    assert issue(rated, "INV-1", NOW).total == Decimal("768.00")
    # Guaranteed use of the lease (4 GPUs x 10 h = 40 GPU-h) is shown at 0 and adds nothing.
    used = [
        alloc(f"g{i}", "acme", f"S{i}", "2026-02-10 08:00", "2026-02-10 18:00",
              CapacityClass.GUARANTEED, lease="L1")
        for i in range(4)
    ]  # fmt: skip
    rated = rate_period("acme", FEB, records_of(*used), [L1], PLANS)
    included = only(rated.lines, LineKind.INCLUDED)
    assert (included.quantity, included.amount) == (Decimal("40.000000"), Decimal("0.00"))
    assert len(included.usage_ids) == 40  # 4 GPUs x 10 hourly records
    assert issue(rated, "INV-2", NOW).total == Decimal("768.00")


def test_on_demand() -> None:
    # 2 GPUs x 2.5 h (10:00 .. 12:30) = 5 GPU-h x 3.00 = 15.00; hourly records: 3 per GPU.
    recs = records_of(
        alloc("o1", "bravo", "S1", "2026-02-03 10:00", "2026-02-03 12:30", CapacityClass.ON_DEMAND),
        alloc("o2", "bravo", "S2", "2026-02-03 10:00", "2026-02-03 12:30", CapacityClass.ON_DEMAND),
    )
    line = only(rate_period("bravo", FEB, recs, [], PLANS).lines, LineKind.ON_DEMAND)
    assert (line.quantity, line.unit_price, line.amount) == (
        Decimal("5.000000"), Decimal("3.00"), Decimal("15.00")
    )  # fmt: skip
    assert len(line.usage_ids) == 6


def test_borrowed_at_a_discount_rounds_half_up() -> None:
    # 1 GPU x 1210 s (00:00:00 .. 00:20:10) at 3.00 x (1 - 0.40) = 1.80/h:
    # 1210 x 1.80 / 3600 = 0.605 exactly -> 0.61 half-up (half-even would say 0.60).
    recs = records_of(
        alloc("b1", "cargo", "S9", "2026-02-05 00:00:00", "2026-02-05 00:20:10",
              CapacityClass.BORROWED)
    )  # fmt: skip
    line = only(rate_period("cargo", FEB, recs, [], PLANS).lines, LineKind.BORROWED)
    assert line.unit_price == Decimal("1.8000")
    assert line.gpu_seconds == Decimal(1210)
    assert line.amount == Decimal("0.61")


def test_lending_credit_to_the_holder_of_idle_guaranteed_gpus() -> None:
    # cargo borrows 2 of L1's idle GPUs for 3 h (Feb 11 01:00 .. 04:00): it pays
    # 6 GPU-h x 1.80 = 10.80; acme (L1's holder) is credited 25% of it: -2.70.
    lent = [
        alloc(f"x{i}", "cargo", f"S{i}", "2026-02-11 01:00", "2026-02-11 04:00",
              CapacityClass.BORROWED, lender=("L1", "acme"))
        for i in range(2)
    ]  # fmt: skip
    recs = records_of(*lent)
    borrower = rate_period("cargo", FEB, recs, [], PLANS)
    assert only(borrower.lines, LineKind.BORROWED).amount == Decimal("10.80")
    holder = rate_period("acme", FEB, recs, [L1], PLANS)
    credit = only(holder.lines, LineKind.LENDING_CREDIT)
    assert credit.unit_price == Decimal("-0.450000")  # 1.80 x 0.25
    assert credit.amount == Decimal("-2.70")
    assert credit.lease_id == "L1"
    assert set(credit.usage_ids) == {r.id for r in recs}
    # 768.00 reserved - 2.70 lending credit
    assert issue(holder, "INV-3", NOW).total == Decimal("765.30")


def test_sla_credit_with_its_evidence() -> None:
    # Wait: 4 GPUs claimed 06:00, started 07:15, SLO 30 min -> late 06:30 .. 07:15 = 0.75 h
    #   x 4 GPUs = 3 GPU-h x -(2.00 x 2) = -12.00.
    # Degraded: 4 GPUs down 10:00 .. 13:00 = 12 GPU-h x -(2.00 x 1) = -24.00.
    # Cap: 50% of 768.00 = 384.00, not reached. Total: 768.00 - 12.00 - 24.00 = 732.00.
    evidence = SlaEvidence(
        waits=[GuaranteeWait("job-w1", "L1", 4, at("2026-02-10 06:00"), at("2026-02-10 07:15"))],
        degradations=[Degradation("tray-7", "L1", 4, at("2026-02-11 10:00"),
                                  at("2026-02-11 13:00"))],
    )  # fmt: skip
    rated = rate_period("acme", FEB, [], [L1], PLANS, RULE, evidence)
    wait = only(rated.lines, LineKind.SLA_WAIT)
    assert (wait.quantity, wait.unit_price, wait.amount) == (
        Decimal("3.000000"), Decimal("-4.00"), Decimal("-12.00")
    )  # fmt: skip
    assert len(wait.evidence) == 1
    assert "job-w1" in wait.evidence[0]
    assert "2026-02-10T06:30:00+00:00..2026-02-10T07:15:00+00:00" in wait.evidence[0]
    degraded = only(rated.lines, LineKind.SLA_DEGRADED)
    assert (degraded.quantity, degraded.amount) == (Decimal("12.000000"), Decimal("-24.00"))
    assert "tray-7" in degraded.evidence[0]
    assert not [ln for ln in rated.lines if ln.kind is LineKind.SLA_CAP]
    assert issue(rated, "INV-4", NOW).total == Decimal("732.00")
    # With a cap of 1% of 768.00 = 7.68, the 36.00 of credits give back 28.32.
    capped = SlaRule(RULE.slo_wait, RULE.wait_multiple, RULE.degraded_multiple, Decimal("0.01"))
    rated = rate_period("acme", FEB, [], [L1], PLANS, capped, evidence)
    assert only(rated.lines, LineKind.SLA_CAP).amount == Decimal("28.32")
    assert issue(rated, "INV-5", NOW).total == Decimal("760.32")  # 768.00 - 7.68


def test_wait_within_the_slo_earns_nothing() -> None:
    evidence = SlaEvidence(
        waits=[GuaranteeWait("job-w2", "L1", 8, at("2026-02-10 06:00"), at("2026-02-10 06:30"))]
    )
    rated = rate_period("acme", FEB, [], [L1], PLANS, RULE, evidence)
    assert [ln.kind for ln in rated.lines] == [LineKind.RESERVED]


def test_preemption_in_the_middle_of_an_hour() -> None:
    # cargo borrows S5 09:00 .. 09:37:30, is preempted, requeued and restarts on S5 at 09:52:30
    # until 11:00: hour 09 meters 2250 s + 450 s = 2700 s, hour 10 3600 s; in all
    # 6300 s = 1.75 GPU-h x 1.80 = 3.15. The 15 minutes off the GPU are not billed.
    recs = records_of(
        alloc("p1", "cargo", "S5", "2026-02-06 09:00", "2026-02-06 09:37:30",
              CapacityClass.BORROWED),
        alloc("p2", "cargo", "S5", "2026-02-06 09:52:30", "2026-02-06 11:00",
              CapacityClass.BORROWED),
    )  # fmt: skip
    assert [(r.id, r.gpu_seconds) for r in recs] == [
        ("p1@2026-02-06T09:00:00+00:00", Decimal(2250)),
        ("p2@2026-02-06T09:52:30+00:00", Decimal(450)),
        ("p2@2026-02-06T10:00:00+00:00", Decimal(3600)),
    ]
    line = only(rate_period("cargo", FEB, recs, [], PLANS).lines, LineKind.BORROWED)
    assert (line.quantity, line.amount) == (Decimal("1.750000"), Decimal("3.15"))


def test_lease_crossing_a_month_end() -> None:
    # L2: 4 GPUs Jan 31 18:00 .. Feb 1 06:00: 6 h in each month -> 24 GPU-h x 2.00 = 48.00 in
    # January's invoice and 48.00 in February's. Its use (1 GPU Jan 31 20:00 .. Feb 1 02:00)
    # is cut at the month boundary: 4 h in January, 2 h in February.
    l2 = LeaseTerm("L2", "delta", 4, at("2026-01-31 18:00"), at("2026-02-01 06:00"))
    jan = Period.of(at("2026-01-15 00:00"), Granularity.MONTH)
    a = alloc("m1", "delta", "S3", "2026-01-31 20:00", "2026-02-01 02:00",
              CapacityClass.GUARANTEED, lease="L2")  # fmt: skip
    recs = meter([a], NOW, Granularity.MONTH)
    assert [r.gpu_seconds for r in recs] == [Decimal(4 * 3600), Decimal(2 * 3600)]
    for period, hours in ((jan, "4.000000"), (FEB, "2.000000")):
        rated = rate_period("delta", period, recs, [l2], PLANS)
        reserved = only(rated.lines, LineKind.RESERVED)
        assert (reserved.quantity, reserved.amount) == (Decimal("24.000000"), Decimal("48.00"))
        assert only(rated.lines, LineKind.INCLUDED).quantity == Decimal(hours)
        invoice = issue(rated, f"INV-{period.start:%Y%m}", NOW)
        check(invoice, {r.id: r for r in recs})
        assert invoice.total == Decimal("48.00")


def test_price_change_mid_period() -> None:
    # bravo on demand 1 GPU Mar 15 10:00 .. 14:00; v2 starts at 12:00:
    # 2 h x 3.00 = 6.00 (v1) + 2 h x 3.60 = 7.20 (v2) = 13.20.
    # L3 (2 GPUs, Mar 15 00:00 .. Mar 16 00:00) locks v1's reserved rate at its start:
    # 48 GPU-h x 2.00 = 96.00 though v2 says 2.40 from noon. Total 109.20.
    l3 = LeaseTerm("L3", "bravo", 2, at("2026-03-15 00:00"), at("2026-03-16 00:00"))
    recs = meter(
        [alloc("c1", "bravo", "S1", "2026-03-15 10:00", "2026-03-15 14:00",
               CapacityClass.ON_DEMAND)],
        NOW, Granularity.MONTH, PLANS["bravo"].change_times(),
    )  # fmt: skip
    assert [r.start.hour for r in recs] == [10, 12]
    rated = rate_period("bravo", MAR, recs, [l3], PLANS)
    od = [ln for ln in rated.lines if ln.kind is LineKind.ON_DEMAND]
    assert [(ln.plan, ln.quantity, ln.amount) for ln in od] == [
        ("std/v1", Decimal("2.000000"), Decimal("6.00")),
        ("std/v2", Decimal("2.000000"), Decimal("7.20")),
    ]
    assert only(rated.lines, LineKind.RESERVED).amount == Decimal("96.00")
    assert issue(rated, "INV-6", NOW).total == Decimal("109.20")
    # A lease that carries its own committed rate (``leases.rate``) keeps it.
    own = LeaseTerm("L4", "bravo", 1, at("2026-03-15 00:00"), at("2026-03-15 10:00"),
                    rate=Decimal("1.25"), currency="USD")  # fmt: skip
    rated = rate_period("bravo", MAR, [], [own], PLANS)
    assert only(rated.lines, LineKind.RESERVED).amount == Decimal("12.50")  # 10 h x 1.25


def test_sla_inputs_are_validated() -> None:
    with pytest.raises(InvalidRequest, match="before its claim"):
        GuaranteeWait("w", "L1", 1, at("2026-02-10 06:00"), at("2026-02-10 05:00"))
    with pytest.raises(InvalidRequest, match="positive"):
        Degradation("d", "L1", 0, at("2026-02-10 06:00"))
    with pytest.raises(InvalidRequest, match="cap_share"):
        SlaRule(timedelta(0), Decimal(1), Decimal(1), Decimal(-1))


def test_open_evidence_counts_up_to_the_period_end() -> None:
    # Trays down from Feb 11 23:00 and still down: 1 h left of L1's window (ends Feb 12 00:00)
    # x 2 GPUs = 2 GPU-h x -2.00 = -4.00; a claim of 1 GPU from Feb 11 22:00 still waiting:
    # late from 22:30 to the window's end = 1.5 GPU-h x -4.00 = -6.00.
    evidence = SlaEvidence(
        waits=[GuaranteeWait("job-w9", "L1", 1, at("2026-02-11 22:00"))],
        degradations=[Degradation("tray-9", "L1", 2, at("2026-02-11 23:00"))],
    )
    rated = rate_period("acme", FEB, [], [L1], PLANS, RULE, evidence)
    assert only(rated.lines, LineKind.SLA_DEGRADED).amount == Decimal("-4.00")
    assert only(rated.lines, LineKind.SLA_WAIT).amount == Decimal("-6.00")


def test_guaranteed_usage_outside_its_lease_is_never_free() -> None:
    # 1 h of "guaranteed" use after L1 ended (Feb 12 00:00): refused, not billed at 0.
    late = alloc("u1", "acme", "S1", "2026-02-12 00:00", "2026-02-12 01:00",
                 CapacityClass.GUARANTEED, lease="L1")  # fmt: skip
    with pytest.raises(UncoveredUsage):
        rate_period("acme", FEB, records_of(late), [L1], PLANS)
    with pytest.raises(UncoveredUsage):
        rate_period("acme", FEB, records_of(late), [], PLANS)


def test_record_straddling_the_period_is_refused() -> None:
    recs = meter(
        [alloc("s1", "bravo", "S1", "2026-02-28 23:00", "2026-03-01 01:00",
               CapacityClass.ON_DEMAND)],
        NOW, Granularity.DAY,
    )  # fmt: skip
    assert len(recs) == 2
    rate_period("bravo", FEB, recs, [], PLANS)  # cut at midnight: fine
    whole = meter(
        [alloc("s1", "bravo", "S1", "2026-02-28 23:00", "2026-03-01 01:00",
               CapacityClass.ON_DEMAND)],
        NOW, Granularity.HOUR,
    )  # fmt: skip
    rate_period("bravo", FEB, whole, [], PLANS)
    day = Period(at("2026-02-28 23:30"), at("2026-03-01 00:00"))
    with pytest.raises(InvalidRequest, match="straddles"):
        rate_period("bravo", day, whole, [], PLANS)


def test_currency_minor_units_come_from_cldr() -> None:
    # JPY has no minor unit, BHD three: 1234 s x 500 / 3600 = 171.388.. -> 171 (JPY);
    # 1234 s x 0.5 / 3600 = 0.171388.. -> 0.171 (BHD).
    assert (minor_units("USD"), minor_units("JPY"), minor_units("BHD")) == (2, 0, 3)
    assert round_money(Decimal("171.3888"), "JPY") == Decimal("171")
    assert round_money(Decimal("0.1713888"), "BHD") == Decimal("0.171")
    assert round_money(Decimal("0.125"), "USD") == Decimal("0.13")
    with pytest.raises(UnknownCurrency):
        minor_units("XXQ")
    yen = PlanSchedule(
        [PlanVersion("jp", 1, at("2026-01-01 00:00"), "JPY", Decimal(300), Decimal(500),
                     Decimal(0), Decimal(0))]
    )  # fmt: skip
    recs = meter(
        [alloc("y1", "bravo", "S1", "2026-02-02 00:00:00", "2026-02-02 00:20:34",
               CapacityClass.ON_DEMAND)],
        NOW,
    )  # fmt: skip
    rated = rate_period("bravo", FEB, recs, [], {"bravo": yen})
    assert rated.currency == "JPY"
    assert only(rated.lines, LineKind.ON_DEMAND).amount == Decimal("171")


def test_plan_schedule_is_versioned_and_dated() -> None:
    assert PLANS["acme"].at(at("2026-03-15 11:59:59")).version == 1
    assert PLANS["acme"].at(at("2026-03-15 12:00")).version == 2
    with pytest.raises(NoPlanInForce):
        PLANS["acme"].at(at("2025-12-31 23:59"))
    v1 = PLANS["acme"].versions[0]
    with pytest.raises(InvalidRequest, match="increase"):
        PlanSchedule([v1, v1])
    with pytest.raises(InvalidRequest):
        PlanVersion("x", 1, at("2026-01-01 00:00"), "USD", Decimal(-1), Decimal(1), Decimal(0),
                    Decimal(0))  # fmt: skip
    with pytest.raises(InvalidRequest):
        PlanVersion("x", 1, at("2026-01-01 00:00"), "USD", Decimal(1), Decimal(1),
                    Decimal("1.5"), Decimal(0))  # fmt: skip
