"""Recorded allocations into metering ones: lease windows cut (``split_at_leases``), and a
clock stepped back never counts a GPU-second twice (``without_clock_steps``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from metering_support import at

from gpulease.metering.sources import RecordedAllocation, split_at_leases, without_clock_steps
from gpulease.metering.usage import CapacityClass, allocated_micros, meter

G, B = CapacityClass.GUARANTEED, CapacityClass.BORROWED


def _row(
    ident: str, start: datetime, end: datetime | None, cap: CapacityClass | None = G, **kw: str
) -> RecordedAllocation:
    lease = kw.get("lease", "lease-a" if cap is G else None)
    return RecordedAllocation(
        ident, kw.get("tenant", "acme"), "job-1", kw.get("gpu", "GPU-1"), start, end, cap,
        lease_id=lease, lender_lease_id=kw.get("lender"), lender_tenant=kw.get("holder"),
    )  # fmt: skip


def test_a_lease_that_ends_under_a_run_cuts_it() -> None:
    windows = {"lease-a": (at("2026-03-01 00:00"), at("2026-03-10 00:00")),
               "lease-b": (at("2026-03-01 00:00"), at("2026-03-09 12:00"))}  # fmt: skip
    rows = [
        _row("a1", at("2026-03-09 20:00"), at("2026-03-10 02:00")),
        _row("a2", at("2026-03-09 06:00"), None, B, gpu="GPU-2", lender="lease-b", holder="b"),
        _row("a3", at("2026-03-09 06:00"), at("2026-03-09 07:00"), None, gpu="GPU-3"),
    ]
    got = [(a.id, a.start, a.end, a.capacity, a.lease_id, a.lender_lease_id)
           for a in split_at_leases(rows, windows)]  # fmt: skip
    assert got == [
        ("a1", at("2026-03-09 20:00"), at("2026-03-10 00:00"), G, "lease-a", None),
        ("a1~2026-03-10T00:00:00+00:00", at("2026-03-10 00:00"), at("2026-03-10 02:00"), B,
         None, None),
        ("a2", at("2026-03-09 06:00"), at("2026-03-09 12:00"), B, None, "lease-b"),
        ("a2~2026-03-09T12:00:00+00:00", at("2026-03-09 12:00"), None, B, None, None),
        ("a3", at("2026-03-09 06:00"), at("2026-03-09 07:00"), B, None, None),  # no record
    ]  # fmt: skip


def test_a_running_allocation_is_cut_only_at_a_lease_bound_already_reached() -> None:
    """A run inside its lease is open until the lease ends: read at 10:00 on the 9th it is
    one open guaranteed allocation (never closed at the lease's end on the 10th and billed
    for hours still to come); read after the lease ended, it is cut there."""
    windows = {"lease-a": (at("2026-03-01 00:00"), at("2026-03-10 00:00"))}
    rows = [_row("r", at("2026-03-09 09:00"), None)]

    def parts(now: datetime) -> list[tuple[str, datetime, datetime | None, CapacityClass]]:
        return [(a.id, a.start, a.end, a.capacity) for a in split_at_leases(rows, windows, now)]

    assert parts(at("2026-03-09 10:00")) == [("r", at("2026-03-09 09:00"), None, G)]
    assert parts(at("2026-03-10 01:00")) == [
        ("r", at("2026-03-09 09:00"), at("2026-03-10 00:00"), G),
        ("r~2026-03-10T00:00:00+00:00", at("2026-03-10 00:00"), None, B),
    ]
    # metered at 10:00 on the 9th: one GPU-hour, not the fifteen left in the lease
    metered = meter(split_at_leases(rows, windows, at("2026-03-09 10:00")), at("2026-03-09 10:00"))
    assert sum(r.micros for r in metered) == 3_600 * 10**6


def test_a_clock_stepped_back_never_counts_a_second_twice() -> None:
    """Row 1 holds GPU-1 10:00..10:30; the clock steps back 20 minutes; row 2 opens on the
    same GPU at 10:10 (written after row 1) and closes at 10:45; row 3 closes before it
    opens. Row 2 counts from 10:30; row 3 counts nothing; other GPUs are untouched."""
    rows = [
        _row("1", at("2026-03-02 10:00"), at("2026-03-02 10:30")),
        _row("2", at("2026-03-02 10:10"), at("2026-03-02 10:45")),
        _row("x", at("2026-03-02 10:10"), at("2026-03-02 10:20"), gpu="GPU-2"),
        _row("3", at("2026-03-02 10:50"), at("2026-03-02 10:49")),
    ]
    fixed = without_clock_steps(rows)
    assert [(r.id, r.start, r.end) for r in fixed] == [
        ("1", at("2026-03-02 10:00"), at("2026-03-02 10:30")),
        ("2", at("2026-03-02 10:30"), at("2026-03-02 10:45")),
        ("x", at("2026-03-02 10:10"), at("2026-03-02 10:20")),
        ("3", at("2026-03-02 10:50"), at("2026-03-02 10:50")),
    ]
    allocations = split_at_leases(
        fixed, {"lease-a": (at("2026-03-01 00:00"), at("2026-04-01 00:00"))}
    )
    now = at("2026-03-02 12:00")
    records = meter(allocations, now)  # no overlap left to refuse
    assert sum(r.micros for r in records) == allocated_micros(allocations, now)
    assert sum(r.micros for r in records) == int(timedelta(minutes=55).total_seconds() * 1e6)
    # a clock that only moves forward: nothing changes
    assert without_clock_steps(rows[:1] + rows[2:3]) == rows[:1] + rows[2:3]
