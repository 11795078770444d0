"""Shared values of the metering tests: one USD price plan with a change in March 2026."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from gpulease.metering.plans import PlanSchedule, PlanVersion


def at(text: str) -> datetime:
    """``2026-02-10 06:00`` (or with seconds) as an aware UTC datetime."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


V1 = PlanVersion(
    plan_id="std",
    version=1,
    effective_from=at("2026-01-01 00:00"),
    currency="USD",
    reserved_rate=Decimal("2.00"),
    on_demand_rate=Decimal("3.00"),
    borrowed_discount=Decimal("0.40"),  # borrowed: 3.00 x 0.60 = 1.80 per GPU-hour
    lending_share=Decimal("0.25"),
)
V2 = PlanVersion(
    plan_id="std",
    version=2,
    effective_from=at("2026-03-15 12:00"),
    currency="USD",
    reserved_rate=Decimal("2.40"),
    on_demand_rate=Decimal("3.60"),
    borrowed_discount=Decimal("0.50"),  # borrowed: 3.60 x 0.50 = 1.80 per GPU-hour
    lending_share=Decimal("0.30"),
)
STD = PlanSchedule([V1, V2])
PLANS = dict.fromkeys(("acme", "bravo", "cargo", "delta"), STD)
