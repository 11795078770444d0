"""Clocks and the core's time unit (float seconds since the epoch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gpulease.domain.clock import EPOCH, ManualClock, from_seconds, to_seconds


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock()
    assert clock.now() == EPOCH
    assert clock.advance(90.5) == datetime(1970, 1, 1, 0, 1, 30, 500000, tzinfo=UTC)
    assert clock.now() == datetime(1970, 1, 1, 0, 1, 30, 500000, tzinfo=UTC)


def test_manual_clock_refuses_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2025, 1, 1))


def test_seconds_round_trip() -> None:
    moment = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    assert to_seconds(moment) == 1748779200.0
    assert from_seconds(1748779200.0) == moment
    plus_two = datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert to_seconds(plus_two) == 1748779200.0


def test_to_seconds_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        to_seconds(datetime(2025, 1, 1))
