"""Billing periods in UTC: hours, days and calendar months, half-open ``[start, end)``.

Invariants: every instant lies in exactly one period of a granularity; the periods of a
granularity tile the time line without gaps or overlaps; :func:`cut_points` returns the
boundaries strictly inside an interval, so cutting an interval there loses and repeats
nothing. Every timestamp handled here must be timezone-aware; it is converted to UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gpulease.domain.errors import InvalidRequest


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


class NaiveTimestamp(InvalidRequest):
    """A timestamp without a time zone: metering only takes aware instants."""

    code = "naive_timestamp"


def utc(t: datetime, field: str = "timestamp") -> datetime:
    """``t`` in UTC; a naive ``t`` is refused (never guessed)."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise NaiveTimestamp(f"{field} has no time zone: {t.isoformat()}", field=field)
    return t.astimezone(UTC)


def period_start(t: datetime, granularity: Granularity) -> datetime:
    """Start of the period of ``granularity`` that holds ``t``."""
    t = utc(t)
    if granularity is Granularity.HOUR:
        return t.replace(minute=0, second=0, microsecond=0)
    if granularity is Granularity.DAY:
        return t.replace(hour=0, minute=0, second=0, microsecond=0)
    return t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_boundary(t: datetime, granularity: Granularity) -> datetime:
    """Start of the period after the one that holds ``t``."""
    start = period_start(t, granularity)
    if granularity is Granularity.HOUR:
        return start + timedelta(hours=1)
    if granularity is Granularity.DAY:
        return start + timedelta(days=1)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC interval ``[start, end)`` (an invoice's period, a usage slice)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start, "period.start"))
        object.__setattr__(self, "end", utc(self.end, "period.end"))
        if self.end <= self.start:
            raise InvalidRequest("a period ends after it starts", start=str(self.start))

    @classmethod
    def of(cls, t: datetime, granularity: Granularity) -> Period:
        """The period of ``granularity`` that holds ``t`` (e.g. the month of an invoice)."""
        return cls(period_start(t, granularity), next_boundary(t, granularity))

    def clip(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        """The part of ``[start, end)`` inside this period, or None when it is empty."""
        lo, hi = max(start, self.start), min(end, self.end)
        return (lo, hi) if lo < hi else None


def cut_points(start: datetime, end: datetime, granularity: Granularity) -> Iterator[datetime]:
    """Period boundaries strictly between ``start`` and ``end``, in order."""
    t = next_boundary(start, granularity)
    while t < end:
        yield t
        t = next_boundary(t, granularity)


def micros_between(start: datetime, end: datetime) -> int:
    """Exact microseconds from ``start`` to ``end`` as an int (no float on the way)."""
    d = end - start
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
