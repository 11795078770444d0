"""Rating: one tenant's period priced into lines a person can check.

Inputs, all given by the caller: the period's :class:`~.usage.UsageRecord` s (every tenant's:
a lender's credits come from others' borrowed records), the tenant's :class:`LeaseTerm` s,
each tenant's :class:`~.plans.PlanSchedule`, and the SLA evidence (:class:`GuaranteeWait`,
:class:`Degradation`) with its :class:`SlaRule`.

Lines (:class:`Line`), in this order:

* ``reserved``: per lease, ``gpus x hours of its window inside the period x committed
  rate``, billed whether used or not; the committed rate is the lease's own or the plan's
  ``reserved_rate`` in force when the lease starts;
* ``included``: per lease and plan version, the guaranteed usage it covered, at price 0
  (shown so utilisation can be checked against the commitment); guaranteed usage outside
  the window of the tenant's lease it names is an :class:`UncoveredUsage` error, never free;
* ``on_demand`` / ``borrowed``: per plan version, the usage of that class at that version's
  rate (records are cut at plan changes, so each lies under one version);
* ``lending_credit``: per lent lease and the borrower's plan version, minus
  ``lending_share x`` the revenue of the borrowed work that ran on the lease's idle GPUs;
* ``sla_wait`` / ``sla_degraded`` / ``sla_cap``: per lease, minus the late or degraded
  GPU-hours times the rule's multiple of the committed rate, each with its evidence; the
  ``sla_cap`` line gives back what exceeds ``cap_share`` of the lease's reserved charge.

Invariants: every amount is computed exactly from ``gpu_seconds x unit_price / 3600`` (50
significant digits) and rounded once, half-up to the currency's minor units; a usage line's
``gpu_seconds`` is the exact sum of the records it cites; each of the tenant's records in
the period is cited by exactly one usage line; SLA credits never exceed the cap.
Evidence open at the period's end (a claim still waiting, trays still down) counts up to the
period's end: invoices are rated for closed periods.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from enum import StrEnum

from gpulease.domain.errors import InvalidRequest
from gpulease.metering.money import round_money
from gpulease.metering.periods import Period, micros_between, utc
from gpulease.metering.plans import PlanSchedule, PlanVersion
from gpulease.metering.usage import CapacityClass, UsageRecord

HOUR_SECONDS = Decimal(3600)
QUANTITY_STEP = Decimal("0.000001")  # GPU-hours shown to the microhour; amounts use exact


class LineKind(StrEnum):
    RESERVED = "reserved"
    INCLUDED = "included"
    ON_DEMAND = "on_demand"
    BORROWED = "borrowed"
    LENDING_CREDIT = "lending_credit"
    SLA_WAIT = "sla_wait"
    SLA_DEGRADED = "sla_degraded"
    SLA_CAP = "sla_cap"


USAGE_KINDS = frozenset({LineKind.INCLUDED, LineKind.ON_DEMAND, LineKind.BORROWED})


class UncoveredUsage(InvalidRequest):
    """Guaranteed usage outside the window of the tenant's lease it names: it would be free
    without a reservation paying for it (a run must change class when its lease ends)."""

    code = "uncovered_usage"


def price(gpu_seconds: Decimal, unit_price: Decimal, currency: str) -> Decimal:
    """``gpu_seconds`` at ``unit_price`` per GPU-hour, rounded once to the currency."""
    with localcontext() as ctx:
        ctx.prec = 50
        exact = gpu_seconds * unit_price / HOUR_SECONDS
    return round_money(exact, currency)


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice line: ``amount = round(gpu_seconds x unit_price / 3600)``, except an
    ``sla_cap`` line, whose amount is the credit given back over the cap."""

    kind: LineKind
    description: str
    gpu_seconds: Decimal
    unit_price: Decimal  # per GPU-hour, exact
    amount: Decimal
    unit: str = "GPU-hour"
    lease_id: str | None = None
    plan: str | None = None
    usage_ids: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()

    @property
    def quantity(self) -> Decimal:
        """GPU-hours shown on the line (rounded to the microhour for reading)."""
        return (self.gpu_seconds / HOUR_SECONDS).quantize(QUANTITY_STEP)


@dataclass(frozen=True, slots=True)
class LeaseTerm:
    """A lease's commitment: ``gpus`` over ``[start, end)``; ``rate`` per GPU-hour when the
    lease carries its own committed price (``leases.rate``), else the plan's."""

    id: str
    tenant: str
    gpus: int
    start: datetime
    end: datetime
    rate: Decimal | None = None
    currency: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start, "lease.start"))
        object.__setattr__(self, "end", utc(self.end, "lease.end"))
        if self.gpus <= 0 or self.end <= self.start:
            raise InvalidRequest(f"lease {self.id}: positive GPUs over a non-empty window")


@dataclass(frozen=True, slots=True)
class GuaranteeWait:
    """Demand within a guarantee that waited: claimed at ``claimed_at``, started at
    ``started_at`` (None: still waiting)."""

    id: str
    lease_id: str
    gpus: int
    claimed_at: datetime
    started_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_span(self, "wait", "claimed_at", "started_at", self.gpus, "starts before its claim")


@dataclass(frozen=True, slots=True)
class Degradation:
    """``gpus_down`` GPUs of a lease down and not replaced over ``[start, end)``;
    ``cause``: what was down, shown with the evidence (``metering.degradation``)."""

    id: str
    lease_id: str
    gpus_down: int
    start: datetime
    end: datetime | None = None
    cause: str = ""

    def __post_init__(self) -> None:
        _check_span(self, "degradation", "start", "end", self.gpus_down, "ends before it starts")


def _check_span(
    record: GuaranteeWait | Degradation, kind: str, first: str, last: str, gpus: int, early: str
) -> None:
    """Make ``record``'s two times UTC (the second may be None: still open) and refuse a
    second time before the first, or no GPUs."""
    start = utc(getattr(record, first), f"{kind}.{first}")
    object.__setattr__(record, first, start)
    end = getattr(record, last)
    if end is not None:
        end = utc(end, f"{kind}.{last}")
        object.__setattr__(record, last, end)
        if end < start:
            raise InvalidRequest(f"{kind} {record.id} {early}", id=record.id)
    if gpus <= 0:
        raise InvalidRequest(f"{kind} {record.id}: a positive number of GPUs", id=record.id)


@dataclass(frozen=True, slots=True)
class SlaRule:
    """Credits per late or degraded GPU-hour as multiples of the committed rate, capped at
    ``cap_share`` of the lease's reserved charge in the period."""

    slo_wait: timedelta
    wait_multiple: Decimal
    degraded_multiple: Decimal
    cap_share: Decimal = Decimal(1)

    def __post_init__(self) -> None:
        if self.slo_wait < timedelta(0):
            raise InvalidRequest("the wait SLO is not negative", field="slo_wait")
        for name in ("wait_multiple", "degraded_multiple", "cap_share"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
                raise InvalidRequest(f"{name} must be a finite non-negative Decimal", field=name)


@dataclass(frozen=True, slots=True)
class SlaEvidence:
    waits: Sequence[GuaranteeWait] = ()
    degradations: Sequence[Degradation] = ()


@dataclass(frozen=True, slots=True)
class Rated:
    tenant: str
    period: Period
    currency: str
    lines: tuple[Line, ...] = field(default_factory=tuple)


def _secs(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


def _committed_rate(lease: LeaseTerm, plan: PlanSchedule) -> tuple[Decimal, str]:
    if lease.rate is not None:
        return lease.rate, f"lease {lease.id}"
    version = plan.at(lease.start)
    return version.reserved_rate, version.ref


def _usage_line(
    kind: LineKind,
    what: str,
    records: Sequence[UsageRecord],
    unit_price: Decimal,
    currency: str,
    lease: str | None,
    plan: str,
) -> Line:
    """One invoice line over usage records: their GPU-seconds at ``unit_price``, citing them."""
    secs = sum((r.gpu_seconds for r in records), Decimal(0))
    return Line(
        kind,
        what,
        secs,
        unit_price,
        price(secs, unit_price, currency),
        lease_id=lease,
        plan=plan,
        usage_ids=tuple(sorted(r.id for r in records)),
    )


def _usage_lines(
    tenant: str, records: Sequence[UsageRecord], plan: PlanSchedule, currency: str
) -> list[Line]:
    groups: dict[tuple[CapacityClass, str | None, str], list[UsageRecord]] = {}
    versions: dict[str, PlanVersion] = {}
    for r in records:
        if r.tenant != tenant:
            continue
        v = plan.at(r.start)
        versions[v.ref] = v
        lease = r.lease_id if r.capacity is CapacityClass.GUARANTEED else None
        groups.setdefault((r.capacity, lease, v.ref), []).append(r)
    lines: list[Line] = []
    order = {CapacityClass.GUARANTEED: 0, CapacityClass.ON_DEMAND: 1, CapacityClass.BORROWED: 2}

    def key(
        kv: tuple[tuple[CapacityClass, str | None, str], list[UsageRecord]],
    ) -> tuple[int, str, int]:
        (cap, lease, ref), _ = kv
        return order[cap], lease or "", versions[ref].version

    for (cap, lease, ref), rs in sorted(groups.items(), key=key):
        v = versions[ref]
        if cap is CapacityClass.GUARANTEED:
            kind, unit_price, what = LineKind.INCLUDED, Decimal(0), f"used within lease {lease}"
        elif cap is CapacityClass.ON_DEMAND:
            kind, unit_price, what = LineKind.ON_DEMAND, v.on_demand_rate, "on-demand"
        else:
            kind, unit_price, what = (
                LineKind.BORROWED,
                v.borrowed_rate,
                f"borrowed, preemptible ({v.borrowed_discount:%} off on-demand)",
            )
        lines.append(_usage_line(kind, f"{what} ({ref})", rs, unit_price, currency, lease, ref))
    return lines


def _lending_lines(
    tenant: str,
    records: Sequence[UsageRecord],
    plans: Mapping[str, PlanSchedule],
    currency: str,
) -> list[Line]:
    groups: dict[tuple[str, str], list[UsageRecord]] = {}
    versions: dict[str, PlanVersion] = {}
    for r in records:
        if r.lender_tenant != tenant or r.lender_lease_id is None:
            continue
        v = _plan(plans, r.tenant).at(r.start)
        if v.currency != currency:
            raise InvalidRequest(
                f"lending across currencies ({v.currency} to {currency}) is not rated",
                record=r.id,
            )
        versions[v.ref] = v
        groups.setdefault((r.lender_lease_id, v.ref), []).append(r)
    lines = []
    for (lease, ref), rs in sorted(groups.items()):
        v = versions[ref]
        what = (
            f"lending credit: {v.lending_share:%} of borrowed revenue on idle GPUs of "
            f"lease {lease} ({ref})"
        )
        unit_price = -(v.borrowed_rate * v.lending_share)
        lines.append(
            _usage_line(LineKind.LENDING_CREDIT, what, rs, unit_price, currency, lease, ref)
        )
    return lines


def _sla_lines(
    lease: LeaseTerm,
    rate: Decimal,
    reserved: Decimal,
    period: Period,
    rule: SlaRule,
    evidence: SlaEvidence,
    currency: str,
) -> list[Line]:
    window = period.clip(lease.start, lease.end)
    if window is None:
        return []
    scope = Period(*window)
    lines = []
    late_micros, notes = 0, []
    for w in sorted(evidence.waits, key=lambda w: (w.claimed_at, w.id)):
        if w.lease_id != lease.id:
            continue
        started = w.started_at if w.started_at is not None else scope.end
        late = scope.clip(w.claimed_at + rule.slo_wait, started)
        if late is None:
            continue
        late_micros += w.gpus * micros_between(*late)
        notes.append(
            f"wait {w.id}: {w.gpus} GPUs claimed {w.claimed_at.isoformat()}, "
            f"started {'-' if w.started_at is None else started.isoformat()}, "
            f"SLO {rule.slo_wait}, late {late[0].isoformat()}..{late[1].isoformat()}"
        )
    if late_micros:
        secs, unit_price = _secs(late_micros), -(rate * rule.wait_multiple)
        lines.append(
            Line(
                LineKind.SLA_WAIT,
                f"SLA credit: guarantee waits on lease {lease.id}",
                secs,
                unit_price,
                price(secs, unit_price, currency),
                lease_id=lease.id,
                evidence=tuple(notes),
            )
        )
    down_micros, notes = 0, []
    for d in sorted(evidence.degradations, key=lambda d: (d.start, d.id)):
        if d.lease_id != lease.id:
            continue
        span = scope.clip(d.start, d.end if d.end is not None else scope.end)
        if span is None:
            continue
        down_micros += d.gpus_down * micros_between(*span)
        lo, hi = span
        note = f"degraded {d.id}: {d.gpus_down} GPUs down {lo.isoformat()}..{hi.isoformat()}"
        notes.append(f"{note} ({d.cause})" if d.cause else note)
    if down_micros:
        secs, unit_price = _secs(down_micros), -(rate * rule.degraded_multiple)
        lines.append(
            Line(
                LineKind.SLA_DEGRADED,
                f"SLA credit: degraded capacity of lease {lease.id}",
                secs,
                unit_price,
                price(secs, unit_price, currency),
                lease_id=lease.id,
                evidence=tuple(notes),
            )
        )
    credit = -sum((ln.amount for ln in lines), Decimal(0))
    cap = round_money(reserved * rule.cap_share, currency)
    if credit > cap:
        lines.append(
            Line(
                LineKind.SLA_CAP,
                f"SLA credits capped at {rule.cap_share:%} of lease {lease.id}'s "
                f"reserved charge ({cap})",
                Decimal(0),
                Decimal(0),
                credit - cap,
                unit="adjustment",
                lease_id=lease.id,
            )
        )
    return lines


def _plan(plans: Mapping[str, PlanSchedule], tenant: str) -> PlanSchedule:
    plan = plans.get(tenant)
    if plan is None:
        raise InvalidRequest(f"tenant {tenant} has no price plan", tenant=tenant)
    return plan


def rate_period(
    tenant: str,
    period: Period,
    records: Iterable[UsageRecord],
    leases: Iterable[LeaseTerm],
    plans: Mapping[str, PlanSchedule],
    rule: SlaRule | None = None,
    evidence: SlaEvidence = SlaEvidence(),
) -> Rated:
    """Price ``tenant``'s ``period``. ``records`` must be metered with cuts at the period's
    bounds and the plans' changes (:func:`~.usage.meter`); records outside the period are
    ignored, and one that straddles its bounds is an error."""
    plan = _plan(plans, tenant)
    currency = plan.versions[0].currency
    inside: list[UsageRecord] = []
    for r in records:
        if r.end <= period.start or r.start >= period.end:
            continue
        if r.start < period.start or r.end > period.end:
            raise InvalidRequest(f"usage record {r.id} straddles the period", record=r.id)
        inside.append(r)
    own = sorted((x for x in leases if x.tenant == tenant), key=lambda x: (x.start, x.id))
    by_id = {x.id: x for x in own}
    for r in inside:
        if r.tenant == tenant and r.capacity is CapacityClass.GUARANTEED:
            lease = by_id.get(r.lease_id or "")
            if lease is None or r.start < lease.start or r.end > lease.end:
                raise UncoveredUsage(
                    f"guaranteed usage {r.id} lies outside lease {r.lease_id} of {tenant}",
                    record=r.id,
                )
    lines: list[Line] = []
    sla: list[Line] = []
    for lease in own:
        if lease.currency is not None and lease.currency != currency:
            raise InvalidRequest(f"lease {lease.id} is in {lease.currency}, plan in {currency}")
        window = period.clip(lease.start, lease.end)
        if window is None:
            continue
        rate, source = _committed_rate(lease, plan)
        secs = _secs(lease.gpus * micros_between(*window))
        amount = price(secs, rate, currency)
        lines.append(
            Line(
                LineKind.RESERVED,
                f"lease {lease.id}: {lease.gpus} GPUs reserved "
                f"{window[0].isoformat()}..{window[1].isoformat()} ({source})",
                secs,
                rate,
                amount,
                lease_id=lease.id,
                plan=source,
            )
        )
        if rule is not None:
            sla += _sla_lines(lease, rate, amount, period, rule, evidence, currency)
    lines += _usage_lines(tenant, inside, plan, currency)
    lines += _lending_lines(tenant, inside, plans, currency)
    lines += sla
    return Rated(tenant, period, currency, tuple(lines))
