"""The usage page's view model: each tenant's GPU-hours in a month, by day, as charts and rows.

Design. The figures are ``services.metering.usage_by_tenant``'s (the metered usage records,
by capacity class, and what a tenant's leases lent); this module only turns them into what
the page prints: a :class:`TenantRow` per tenant for the month (GPU-hours guaranteed,
borrowed, on demand, their total, and lent), a bar per tenant
(:class:`~gpulease.web.usage_charts.Bar`) and a line per tenant over the days
(:class:`~gpulease.web.usage_charts.Series`; past :data:`MAX_LINES` tenants, the smallest are
summed into one "other tenants" line so the chart stays readable).

Invariants: GPU-hours are the metered GPU-seconds / 3600, as ``Decimal`` (never a float on
the way), shown to 0.1; a tenant's name comes from the caller's name map, which the caller
fills only with tenants the viewer may see (a tenant's usage never names another tenant: the
service gives a tenant its own row only). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from gpulease.services.metering import TenantUsage
from gpulease.web.usage_charts import MAX_SERIES, Bar, Series

HOUR = Decimal(3600)
MAX_LINES = MAX_SERIES - 1  # the last line sums the rest
OTHERS = "other tenants"


def hours(seconds: Decimal) -> Decimal:
    return (seconds / HOUR).quantize(Decimal("0.1"))


@dataclass(frozen=True, slots=True)
class TenantRow:
    tenant_id: str
    name: str
    guaranteed: Decimal  # GPU-hours
    borrowed: Decimal
    on_demand: Decimal
    total: Decimal
    lent: Decimal


@dataclass(frozen=True, slots=True)
class UsageView:
    month: str  # YYYY-MM
    rows: tuple[TenantRow, ...]  # biggest first
    bars: tuple[Bar, ...]
    days: tuple[str, ...]  # x labels of the daily chart (MM-DD)
    lines: tuple[Series, ...]
    total: Decimal


def usage_view(
    month: str,
    totals: Sequence[TenantUsage],
    daily: Sequence[tuple[str, Sequence[TenantUsage]]],
    names: Mapping[str, str],
) -> UsageView:
    """The page's figures: ``totals`` of the month, ``daily`` (day label, that day's usage)."""
    rows = sorted(
        (
            TenantRow(
                tenant_id=u.tenant,
                name=names.get(u.tenant) or u.tenant,
                guaranteed=hours(u.guaranteed),
                borrowed=hours(u.borrowed),
                on_demand=hours(u.on_demand),
                total=hours(u.total),
                lent=hours(u.lent),
            )
            for u in totals
        ),
        key=lambda r: (-r.total, r.name, r.tenant_id),
    )
    bars = tuple(
        Bar(
            r.name,
            r.total,
            note=f"guaranteed {r.guaranteed} h, borrowed {r.borrowed} h, lent {r.lent} h",
        )
        for r in rows
    )
    shown = (
        [r.tenant_id for r in rows[:MAX_LINES]]
        if len(rows) > MAX_SERIES
        else [r.tenant_id for r in rows]
    )
    rest = [r.tenant_id for r in rows if r.tenant_id not in shown]
    per_day: list[dict[str, Decimal]] = [
        {u.tenant: hours(u.total) for u in usage} for _day, usage in daily
    ]
    lines = [
        Series(names.get(t) or t, tuple(day.get(t, Decimal(0)) for day in per_day)) for t in shown
    ]
    if rest:
        lines.append(
            Series(
                OTHERS,
                tuple(sum((day.get(t, Decimal(0)) for t in rest), Decimal(0)) for day in per_day),
            )
        )
    return UsageView(
        month=month,
        rows=tuple(rows),
        bars=bars,
        days=tuple(label for label, _usage in daily),
        lines=tuple(lines),
        total=sum((r.total for r in rows), Decimal(0)),
    )
