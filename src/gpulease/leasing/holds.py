"""Bounds on what a lease request may hold before anyone approved it: window and share.

A request holds its capacity in the calendar from the moment it is made (so two tenants
cannot be promised the same GPUs), but until an operator approves it that hold is only a
claim. Unbounded, a claim is a denial of service: one tenant asked for 1,472 of 2,304 GPUs
for three years, never approved, and every other tenant's request was refused. Three rules,
pure (the service passes the clock's ``now`` and the settings):

* **Window** (:func:`check_window`): a lease starts no earlier than ``now`` (less
  :data:`START_TOLERANCE` of clock skew) and ends within ``horizon`` of ``now``.
* **Share** (:func:`check_hold_share`): at no instant of the new window may one tenant's
  unapproved requests at a site hold more than ``share`` of the site's GPUs
  (:func:`hold_cap`). The tenant's pending requests are summed *where they overlap*, like
  the calendar does for the site: two requests of 500 GPUs in different months are two
  holds of 500, not one of 1,000. Approved leases do not count: the operator decided them.
* **Lapse** (:func:`hold_lapsed`): a request holds its capacity until ``hold_expires_at``;
  from then on it no longer counts in the calendar and ``leases.tick`` moves it to
  ``expired``. A request without an expiry (made before holds expired) still holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.leasing.calendar import Hold, availability

# a client's clock and the request's trip: "start now" may arrive a little in the past
START_TOLERANCE = timedelta(minutes=5)


def check_window(start: datetime, end: datetime, now: datetime, horizon: timedelta) -> None:
    """Raise InvalidRequest (naming the field) unless ``[start, end)`` is a window a lease
    may be requested for at ``now``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("start and end need a timezone (use UTC, e.g. ...Z)", field="start")
    if end <= start:
        raise InvalidRequest("end must be after start", field="end")
    if end <= now:
        raise InvalidRequest("the lease window is already over", field="end")
    if start < now - START_TOLERANCE:
        raise InvalidRequest(
            f"start {start.isoformat()} is in the past: a lease starts now "
            f"({now.replace(microsecond=0).isoformat()}) or later",
            field="start",
        )
    latest = now + horizon
    if end > latest:
        raise InvalidRequest(
            f"a lease must end within {horizon.days:,} days from now, by "
            f"{latest.replace(microsecond=0).isoformat()}; ask for a shorter or earlier window",
            field="end",
        )


def hold_cap(total: int, share: float) -> int:
    """GPUs one tenant's unapproved requests may hold at once at a site of ``total``."""
    # decimal arithmetic on the setting as written: 0.29 of 100 is 29, not 28
    return int((Decimal(str(share)) * total).to_integral_value(ROUND_FLOOR))


def hold_lapsed(hold_expires_at: datetime | None, now: datetime) -> bool:
    return hold_expires_at is not None and hold_expires_at <= now


def check_pending_count(*, pending: int, limit: int, tenant: str) -> None:
    """Raise Conflict if the tenant already has ``limit`` requests awaiting approval at the
    site: the share bounds GPUs, this bounds how many requests (each one is scanned by every
    later admission under the site's lock)."""
    if pending >= limit:
        raise Conflict(
            f"{tenant} already has {pending:,} lease requests awaiting approval at this site "
            f"(at most {limit:,}); cancel one or ask the operator to decide them first",
            field="gpus",
            pending=pending,
            limit=limit,
        )


def check_hold_share(
    *,
    total: int,
    share: float,
    gpus: int,
    start: datetime,
    end: datetime,
    pending: Iterable[Hold],
    tenant: str,
) -> None:
    """Raise Conflict if the tenant's unapproved requests (``pending``) plus this one would
    hold more than :func:`hold_cap` GPUs at some instant of ``[start, end)``."""
    cap = hold_cap(total, share)
    found = availability(cap, start, end, pending, ())
    held = found.leased_peak
    if held + gpus <= cap:
        return
    room = max(cap - held, 0)
    already = (
        f"{tenant} already has {held:,} GPUs requested and awaiting approval at "
        f"{found.at.isoformat()}; "
        if held
        else ""
    )
    raise Conflict(
        f"{already}a tenant's requests awaiting approval may hold at most {cap:,} GPUs at "
        f"once ({share * 100:g}% of the site's {total:,}); this one asks {gpus:,}. Ask for at "
        f"most {room:,} GPUs, or ask the operator to decide the pending requests first",
        field="gpus",
        requested=gpus,
        held=held,
        limit=cap,
    )
