"""Leases: request with a quote, admission against the calendar, approval, time transitions.

Admission. A request is admitted only if the site's calendar has room at every instant of
its window (``leasing.calendar.admit``), counting every lease that holds capacity (a pending
request included) and the nodes' maintenance windows. The check and the insert run in one
transaction under a per-site lock, so two concurrent requests cannot both take the last
GPUs. Approval re-checks nothing: the capacity was held from the request on.

Time. ``tick`` moves leases along as the clock passes their bounds: approved -> scheduled
(-> active when the window has begun), active/suspended -> ended at ``end``. Every change
goes through ``LEASE_TRANSITIONS`` and writes an audit record with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gpulease.domain.access import Action, Principal, Scope
from gpulease.domain.errors import Conflict, InvalidRequest
from gpulease.domain.states import (
    CAPACITY_HOLDING_LEASE_STATES,
    LEASE_TRANSITIONS,
    LeaseState,
    transition,
)
from gpulease.leasing.calendar import Hold, admit
from gpulease.leasing.pricing import quote
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Lease, MaintenanceWindow, Node, Site, Tenant
from gpulease.services import audit
from gpulease.services.context import ServiceContext, new_id
from gpulease.services.idempotency import Idempotent, once
from gpulease.services.standing import is_approved, why_not

LEASE_AUDIT_FIELDS = ("state", "state_reason", "gpus", "start", "end", "price")
MAX_LEASE = timedelta(days=3 * 366)


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    site_id: str
    start: datetime
    end: datetime
    gpus: int | None = None
    racks: int | None = None
    tenant_id: str | None = None  # operators name the tenant; tenant users may omit it


def request_lease(
    ctx: ServiceContext, actor: Principal, req: LeaseRequest, idem: Idempotent | None = None
) -> Lease:
    tenant_id = actor.acting_tenant(req.tenant_id)
    actor.authorize(Action.LEASE_REQUEST, tenant_id=tenant_id)
    now = ctx.now()
    _validate_window(req.start, req.end, now)

    def create(tx: Tx) -> Lease:
        tx.require(Tenant, tenant_id, "tenant")
        site = tx.require(Site, req.site_id, "site")
        gpus = _requested_gpus(tx, site.id, req)
        tx.lock(f"lease-calendar:{site.id}")
        total = sum(n.gpus for n in tx.all(tx.select(Node).where(Node.site_id == site.id)))
        admit(total, gpus, req.start, req.end, _holds(tx, site.id), _maintenance(tx, site.id))
        price = quote(
            gpus, req.start, req.end, ctx.settings.price_per_gpu_hour, ctx.settings.currency
        )
        lease = Lease(
            id=new_id("lease"),
            tenant_id=tenant_id,
            site_id=site.id,
            gpus=gpus,
            racks=req.racks,
            start=req.start,
            end=req.end,
            state=LeaseState.REQUESTED.value,
            state_reason="awaiting the operator's approval",
            price=price.amount,
            rate=price.rate_per_gpu_hour,
            currency=price.currency,
            created_by=actor.user_id,
            created_at=now,
            updated_at=now,
        )
        tx.add(lease)
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="lease.request",
            subject_type="lease",
            subject_id=lease.id,
            after=audit.fields_of(lease, LEASE_AUDIT_FIELDS),
            reason=f"quote {price.amount} {price.currency} for {price.gpu_hours} GPU-hours",
        )
        return lease

    return once(ctx, actor, idem, create, lambda tx, found: tx.require(Lease, found, "lease"))


def get_lease(ctx: ServiceContext, actor: Principal, lease_id: str) -> Lease:
    with ctx.db.transaction(write=False) as tx:
        lease = tx.require(Lease, lease_id, "lease")
    actor.authorize(Action.LEASE_READ, tenant_id=lease.tenant_id, record_id=lease_id)
    return lease


def list_leases(
    ctx: ServiceContext, actor: Principal, *, state: str | None = None, limit: int = 500
) -> list[Lease]:
    with ctx.db.transaction(write=False) as tx:
        query = tx.select(Lease).order_by(Lease.created_at.desc(), Lease.id).limit(limit)
        if actor.scope(Action.LEASE_READ) is not Scope.ALL:
            query = query.where(Lease.tenant_id == actor.tenant_id)
        if state is not None:
            query = query.where(Lease.state == LeaseState(state).value)
        return tx.all(query)


def decide(
    ctx: ServiceContext, actor: Principal, lease_id: str, target: LeaseState, reason: str
) -> Lease:
    """An operator's decision (approve, reject, suspend, resume) or a cancellation."""
    now = ctx.now()
    action = Action.LEASE_CANCEL if target is LeaseState.CANCELLED else Action.LEASE_DECIDE
    actor.scope(action)  # refused before any read when the role may not at all
    if target in (LeaseState.REJECTED, LeaseState.SUSPENDED, LeaseState.CANCELLED) and not (
        reason.strip()
    ):
        raise InvalidRequest(f"say why the lease is {target.value}", field="reason")
    with ctx.db.transaction() as tx:
        lease = tx.require(Lease, lease_id, "lease", for_update=True)
        actor.authorize(action, tenant_id=lease.tenant_id, record_id=lease_id)
        if target is LeaseState.ACTIVE:
            tenant = tx.require(Tenant, lease.tenant_id, "tenant")
            if not is_approved(tenant, now):
                raise Conflict(
                    f"lease {lease.id} cannot be resumed: "
                    f"{HELD_FOR_APPROVAL} ({why_not(tenant, now)})",
                    lease_id=lease.id,
                )
        _move(tx, lease, target, now, actor.user_id, reason or f"{target.value} by operator")
        if target is LeaseState.APPROVED:
            _advance(tx, lease, now, "scheduler")
    return lease


def tick(ctx: ServiceContext, now: datetime) -> int:
    """Move leases along the calendar as time passes; return how many changed."""
    changed = 0
    with ctx.db.transaction() as tx:
        rows = tx.all(
            tx.select(Lease).where(
                Lease.state.in_(
                    [
                        s.value
                        for s in (
                            LeaseState.APPROVED,
                            LeaseState.SCHEDULED,
                            LeaseState.ACTIVE,
                            LeaseState.SUSPENDED,
                        )
                    ]
                )
            )
        )
        for lease in rows:
            changed += _advance(tx, lease, now, "scheduler")
    return changed


def active_guarantees(tx: Tx, site_id: str, now: datetime) -> list[Lease]:
    return tx.all(
        tx.select(Lease).where(
            Lease.site_id == site_id,
            Lease.state == LeaseState.ACTIVE.value,
            Lease.start <= now,
            Lease.end > now,
        )
    )


HELD_FOR_APPROVAL = "the tenant is not approved"


def follow_standing(tx: Tx, tenant: Tenant, now: datetime, actor: str) -> None:
    """A tenant's leases follow its standing: suspended while it is not approved, active
    again once it is (only those suspended for that reason; an operator's own suspension
    stays)."""
    rows = tx.all(
        tx.select(Lease).where(
            Lease.tenant_id == tenant.id,
            Lease.state.in_([LeaseState.ACTIVE.value, LeaseState.SUSPENDED.value]),
        )
    )
    approved = is_approved(tenant, now)
    for lease in rows:
        if not approved and lease.state == LeaseState.ACTIVE:
            _move(
                tx,
                lease,
                LeaseState.SUSPENDED,
                now,
                actor,
                f"{HELD_FOR_APPROVAL}: {why_not(tenant, now)}",
            )
        elif (
            approved
            and lease.state == LeaseState.SUSPENDED
            and lease.state_reason.startswith(HELD_FOR_APPROVAL)
            and now < lease.end
        ):
            _move(tx, lease, LeaseState.ACTIVE, now, actor, "the tenant is approved again")


# --------------------------------------------------------------------------- helpers
def _advance(tx: Tx, lease: Lease, now: datetime, actor: str) -> int:
    steps = 0
    state = LeaseState(lease.state)
    if state is LeaseState.APPROVED:
        _move(tx, lease, LeaseState.SCHEDULED, now, actor, "capacity reserved in the calendar")
        state, steps = LeaseState.SCHEDULED, steps + 1
    if state is LeaseState.SCHEDULED and lease.start <= now:
        tenant = tx.require(Tenant, lease.tenant_id, "tenant")
        if not is_approved(tenant, now) and now >= lease.end:
            # never active: the window passed while the tenant was not approved
            reason = f"lease window ended unused: {HELD_FOR_APPROVAL} ({why_not(tenant, now)})"
            _move(tx, lease, LeaseState.ENDED, now, actor, reason)
            return steps + 1
        if not is_approved(tenant, now):
            reason = f"waiting: {HELD_FOR_APPROVAL} ({why_not(tenant, now)})"
            if lease.state_reason != reason:
                lease.state_reason = reason
                audit.record(
                    tx,
                    at=now,
                    actor=actor,
                    action="lease.held",
                    subject_type="lease",
                    subject_id=lease.id,
                    reason=reason,
                )
            return steps
    if state is LeaseState.SCHEDULED and lease.start <= now:
        _move(tx, lease, LeaseState.ACTIVE, now, actor, "lease window began")
        state, steps = LeaseState.ACTIVE, steps + 1
    if state in (LeaseState.ACTIVE, LeaseState.SUSPENDED) and now >= lease.end:
        _move(tx, lease, LeaseState.ENDED, now, actor, "lease window ended")
        steps += 1
    return steps


def _move(tx: Tx, lease: Lease, target: LeaseState, now: datetime, actor: str, reason: str) -> None:
    before = audit.fields_of(lease, LEASE_AUDIT_FIELDS)
    lease.state = transition(
        LEASE_TRANSITIONS, LeaseState(lease.state), target, subject=f"lease {lease.id}"
    ).value
    lease.state_reason = audit.clip(reason)
    lease.updated_at = now
    audit.record(
        tx,
        at=now,
        actor=actor,
        action=f"lease.{target.value}",
        subject_type="lease",
        subject_id=lease.id,
        before=before,
        after=audit.fields_of(lease, LEASE_AUDIT_FIELDS),
        reason=reason,
    )


def _validate_window(start: datetime, end: datetime, now: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("start and end need a timezone (use UTC, e.g. ...Z)", field="start")
    if end <= start:
        raise InvalidRequest("end must be after start", field="end")
    if end <= now:
        raise InvalidRequest("the lease window is already over", field="end")
    if end - start > MAX_LEASE:
        raise InvalidRequest("a lease lasts at most 3 years", field="end")


def _requested_gpus(tx: Tx, site_id: str, req: LeaseRequest) -> int:
    if (req.gpus is None) == (req.racks is None):
        raise InvalidRequest("ask for either gpus or racks (whole NVLink domains)", field="gpus")
    if req.racks is not None:
        if req.racks < 1:
            raise InvalidRequest("racks must be >= 1", field="racks")
        nodes = tx.all(tx.select(Node).where(Node.site_id == site_id))
        per_rack: dict[str, int] = {}
        for node in nodes:
            per_rack[node.rack_id] = per_rack.get(node.rack_id, 0) + node.gpus
        return req.racks * max(per_rack.values(), default=0)
    assert req.gpus is not None
    if req.gpus < 1:
        raise InvalidRequest("gpus must be >= 1", field="gpus")
    return req.gpus


def _holds(tx: Tx, site_id: str) -> list[Hold]:
    rows = tx.all(
        tx.select(Lease).where(
            Lease.site_id == site_id,
            Lease.state.in_([s.value for s in CAPACITY_HOLDING_LEASE_STATES]),
        )
    )
    return [Hold(r.start, r.end, r.gpus, r.id) for r in rows]


def _maintenance(tx: Tx, site_id: str) -> list[Hold]:
    """A node's GPUs are out of service while any of its windows is open: overlapping
    windows of one node are merged, so they take its GPUs out once, not once per window."""
    gpus = {n.id: n.gpus for n in tx.all(tx.select(Node).where(Node.site_id == site_id))}
    rows = tx.all(
        tx.select(MaintenanceWindow)
        .where(MaintenanceWindow.site_id == site_id)
        .order_by(MaintenanceWindow.node_id, MaintenanceWindow.start)
    )
    holds: list[Hold] = []
    for w in rows:
        last = holds[-1] if holds else None
        if last is not None and last.what.startswith(w.node_id + ":") and w.start < last.end:
            holds[-1] = Hold(last.start, max(last.end, w.end), last.gpus, f"{last.what},{w.id}")
        else:
            holds.append(Hold(w.start, w.end, gpus[w.node_id], f"{w.node_id}:{w.id}"))
    return holds
