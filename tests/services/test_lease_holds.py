"""Unapproved lease requests are bounded claims: they lapse, and one tenant's may hold only a
share of a site. The finding: one tenant held 1,472 of 2,304 GPUs for three years with a
request nobody approved, and every other tenant's request was refused.

The demo site has 2,304 GPUs, 768 leased (approved) by the demo: 1,536 free. With the default
``lease_hold_share`` of 0.25, one tenant's unapproved requests may hold 576 GPUs at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Conflict, InsufficientCapacity, InvalidTransition
from gpulease.domain.states import LeaseState
from gpulease.persistence.tables import AuditRecord, Lease
from gpulease.services import demo as demo_service
from gpulease.services import leases
from gpulease.services.context import ServiceContext

SITE = demo_service.SITE_ID
HOLD = timedelta(hours=72)  # the default lease_hold_hours


def ask(ctx: ServiceContext, who: Principal, start: datetime, days: float, gpus: int) -> Lease:
    end = start + timedelta(days=days)
    return leases.request_lease(ctx, who, leases.LeaseRequest(SITE, start, end, gpus=gpus))


def row(ctx: ServiceContext, lease_id: str) -> Lease:
    with ctx.db.transaction(write=False) as tx:
        return tx.require(Lease, lease_id, "lease")


def audit_of(ctx: ServiceContext, lease_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(AuditRecord).where(AuditRecord.subject_id == lease_id).order_by(AuditRecord.id)
        )


def test_one_tenant_cannot_hold_the_site_with_an_unapproved_request(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, bank: Principal
) -> None:
    start = clock.now() + timedelta(days=1)
    with pytest.raises(Conflict) as refused:
        ask(ctx, inftech, start, 3 * 365, 1472)
    assert refused.value.code == "conflict"  # 409: the site itself has the room
    assert "at most 576 GPUs at once (25% of the site's 2,304)" in refused.value.message
    assert "Ask for at most 576 GPUs" in refused.value.message
    assert refused.value.details["limit"] == 576
    # every other tenant's request is still admitted
    other = ask(ctx, bank, start, 30, 500)
    assert other.state == LeaseState.REQUESTED


def test_a_request_nobody_approves_lapses_and_gives_its_capacity_back(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, bank: Principal
) -> None:
    ctx.settings.lease_hold_share = 1.0  # an operator who allows one tenant the whole site
    hog = ask(ctx, inftech, clock.now() + timedelta(days=1), 3 * 365, 1472)
    start = clock.now() + timedelta(days=5)  # inside the hog's window
    assert hog.hold_expires_at == clock.now() + HOLD
    assert "lapses at" in hog.state_reason
    with pytest.raises(InsufficientCapacity):  # 64 GPUs are left
        ask(ctx, bank, start, 30, 500)

    clock.advance(HOLD.total_seconds())
    # the lapsed hold no longer counts, even before the scheduler's tick moved it
    admitted = ask(ctx, bank, start, 30, 500)
    assert admitted.state == LeaseState.REQUESTED

    assert leases.tick(ctx, clock.now()) == 1
    lapsed = row(ctx, hog.id)
    assert lapsed.state == LeaseState.EXPIRED
    assert lapsed.hold_expires_at is None
    assert "not approved by" in lapsed.state_reason
    assert "1,472 GPUs lapsed" in lapsed.state_reason
    last = audit_of(ctx, hog.id)[-1]
    assert last.action == "lease.expired"
    assert last.actor == "scheduler"
    assert last.before is not None
    assert last.before["state"] == "requested"
    assert last.reason == lapsed.state_reason
    assert leases.tick(ctx, clock.now()) == 0  # once


def test_the_share_counts_overlapping_pending_requests_and_not_approved_leases(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, operator: Principal
) -> None:
    month = clock.now() + timedelta(days=1)
    later = month + timedelta(days=60)
    first = ask(ctx, inftech, month, 30, 400)
    ask(ctx, inftech, later, 30, 400)  # does not overlap the first: a hold of 400, not 800
    with pytest.raises(Conflict) as refused:
        ask(ctx, inftech, month + timedelta(days=10), 5, 200)  # 400 + 200 > 576 at that time
    assert refused.value.details == {
        "field": "gpus",
        "requested": 200,
        "held": 400,
        "limit": 576,
    }
    assert "INF Tech already has 400 GPUs requested and awaiting approval" in (
        refused.value.message
    )
    assert "Ask for at most 176 GPUs" in refused.value.message
    ask(ctx, inftech, month + timedelta(days=10), 5, 176)
    # approved leases are the operator's decision: they do not count against the share
    leases.decide(ctx, operator, first.id, LeaseState.APPROVED, "credit checked")
    ask(ctx, inftech, month + timedelta(days=10), 5, 400)


def test_an_operator_requesting_for_a_tenant_is_bound_the_same(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, operator: Principal
) -> None:
    start = clock.now() + timedelta(days=1)
    ask(ctx, inftech, start, 30, 500)
    with pytest.raises(Conflict):
        leases.request_lease(
            ctx,
            operator,
            leases.LeaseRequest(
                SITE, start, start + timedelta(days=30), gpus=100, tenant_id=inftech.tenant_id
            ),
        )


def test_approval_clears_the_hold(
    ctx: ServiceContext, clock: ManualClock, bank: Principal, operator: Principal
) -> None:
    start = clock.now() + timedelta(days=10)
    lease = ask(ctx, bank, start, 30, 72)
    assert lease.hold_expires_at is not None
    leases.decide(ctx, operator, lease.id, LeaseState.APPROVED, "ok")
    assert row(ctx, lease.id).hold_expires_at is None
    clock.advance(2 * HOLD.total_seconds())
    leases.tick(ctx, clock.now())
    assert row(ctx, lease.id).state == LeaseState.SCHEDULED


def test_deciding_a_lapsed_request_is_refused_and_it_expires(
    ctx: ServiceContext, clock: ManualClock, bank: Principal, operator: Principal
) -> None:
    start = clock.now() + timedelta(days=5)
    lease = ask(ctx, bank, start, 30, 72)
    clock.advance(HOLD.total_seconds())  # no tick ran: the decision finds it lapsed
    with pytest.raises(InvalidTransition) as refused:
        leases.decide(ctx, operator, lease.id, LeaseState.APPROVED, "late")
    assert "was not approved within 72 hours" in refused.value.message
    assert "request it again" in refused.value.message
    assert row(ctx, lease.id).state == LeaseState.EXPIRED


def test_a_request_from_before_holds_lapsed_gets_a_full_hold_then_lapses(
    ctx: ServiceContext, clock: ManualClock, bank: Principal
) -> None:
    lease = ask(ctx, bank, clock.now() + timedelta(days=5), 30, 72)
    with ctx.db.transaction() as tx:  # as written before migration 0004
        tx.require(Lease, lease.id, "lease").hold_expires_at = None
    clock.advance(10 * HOLD.total_seconds())
    assert leases.tick(ctx, clock.now()) == 0  # not lapsed at once: a hold from now on
    stamped = row(ctx, lease.id)
    assert stamped.state == LeaseState.REQUESTED
    assert stamped.hold_expires_at == clock.now() + HOLD
    assert audit_of(ctx, lease.id)[-1].action == "lease.hold"
    clock.advance(HOLD.total_seconds())
    assert leases.tick(ctx, clock.now()) == 1
    assert row(ctx, lease.id).state == LeaseState.EXPIRED


def test_one_tenant_may_have_only_so_many_requests_awaiting_approval(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, bank: Principal
) -> None:
    """The share bounds GPUs; this bounds how many tiny requests a tenant piles up."""
    ctx.settings.max_pending_lease_requests = 3
    start = clock.now() + timedelta(days=1)
    for i in range(3):
        ask(ctx, inftech, start + timedelta(days=2 * i), 1, 1)
    with pytest.raises(Conflict, match="3 lease requests awaiting approval"):
        ask(ctx, inftech, start + timedelta(days=10), 1, 1)
    ask(ctx, bank, start, 1, 1)  # another tenant is not counted against it
