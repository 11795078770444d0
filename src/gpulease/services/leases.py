"""Leases: request with a quote, admission against the calendar, approval, time transitions.

Admission. A request is admitted only if its window starts now or later and ends within
``lease_horizon_days`` (``leasing.holds.check_window``), and the site's calendar has room at
every instant of its window (``leasing.calendar.admit``), counting every lease that holds
capacity (a pending request included, until its hold lapses) and the nodes' maintenance
windows. The check and the insert run in one transaction under a per-site lock, so two
concurrent requests cannot both take the last GPUs. Approval re-checks nothing: the capacity
was held from the request on.

Holds. A request not yet approved is a claim, bounded twice (``leasing.holds``): it lapses
``lease_hold_hours`` after it was made (``hold_expires_at``; approval, rejection or
cancellation clear it), and one tenant's unapproved requests at a site may hold at most
``lease_hold_share`` of its GPUs at any instant (409 ``conflict`` naming what to do). The
share binds the tenant, whoever asks: an operator requesting for a tenant is bound the same.
A lapsed request stops counting in the calendar at once, whether or not ``tick`` has run;
``tick`` then moves it to ``expired`` with a reason and an audit record, and an operator's
decision on it is refused (409) after moving it there.

Amendment. An operator may resize a decided lease or move its end (``amend``): the new
size and window are admitted like a request (the lease's own hold left out), re-priced at the
lease's rate, and audited.

Time. ``tick`` moves leases along as the clock passes their bounds: requested -> expired when
its hold lapsed, approved -> scheduled (-> active when the window has begun),
active/suspended -> ended at ``end``. Every change goes through ``LEASE_TRANSITIONS`` and
writes an audit record with its reason. Requests made before holds expired (no
``hold_expires_at``) get one at the first ``tick``: a full hold from then, not a lapse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gpulease.domain.access import Action, Principal, Scope
from gpulease.domain.errors import Conflict, InvalidRequest, InvalidTransition
from gpulease.domain.states import (
    CAPACITY_HOLDING_LEASE_STATES,
    LEASE_TRANSITIONS,
    LeaseState,
    transition,
)
from gpulease.leasing.calendar import Hold, admit, free_steps
from gpulease.leasing.holds import (
    check_hold_share,
    check_pending_count,
    check_window,
    hold_lapsed,
)
from gpulease.leasing.pricing import quote
from gpulease.persistence.db import Tx
from gpulease.persistence.tables import Lease, MaintenanceWindow, Node, Site, Tenant
from gpulease.services import audit
from gpulease.services.context import ServiceContext, new_id
from gpulease.services.idempotency import Idempotent, once
from gpulease.services.standing import is_approved, why_not

LEASE_AUDIT_FIELDS = ("state", "state_reason", "gpus", "start", "end", "price")
AWAITING_APPROVAL = "awaiting the operator's approval"


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
    settings = ctx.settings
    check_window(req.start, req.end, now, timedelta(days=settings.lease_horizon_days))
    hold_expires_at = now + timedelta(hours=settings.lease_hold_hours)

    def create(tx: Tx) -> Lease:
        tenant = tx.require(Tenant, tenant_id, "tenant")
        site = tx.require(Site, req.site_id, "site")
        gpus = _requested_gpus(tx, site.id, req)
        tx.lock(f"lease-calendar:{site.id}")
        total = _site_gpus(tx, site.id)
        holding = _holding(tx, site.id, now)
        admit(
            total, gpus, req.start, req.end, [_hold(r) for r in holding], _maintenance(tx, site.id)
        )
        mine = [r for r in holding if r.tenant_id == tenant_id and r.state == LeaseState.REQUESTED]
        check_pending_count(
            pending=len(mine), limit=settings.max_pending_lease_requests, tenant=tenant.name
        )
        check_hold_share(
            total=total,
            share=settings.lease_hold_share,
            gpus=gpus,
            start=req.start,
            end=req.end,
            pending=[_hold(r) for r in mine],
            tenant=tenant.name,
        )
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
            state_reason=f"{AWAITING_APPROVAL}; the request lapses at "
            f"{hold_expires_at.replace(microsecond=0).isoformat()} unless approved",
            hold_expires_at=hold_expires_at,
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


@dataclass(frozen=True, slots=True)
class Calendar:
    """A site's leases over a window as ``actor`` may read them, and the site's headroom:
    the GPUs no lease (of any tenant) nor maintenance holds, as a step function."""

    site_id: str
    total: int
    start: datetime
    end: datetime
    leases: list[Lease]  # overlapping the window, visible to the reader, by start
    headroom: list[tuple[datetime, int]]  # leasing.calendar.free_steps


CALENDAR_LEASES = 1000  # leases drawn at most (the earliest-starting ones)


def calendar(
    ctx: ServiceContext, actor: Principal, *, site_id: str, start: datetime, end: datetime
) -> Calendar:
    """The lease calendar of ``site_id`` over ``[start, end)`` (see :class:`Calendar`). The
    headroom counts every tenant's holds, as a quote's refusal does; it names none."""
    scope = actor.scope(Action.LEASE_READ)
    now = ctx.now()
    with ctx.db.transaction(write=False) as tx:
        tx.require(Site, site_id, "site")
        total = _site_gpus(tx, site_id)
        holds = [_hold(lease) for lease in _holding(tx, site_id, now)]
        maintenance = _maintenance(tx, site_id)
        query = (
            tx.select(Lease)
            .where(Lease.site_id == site_id, Lease.start < end, Lease.end > start)
            .order_by(Lease.start, Lease.id)
            .limit(CALENDAR_LEASES)
        )
        if scope is not Scope.ALL:
            query = query.where(Lease.tenant_id == actor.tenant_id)
        shown = tx.all(query)
    steps = free_steps(total, start, end, holds, maintenance)
    return Calendar(site_id, total, start, end, shown, steps)


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
        lapsed_at = lease.hold_expires_at
        # a lapsed request is moved to expired (committed) and the decision refused below:
        # its capacity was back in the calendar and may already be promised to another
        lapsed = _lapse_if_due(tx, lease, now, "scheduler")
        if not lapsed:
            if target is LeaseState.ACTIVE:
                tenant = tx.require(Tenant, lease.tenant_id, "tenant")
                if not is_approved(tenant, now):
                    raise Conflict(
                        f"lease {lease.id} cannot be resumed: {HELD_FOR_APPROVAL} "
                        f"({why_not(tenant, now)})",
                        lease_id=lease.id,
                    )
            _move(tx, lease, target, now, actor.user_id, reason or f"{target.value} by operator")
            if target is LeaseState.APPROVED:
                _advance(tx, lease, now, "scheduler")
    if lapsed and lapsed_at is not None:
        raise InvalidTransition(
            f"lease {lease.id} expired at {lapsed_at.isoformat()}: it was not approved within "
            f"{ctx.settings.lease_hold_hours:g} hours and its capacity went back to the "
            "calendar; the tenant may request it again",
            current=LeaseState.EXPIRED.value,
            target=target.value,
        )
    return lease


AMENDABLE = frozenset({LeaseState.APPROVED, LeaseState.SCHEDULED, LeaseState.ACTIVE})


def amend(
    ctx: ServiceContext,
    actor: Principal,
    lease_id: str,
    *,
    gpus: int | None = None,
    end: datetime | None = None,
    reason: str,
) -> Lease:
    """An operator resizes a decided lease (``gpus``) or moves its end (extend or shorten),
    before or during its window. The new size and window are admitted against the calendar
    as a request is (every other lease that holds capacity and the maintenance windows,
    under the site's lock), the price is quoted again for the new size and window, and the
    change is audited (``lease.amend``, before and after). Its start stays; an active
    lease's end may not move into the past. The lease's mirror (a Slurm reservation, where
    the site mirrors leases) follows at the scheduler's next reservation sync."""
    actor.scope(Action.LEASE_DECIDE)
    if gpus is None and end is None:
        raise InvalidRequest("say what changes: gpus, end or both", field="gpus")
    if not reason.strip():
        raise InvalidRequest("say why the lease is amended", field="reason")
    now = ctx.now()
    horizon = timedelta(days=ctx.settings.lease_horizon_days)
    with ctx.db.transaction() as tx:
        lease = tx.require(Lease, lease_id, "lease", for_update=True)
        actor.authorize(Action.LEASE_DECIDE, tenant_id=lease.tenant_id, record_id=lease_id)
        state = LeaseState(lease.state)
        if state not in AMENDABLE:
            raise InvalidTransition(
                f"lease {lease.id} is {state.value}: only approved, scheduled or active leases "
                "are amended",
                current=state.value,
                target=state.value,
            )
        new_gpus = lease.gpus if gpus is None else gpus
        new_end = lease.end if end is None else end
        if new_gpus < 1:
            raise InvalidRequest("gpus must be >= 1", field="gpus")
        if new_end.tzinfo is None:
            raise InvalidRequest("end needs a timezone (use UTC, e.g. ...Z)", field="end")
        if new_end <= max(lease.start, now):
            raise InvalidRequest("the new end must be after the start and after now", field="end")
        if new_end > now + horizon:
            raise InvalidRequest(
                f"a lease ends within {ctx.settings.lease_horizon_days} days", field="end"
            )
        tx.lock(f"lease-calendar:{lease.site_id}")
        total = _site_gpus(tx, lease.site_id)
        others = [_hold(r) for r in _holding(tx, lease.site_id, now) if r.id != lease.id]
        admit(total, new_gpus, lease.start, new_end, others, _maintenance(tx, lease.site_id))
        before = audit.fields_of(lease, LEASE_AUDIT_FIELDS)
        price = quote(new_gpus, lease.start, new_end, lease.rate, lease.currency)
        lease.gpus, lease.end, lease.price = new_gpus, new_end, price.amount
        if gpus is not None:
            lease.racks = None  # a count of GPUs now, whatever it was asked as
        lease.updated_at = now
        audit.record(
            tx,
            at=now,
            actor=actor.user_id,
            action="lease.amend",
            subject_type="lease",
            subject_id=lease.id,
            before=before,
            after=audit.fields_of(lease, LEASE_AUDIT_FIELDS),
            reason=audit.clip(reason),
        )
    return lease


def tick(ctx: ServiceContext, now: datetime) -> int:
    """Move leases along the calendar as time passes; return how many changed."""
    changed = 0
    with ctx.db.transaction() as tx:
        requests = tx.all(
            tx.select(Lease).where(
                Lease.state == LeaseState.REQUESTED.value,
                (Lease.hold_expires_at <= now) | Lease.hold_expires_at.is_(None),
            )
        )
        for lease in requests:
            if lease.hold_expires_at is None:
                _grant_hold(tx, lease, now + timedelta(hours=ctx.settings.lease_hold_hours), now)
            else:
                changed += _lapse_if_due(tx, lease, now, "scheduler")
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


def _lapse_if_due(tx: Tx, lease: Lease, now: datetime, actor: str) -> bool:
    """Move a request whose hold lapsed to ``expired``; True if it did."""
    if lease.state != LeaseState.REQUESTED or not hold_lapsed(lease.hold_expires_at, now):
        return False
    assert lease.hold_expires_at is not None
    reason = (
        f"not approved by {lease.hold_expires_at.replace(microsecond=0).isoformat()}: the hold "
        f"on {lease.gpus:,} GPUs lapsed and went back to the calendar; request again if "
        "still needed"
    )
    _move(tx, lease, LeaseState.EXPIRED, now, actor, reason)
    return True


def _grant_hold(tx: Tx, lease: Lease, until: datetime, now: datetime) -> None:
    """A request made before holds expired: it holds until ``until`` from now on."""
    lease.hold_expires_at = until
    lease.state_reason = audit.clip(
        f"{AWAITING_APPROVAL}; the request lapses at "
        f"{until.replace(microsecond=0).isoformat()} unless approved"
    )
    lease.updated_at = now
    audit.record(
        tx,
        at=now,
        actor="scheduler",
        action="lease.hold",
        subject_type="lease",
        subject_id=lease.id,
        after={"hold_expires_at": until.isoformat()},
        reason="a request made before unapproved holds lapsed: it holds until then",
    )


def _move(tx: Tx, lease: Lease, target: LeaseState, now: datetime, actor: str, reason: str) -> None:
    before = audit.fields_of(lease, LEASE_AUDIT_FIELDS)
    lease.state = transition(
        LEASE_TRANSITIONS, LeaseState(lease.state), target, subject=f"lease {lease.id}"
    ).value
    if target is not LeaseState.REQUESTED:
        lease.hold_expires_at = None  # decided (or lapsed): no longer a claim that lapses
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


def _site_gpus(tx: Tx, site_id: str) -> int:
    """The site's GPUs, every node counted (the calendar sells capacity, up or not)."""
    return sum(n.gpus for n in tx.all(tx.select(Node).where(Node.site_id == site_id)))


def _holding(tx: Tx, site_id: str, now: datetime) -> list[Lease]:
    """The leases that hold capacity at the site: every lease in a capacity-holding state
    but requests whose hold lapsed (whether or not ``tick`` has moved them yet)."""
    rows = tx.all(
        tx.select(Lease).where(
            Lease.site_id == site_id,
            Lease.state.in_([s.value for s in CAPACITY_HOLDING_LEASE_STATES]),
        )
    )
    return [
        r
        for r in rows
        if not (r.state == LeaseState.REQUESTED and hold_lapsed(r.hold_expires_at, now))
    ]


def _hold(lease: Lease) -> Hold:
    return Hold(lease.start, lease.end, lease.gpus, lease.id)


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
