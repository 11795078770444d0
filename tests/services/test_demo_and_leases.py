"""The demo installation, lease admission (no overselling), lease transitions and audit."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gpulease.domain.access import Principal
from gpulease.domain.clock import ManualClock
from gpulease.domain.errors import Denied, InsufficientCapacity, InvalidTransition, NotFound
from gpulease.domain.states import LeaseState
from gpulease.persistence.tables import (
    AuditRecord,
    CustodyEvent,
    Gpu,
    Lease,
    Node,
    Rack,
)
from gpulease.services import demo as demo_service
from gpulease.services import inventory, leases
from gpulease.services.context import ServiceContext

SITE = demo_service.SITE_ID


@pytest.fixture(autouse=True)
def _calendar_only(ctx: ServiceContext) -> None:
    """These tests are about the calendar's arithmetic with large unapproved requests; the
    share of a site one tenant's unapproved requests may hold has its own tests
    (tests/services/test_lease_holds.py), so it is lifted here."""
    ctx.settings.lease_hold_share = 1.0


def _count(ctx: ServiceContext, model: type) -> int:
    with ctx.db.transaction(write=False) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(model)) or 0)


def _audit(ctx: ServiceContext, subject_id: str) -> list[AuditRecord]:
    with ctx.db.transaction(write=False) as tx:
        return tx.all(
            select(AuditRecord).where(AuditRecord.subject_id == subject_id).order_by(AuditRecord.id)
        )


def test_demo_inventory_and_leases(
    ctx: ServiceContext, demo: list[demo_service.DemoUser], operator: Principal
) -> None:
    assert len(demo) == 5
    assert len({u.token for u in demo}) == 5
    assert _count(ctx, Rack) == 32
    assert _count(ctx, Node) == 576
    assert _count(ctx, Gpu) == 2304
    with ctx.db.transaction(write=False) as tx:
        serials = [g.serial for g in tx.all(select(Gpu))]
        node_serials = [n.serial for n in tx.all(select(Node))]
        racks = tx.all(select(Rack))
        custody = tx.all(select(CustodyEvent))
    assert len(set(serials)) == 2304
    assert len(set(node_serials)) == 576
    assert len({r.serial for r in racks}) == 32
    per_unit: dict[tuple[str, str], list[str]] = {}
    for event in sorted(custody, key=lambda e: (e.at, e.id)):
        per_unit.setdefault((event.unit_kind, event.unit_id), []).append(event.event)
    chain = ["manufactured", "sold", "shipped", "received", "installed"]
    assert {unit for kind, unit in per_unit if kind == "rack"} == {r.id for r in racks}
    assert {unit for kind, unit in per_unit if kind == "gpu"} == set(serials)
    assert all(events == chain for events in per_unit.values())
    active = leases.list_leases(ctx, operator, state="active")
    assert sorted(lease.gpus for lease in active) == [64, 128, 576]
    assert all(lease.site_id == SITE for lease in active)
    assert inventory.site_topology(ctx, SITE).cluster.total_gpus == 2304


def test_lease_refused_when_it_would_oversell(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, operator: Principal
) -> None:
    start = clock.now() + timedelta(days=1)
    end = start + timedelta(days=30)
    # 2,304 - 768 leased = 1,536 free
    with pytest.raises(InsufficientCapacity) as caught:
        leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1600))
    assert caught.value.details["free"] == 1536
    assert caught.value.details["requested"] == 1600
    with ctx.db.transaction(write=False) as tx:
        assert len(tx.all(select(Lease))) == 3  # nothing written

    exact = leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1536))
    assert exact.state == LeaseState.REQUESTED
    # the request holds its capacity while it is decided: not one more GPU
    with pytest.raises(InsufficientCapacity):
        leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1))
    # but right after its window, the capacity is back (half-open intervals)
    after = leases.request_lease(
        ctx, inftech, leases.LeaseRequest(SITE, end, end + timedelta(days=1), gpus=1536)
    )
    assert after.gpus == 1536
    # a rejected request gives its capacity back
    leases.decide(ctx, operator, exact.id, LeaseState.REJECTED, "no credit line")
    again = leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1536))
    assert again.state == LeaseState.REQUESTED


def test_lease_refused_when_maintenance_takes_the_capacity(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, operator: Principal
) -> None:
    start = clock.now() + timedelta(days=1)
    end = start + timedelta(days=2)
    window_start = start + timedelta(hours=12)
    for n in range(2):  # two trays of 4 GPUs in maintenance
        inventory.add_maintenance(
            ctx,
            operator,
            f"{SITE}-r31-n{n:02d}",
            window_start,
            window_start + timedelta(hours=6),
            "liquid-cooling service",
        )
    with pytest.raises(InsufficientCapacity) as caught:
        leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1536))
    assert caught.value.details["free"] == 1528
    assert caught.value.details["at"] == window_start.isoformat()
    assert "8 in maintenance" in caught.value.message
    ok = leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1528))
    assert ok.gpus == 1528
    # outside the maintenance window the whole rest is sellable
    late = end + timedelta(days=1)
    leases.request_lease(
        ctx, inftech, leases.LeaseRequest(SITE, late, late + timedelta(days=1), gpus=1536)
    )


def test_concurrent_lease_requests_never_oversell(
    ctx: ServiceContext, clock: ManualClock, demo: list[demo_service.DemoUser]
) -> None:
    from gpulease.services import identity

    principal = identity.authenticate(
        ctx, next(u.token for u in demo if u.email == "admin@bank.example")
    )
    start = clock.now() + timedelta(days=1)
    end = start + timedelta(days=7)
    threads = 8
    barrier = threading.Barrier(threads)
    admitted: list[int] = []
    refused: list[Exception] = []
    lock = threading.Lock()

    def request() -> None:
        barrier.wait()
        try:
            lease = leases.request_lease(
                ctx, principal, leases.LeaseRequest(SITE, start, end, gpus=300)
            )
        except InsufficientCapacity as error:
            with lock:
                refused.append(error)
        else:
            with lock:
                admitted.append(lease.gpus)

    workers = [threading.Thread(target=request) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    # 1,536 free: five requests of 300 fit (1,500), the other three do not
    assert len(admitted) == 5
    assert len(refused) == 3
    with ctx.db.transaction(write=False) as tx:
        held = sum(
            lease.gpus for lease in tx.all(select(Lease)) if lease.start < end and start < lease.end
        )
    assert held == 768 + 1500 <= 2304


def test_lease_transitions_are_audited(
    ctx: ServiceContext, clock: ManualClock, bank: Principal, operator: Principal
) -> None:
    start = clock.now() + timedelta(hours=2)
    end = start + timedelta(hours=10)
    lease = leases.request_lease(ctx, bank, leases.LeaseRequest(SITE, start, end, gpus=72))
    assert lease.state == LeaseState.REQUESTED
    assert lease.price == 72 * 10 * ctx.settings.price_per_gpu_hour

    with pytest.raises(Denied):  # a tenant cannot approve its own lease
        leases.decide(ctx, bank, lease.id, LeaseState.APPROVED, "")
    lease = leases.decide(ctx, operator, lease.id, LeaseState.APPROVED, "KYC passed")
    assert lease.state == LeaseState.SCHEDULED  # approved, then reserved in the calendar
    assert leases.tick(ctx, clock.now()) == 0  # not started yet

    clock.advance(2 * 3600)
    assert leases.tick(ctx, clock.now()) == 1
    assert leases.get_lease(ctx, bank, lease.id).state == LeaseState.ACTIVE
    leases.decide(ctx, operator, lease.id, LeaseState.SUSPENDED, "unpaid invoice")
    leases.decide(ctx, operator, lease.id, LeaseState.ACTIVE, "invoice paid")
    with pytest.raises(InvalidTransition):
        leases.decide(ctx, operator, lease.id, LeaseState.APPROVED, "again")

    clock.advance(10 * 3600)
    assert leases.tick(ctx, clock.now()) == 1
    final = leases.get_lease(ctx, bank, lease.id)
    assert final.state == LeaseState.ENDED
    assert final.state_reason == "lease window ended"

    records = _audit(ctx, lease.id)
    assert [r.action for r in records] == [
        "lease.request",
        "lease.approved",
        "lease.scheduled",
        "lease.active",
        "lease.suspended",
        "lease.active",
        "lease.ended",
    ]
    assert records[0].before is None
    assert records[0].after is not None
    assert records[0].after["state"] == "requested"
    for previous, record in itertools.pairwise(records):
        assert record.before is not None
        assert record.after is not None
        assert record.before["state"] == previous.after["state"]  # type: ignore[index]
        assert record.after["state"] == record.action.removeprefix("lease.")
        assert record.reason
        assert record.at.tzinfo is not None
    assert records[1].actor == operator.user_id
    assert records[2].actor == "scheduler"
    assert records[4].reason == "unpaid invoice"
    assert records[-1].at == clock.now()


def test_failed_transition_writes_no_audit(
    ctx: ServiceContext, operator: Principal, bank: Principal
) -> None:
    lease = next(iter(leases.list_leases(ctx, bank)))
    before = len(_audit(ctx, lease.id))
    with pytest.raises(InvalidTransition):
        leases.decide(ctx, operator, lease.id, LeaseState.REJECTED, "too late")
    assert len(_audit(ctx, lease.id)) == before
    assert leases.get_lease(ctx, bank, lease.id).state == LeaseState.ACTIVE


def test_lease_isolation(
    ctx: ServiceContext, bank: Principal, university: Principal, operator: Principal
) -> None:
    bank_leases = leases.list_leases(ctx, bank)
    assert [lease.gpus for lease in bank_leases] == [128]
    assert {lease.tenant_id for lease in bank_leases} == {bank.tenant_id}
    theirs = bank_leases[0].id
    with pytest.raises(NotFound):
        leases.get_lease(ctx, university, theirs)
    with pytest.raises(NotFound):
        leases.decide(ctx, university, theirs, LeaseState.CANCELLED, "not mine")
    assert leases.get_lease(ctx, bank, theirs).state == LeaseState.ACTIVE
    assert len(leases.list_leases(ctx, operator)) == 3


def test_overlapping_maintenance_of_one_node_counts_once(
    ctx: ServiceContext, clock: ManualClock, inftech: Principal, operator: Principal
) -> None:
    start = clock.now() + timedelta(days=1)
    end = start + timedelta(days=1)
    node = f"{SITE}-r05-n03"
    inventory.add_maintenance(ctx, operator, node, start, start + timedelta(hours=8), "firmware")
    inventory.add_maintenance(
        ctx, operator, node, start + timedelta(hours=4), start + timedelta(hours=12), "cooling"
    )
    # 1,536 free minus the node's 4 GPUs (not 8: it is one node, down once)
    lease = leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1532))
    assert lease.gpus == 1532
    with pytest.raises(InsufficientCapacity) as caught:
        leases.request_lease(ctx, inftech, leases.LeaseRequest(SITE, start, end, gpus=1))
    assert caught.value.details["free"] == 0
