"""``leasing.calendar.free_steps``: the headroom of a site over a window, as steps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gpulease.domain.errors import InvalidRequest
from gpulease.leasing.calendar import Hold, availability, free_steps

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _d(days: float) -> datetime:
    return T0 + timedelta(days=days)


def test_steps_change_only_where_holds_begin_or_end() -> None:
    holds = [Hold(_d(-5), _d(3), 500), Hold(_d(2), _d(8), 100), Hold(_d(20), _d(30), 9)]
    windows = [Hold(_d(4), _d(5), 72)]
    steps = free_steps(1000, _d(0), _d(10), holds, windows)
    assert steps == [(_d(0), 500), (_d(2), 400), (_d(3), 900), (_d(4), 828), (_d(5), 900),
                     (_d(8), 1000)]  # fmt: skip


def test_equal_neighbours_are_merged_and_half_open_intervals_do_not_overlap() -> None:
    holds = [Hold(_d(0), _d(2), 10), Hold(_d(2), _d(4), 10)]
    assert free_steps(100, _d(0), _d(5), holds, []) == [(_d(0), 90), (_d(4), 100)]


def test_the_least_step_is_the_availability_minimum() -> None:
    holds = [Hold(_d(1), _d(6), 300), Hold(_d(3), _d(9), 250)]
    windows = [Hold(_d(5), _d(7), 144)]
    steps = free_steps(2304, _d(0), _d(10), holds, windows)
    found = availability(2304, _d(0), _d(10), holds, windows)
    assert min(free for _, free in steps) == found.free_min


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        free_steps(10, _d(1), _d(1), [], [])
