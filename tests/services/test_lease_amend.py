"""An operator amends a decided lease: resized or its end moved, admitted against the
calendar like a request (its own hold left out), priced again, audited; refused to tenants,
to leases no longer decided, and when it would oversell.

The demo site has 2,304 GPUs, 768 of them leased (576 to INF Tech, active): 1,536 free."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import (
    Denied,
    InsufficientCapacity,
    InvalidRequest,
    InvalidTransition,
)
from gpulease.domain.states import LeaseState
from gpulease.persistence.tables import AuditRecord, Lease
from gpulease.services import demo as demo_service
from gpulease.services import leases
from gpulease.services.context import ServiceContext

SITE = demo_service.SITE_ID


def inftech_lease(ctx: ServiceContext, operator: Principal) -> Lease:
    (found,) = [
        x
        for x in leases.list_leases(ctx, operator, state="active")
        if x.gpus == 576  # INF Tech's 8 racks
    ]
    return found


def amendments(ctx: ServiceContext, lease_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(AuditRecord)
            .where(AuditRecord.subject_id == lease_id, AuditRecord.action == "lease.amend")
            .order_by(AuditRecord.id)
        )


def test_an_operator_grows_and_extends_a_lease_up_to_what_the_calendar_has(
    ctx: ServiceContext, clock: ManualClock, operator: Principal
) -> None:
    lease = inftech_lease(ctx, operator)
    grown = leases.amend(ctx, operator, lease.id, gpus=576 + 1536, reason="second phase")
    assert (grown.gpus, grown.racks, grown.end) == (2112, None, lease.end)
    assert grown.price > lease.price
    with pytest.raises(InsufficientCapacity) as refused:
        leases.amend(ctx, operator, lease.id, gpus=2113, reason="one more")
    assert refused.value.details["free"] == 2112  # its own 2,112 are not counted against it

    longer = leases.amend(ctx, operator, lease.id, end=lease.end + timedelta(days=30), reason="x")
    assert longer.end == lease.end + timedelta(days=30)
    shrunk = leases.amend(
        ctx, operator, lease.id, gpus=8, end=clock.now() + timedelta(days=1), reason="y"
    )
    assert (shrunk.gpus, shrunk.end) == (8, clock.now() + timedelta(days=1))
    first, second, third = amendments(ctx, lease.id)
    assert (first.before["gpus"], first.after["gpus"]) == (576, 2112)
    assert first.actor == operator.user_id
    assert first.reason == "second phase"
    assert (third.before["gpus"], third.after["gpus"]) == (2112, 8)
    assert second.after["end"] != second.before["end"]


def test_only_an_operator_amends_and_only_a_decided_lease_in_its_window(
    ctx: ServiceContext, clock: ManualClock, operator: Principal, inftech: Principal
) -> None:
    lease = inftech_lease(ctx, operator)
    with pytest.raises(Denied):
        leases.amend(ctx, inftech, lease.id, gpus=600, reason="more please")
    with pytest.raises(InvalidRequest, match="say what changes"):
        leases.amend(ctx, operator, lease.id, reason="nothing")
    with pytest.raises(InvalidRequest, match="say why"):
        leases.amend(ctx, operator, lease.id, gpus=8, reason=" ")
    with pytest.raises(InvalidRequest, match="after the start and after now"):
        leases.amend(ctx, operator, lease.id, end=clock.now() - timedelta(hours=1), reason="z")
    with pytest.raises(InvalidRequest, match="gpus must be"):
        leases.amend(ctx, operator, lease.id, gpus=0, reason="z")

    start = clock.now() + timedelta(days=1)
    asked = leases.request_lease(
        ctx, inftech, leases.LeaseRequest(SITE, start, start + timedelta(days=2), gpus=8)
    )
    with pytest.raises(InvalidTransition, match="only approved, scheduled or active"):
        leases.amend(ctx, operator, asked.id, gpus=16, reason="not decided yet")
    leases.decide(ctx, operator, asked.id, LeaseState.APPROVED, "")
    assert leases.amend(ctx, operator, asked.id, gpus=16, reason="decided").gpus == 16
    leases.decide(ctx, operator, asked.id, LeaseState.CANCELLED, "not needed")
    with pytest.raises(InvalidTransition):
        leases.amend(ctx, operator, asked.id, gpus=8, reason="too late")
    assert len(amendments(ctx, asked.id)) == 1
