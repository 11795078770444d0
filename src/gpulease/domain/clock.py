"""Clocks. Cores never read a clock: drivers pass ``now`` in.

The live service uses :class:`SystemClock`; tests and the simulator use :class:`ManualClock`.
Times are timezone-aware UTC datetimes here; the scheduling core works in float seconds
(``to_seconds``), which the simulator uses directly as virtual time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


def to_seconds(moment: datetime) -> float:
    """Seconds since the Unix epoch of an aware datetime (the core's time unit)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: gpulease times are timezone-aware UTC")
    return (moment - EPOCH).total_seconds()


def from_seconds(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)
