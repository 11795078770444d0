"""Price plans: versioned and dated, one currency per plan.

Design. A :class:`PlanVersion` says, from ``effective_from`` (inclusive) on, what a GPU-hour
costs in each way of buying it:

* ``reserved_rate``: committed price per GPU-hour of a lease's window, billed whether used or
  not (a lease locks the rate in force when its window starts, unless it carries its own);
* ``on_demand_rate``: per GPU-hour of non-preemptible capacity without a lease;
* ``borrowed_discount``: the fraction taken off ``on_demand_rate`` for preemptible borrowed
  capacity (another lease's idle GPUs or unleased ones);
* ``lending_share``: the fraction of the revenue of borrowed work that ran on a lease's idle
  guaranteed GPUs credited back to that lease's holder.

A :class:`PlanSchedule` is the sequence of versions of one plan; a version is in force until
the next one's ``effective_from``. Unit prices stay exact Decimals; only amounts are rounded
(per invoice line, :mod:`.money`).

Invariants: versions share one currency and are strictly increasing in ``version`` and
``effective_from``; rates are finite and non-negative; fractions lie in [0, 1]; the currency
is a CLDR currency. Exactly one version is in force at any instant from the first
``effective_from`` on; before it no price exists and asking is an error.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from gpulease.domain.errors import InvalidRequest
from gpulease.metering.money import check_currency
from gpulease.metering.periods import utc


class NoPlanInForce(InvalidRequest):
    code = "no_plan_in_force"


def _rate(name: str, value: Decimal) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise InvalidRequest(f"{name} must be a finite non-negative Decimal", field=name)


def _fraction(name: str, value: Decimal) -> None:
    _rate(name, value)
    if value > 1:
        raise InvalidRequest(f"{name} must lie between 0 and 1", field=name)


@dataclass(frozen=True, slots=True)
class PlanVersion:
    plan_id: str
    version: int
    effective_from: datetime
    currency: str
    reserved_rate: Decimal
    on_demand_rate: Decimal
    borrowed_discount: Decimal
    lending_share: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "effective_from", utc(self.effective_from, "effective_from"))
        check_currency(self.currency)
        _rate("reserved_rate", self.reserved_rate)
        _rate("on_demand_rate", self.on_demand_rate)
        _fraction("borrowed_discount", self.borrowed_discount)
        _fraction("lending_share", self.lending_share)

    @property
    def ref(self) -> str:
        return f"{self.plan_id}/v{self.version}"

    @property
    def borrowed_rate(self) -> Decimal:
        """Per GPU-hour of borrowed capacity: on-demand less the discount (exact)."""
        return self.on_demand_rate * (1 - self.borrowed_discount)


@dataclass(frozen=True, slots=True)
class PlanSchedule:
    versions: tuple[PlanVersion, ...]
    starts: tuple[datetime, ...]  # each version's ``effective_from``, for bisection

    def __init__(self, versions: Sequence[PlanVersion]) -> None:
        vs = tuple(versions)
        if not vs:
            raise InvalidRequest("a plan has at least one version")
        for a, b in itertools.pairwise(vs):
            if b.plan_id != a.plan_id:
                raise InvalidRequest("a schedule holds the versions of one plan")
            if b.currency != a.currency:
                raise InvalidRequest(f"plan {a.plan_id}: one currency for all its versions")
            if b.version <= a.version or b.effective_from <= a.effective_from:
                raise InvalidRequest(
                    f"plan {a.plan_id}: versions must increase in number and date",
                    versions=[a.version, b.version],
                )
        object.__setattr__(self, "versions", vs)
        object.__setattr__(self, "starts", tuple(v.effective_from for v in vs))

    def change_times(self) -> list[datetime]:
        """Instants at which a new version comes into force (cut usage there)."""
        return [v.effective_from for v in self.versions[1:]]

    def at(self, t: datetime) -> PlanVersion:
        """The version in force at ``t``."""
        t = utc(t)
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0:
            raise NoPlanInForce(
                f"plan {self.versions[0].plan_id} has no version in force at {t.isoformat()}"
            )
        return self.versions[i]
