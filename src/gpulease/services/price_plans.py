"""Price plans: versioned, dated, one currency per plan, managed by the operator.

Design. A plan is the sequence of its :class:`~gpulease.persistence.tables.PricePlanVersion`
rows; the pure :class:`~gpulease.metering.plans.PlanSchedule` checks them (one currency,
increasing numbers and dates, rates and fractions in range). A version is never updated: a
price change is a new version, from a moment not in the past, so an invoice already issued
is never contradicted by re-rating its period. The first version of a plan may start at any
moment (periods before it had no price and could not be invoiced). The SLA rule that
credits the plan's lease holders (``metering.rating.SlaRule``) is part of each version.

A tenant is rated on the plan assigned to it, or :data:`DEFAULT_PLAN` without one. Creating
a version or assigning a plan is the operator-admin's and audited (so it enters the ledger);
every authenticated user may read the plans (published prices); a tenant reads its own
assignment only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from gpulease.domain.access import Action, Principal
from gpulease.domain.errors import InvalidRequest, NotFound
from gpulease.metering.periods import utc
from gpulease.metering.plans import PlanSchedule, PlanVersion
from gpulease.metering.rating import SlaRule
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import PlanAssignment, PricePlanVersion, Tenant
from gpulease.services import audit
from gpulease.services.context import ServiceContext

DEFAULT_PLAN = "standard"
MAX_VERSIONS = 1000  # versions one plan may have (a bound on what one rating reads)


@dataclass(frozen=True, slots=True)
class PlanInput:
    """A new version of ``plan_id`` (created if new), in force from ``effective_from``."""

    plan_id: str
    effective_from: datetime
    currency: str
    reserved_rate: Decimal
    on_demand_rate: Decimal
    borrowed_discount: Decimal
    lending_share: Decimal
    sla_wait_slo_s: int = 3600
    sla_wait_multiple: Decimal = Decimal(1)
    sla_degraded_multiple: Decimal = Decimal(1)
    sla_cap_share: Decimal = Decimal("0.3")


@dataclass(frozen=True, slots=True)
class StoredPlan:
    """A plan version with its SLA rule, as stored."""

    version: PlanVersion
    rule: SlaRule
    created_by: str
    created_at: datetime


def _core(row: PricePlanVersion) -> StoredPlan:
    return StoredPlan(
        PlanVersion(
            plan_id=row.plan_id,
            version=row.version,
            effective_from=row.effective_from,
            currency=row.currency,
            reserved_rate=row.reserved_rate,
            on_demand_rate=row.on_demand_rate,
            borrowed_discount=row.borrowed_discount,
            lending_share=row.lending_share,
        ),
        SlaRule(
            slo_wait=timedelta(seconds=row.sla_wait_slo_s),
            wait_multiple=row.sla_wait_multiple,
            degraded_multiple=row.sla_degraded_multiple,
            cap_share=row.sla_cap_share,
        ),
        row.created_by,
        row.created_at,
    )


def _rows(tx: Tx, plan_ids: list[str] | None = None) -> list[PricePlanVersion]:
    query = tx.select(PricePlanVersion).order_by(PricePlanVersion.plan_id, PricePlanVersion.version)
    if plan_ids is not None:
        query = query.where(PricePlanVersion.plan_id.in_(plan_ids))
    return tx.all(query)


def schedules(tx: Tx, plan_ids: list[str]) -> dict[str, tuple[PlanSchedule, list[SlaRule]]]:
    """Each named plan's schedule and its versions' SLA rules (same order); plans without
    versions are left out."""
    grouped: dict[str, list[StoredPlan]] = {}
    for row in _rows(tx, plan_ids):
        grouped.setdefault(row.plan_id, []).append(_core(row))
    return {
        plan: (PlanSchedule([s.version for s in stored]), [s.rule for s in stored])
        for plan, stored in grouped.items()
    }


def assigned_plans(tx: Tx, tenant_ids: list[str]) -> dict[str, str]:
    """The plan each tenant is rated on (the default plan where none is assigned)."""
    found = {
        row.tenant_id: row.plan_id
        for row in tx.all(tx.select(PlanAssignment).where(PlanAssignment.tenant_id.in_(tenant_ids)))
    }
    return {t: found.get(t, DEFAULT_PLAN) for t in tenant_ids}


def list_plans(ctx: ServiceContext, principal: Principal) -> list[StoredPlan]:
    """Every version of every plan, by plan and version (published prices)."""
    principal.scope(Action.PLAN_READ)
    with ctx.db.transaction(write=False) as tx:
        return [_core(row) for row in _rows(tx)]


def create_version(ctx: ServiceContext, principal: Principal, given: PlanInput) -> StoredPlan:
    """Add a version to a plan (the plan's first creates it). Refused: a later version that
    takes effect in the past or not after the last one, another currency, bad rates."""
    principal.authorize(Action.PLAN_MANAGE, tenant_id=None)
    now = ctx.now()
    effective = utc(given.effective_from, "effective_from")
    if not given.plan_id or len(given.plan_id) > 64 or not given.plan_id.isascii():
        raise InvalidRequest("a plan id is 1 to 64 ASCII characters", field="plan_id")
    if not 0 <= given.sla_wait_slo_s <= 30 * 86400:
        raise InvalidRequest("the wait SLO lies between 0 and 30 days", field="sla_wait_slo_s")
    with ctx.db.transaction() as tx:
        existing = [_core(r) for r in _rows(tx, [given.plan_id])]
        if existing and effective < now:
            raise InvalidRequest(
                "a new version of a plan takes effect now or later (issued invoices stand); "
                f"effective_from {effective.isoformat()} is before {now.isoformat()}",
                field="effective_from",
            )
        if len(existing) >= MAX_VERSIONS:
            raise InvalidRequest(f"plan {given.plan_id} has {MAX_VERSIONS} versions already")
        number = existing[-1].version.version + 1 if existing else 1
        version = PlanVersion(
            plan_id=given.plan_id,
            version=number,
            effective_from=effective,
            currency=given.currency.upper(),
            reserved_rate=given.reserved_rate,
            on_demand_rate=given.on_demand_rate,
            borrowed_discount=given.borrowed_discount,
            lending_share=given.lending_share,
        )
        rule = SlaRule(
            slo_wait=timedelta(seconds=given.sla_wait_slo_s),
            wait_multiple=given.sla_wait_multiple,
            degraded_multiple=given.sla_degraded_multiple,
            cap_share=given.sla_cap_share,
        )
        PlanSchedule([*(s.version for s in existing), version])  # one currency, in order
        row = PricePlanVersion(
            plan_id=version.plan_id,
            version=version.version,
            effective_from=version.effective_from,
            currency=version.currency,
            reserved_rate=version.reserved_rate,
            on_demand_rate=version.on_demand_rate,
            borrowed_discount=version.borrowed_discount,
            lending_share=version.lending_share,
            sla_wait_slo_s=given.sla_wait_slo_s,
            sla_wait_multiple=rule.wait_multiple,
            sla_degraded_multiple=rule.degraded_multiple,
            sla_cap_share=rule.cap_share,
            created_by=principal.user_id,
            created_at=now,
        )
        tx.add(row)
        audit.record(
            tx,
            at=now,
            actor=principal.user_id,
            action="price_plan.version",
            subject_type="price_plan",
            subject_id=version.ref,
            after=audit.fields_of(
                row,
                (
                    "effective_from",
                    "currency",
                    "reserved_rate",
                    "on_demand_rate",
                    "borrowed_discount",
                    "lending_share",
                    "sla_wait_slo_s",
                    "sla_wait_multiple",
                    "sla_degraded_multiple",
                    "sla_cap_share",
                ),
            ),
        )
        return StoredPlan(version, rule, principal.user_id, now)


def assign(ctx: ServiceContext, principal: Principal, tenant_id: str, plan_id: str) -> str:
    """Rate ``tenant_id`` on ``plan_id`` from now on (periods not yet invoiced included)."""
    principal.authorize(Action.PLAN_MANAGE, tenant_id=tenant_id)
    now = ctx.now()
    with ctx.db.transaction() as tx:
        if tx.get(Tenant, tenant_id) is None:
            raise NotFound(f"no tenant {tenant_id!r}", tenant_id=tenant_id)
        if not _rows(tx, [plan_id]):
            raise NotFound(f"no price plan {plan_id!r}", plan_id=plan_id)
        row = tx.get(PlanAssignment, tenant_id)
        before = None if row is None else {"plan_id": row.plan_id}
        if row is None:
            row = PlanAssignment(tenant_id=tenant_id, plan_id=plan_id)
            tx.add(row)
        row.plan_id, row.assigned_by, row.assigned_at = plan_id, principal.user_id, now
        audit.record(
            tx,
            at=now,
            actor=principal.user_id,
            action="price_plan.assign",
            subject_type="tenant",
            subject_id=tenant_id,
            before=before,
            after={"plan_id": plan_id},
        )
    return plan_id
