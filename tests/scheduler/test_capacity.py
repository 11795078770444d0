"""Whose capacity a start runs on (``scheduler.capacity``): literal cases, then the engine's
step attributing its starts as the drivers will record them."""

from __future__ import annotations

from gpulease.domain.models import JobSpec, LeaseGuarantee
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.metering.usage import CapacityClass
from gpulease.scheduler.engine import Scheduler, SchedulerConfig, apply_decisions
from gpulease.scheduler.lease_book import LeaseBook, Share, grant
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState

G, B = CapacityClass.GUARANTEED, CapacityClass.BORROWED
A_LEASE = LeaseGuarantee("lease-a", "a", 8, 0.0, 1000.0)
B_LEASE = LeaseGuarantee("lease-b", "b", 8, 0.0, 1000.0)
LEASES = [A_LEASE, B_LEASE]


def test_a_guaranteed_start_takes_its_own_lease() -> None:
    shares = grant("a", 4, borrowed=False, leases=LEASES, book=LeaseBook(), site_gpus=32)
    assert shares == (Share(4, G, lease_id="lease-a"),)


def test_a_borrowed_start_takes_unleased_capacity_first_then_idle_leases() -> None:
    # 32 GPUs, 16 leased: 16 unleased, of which 12 already borrowed
    book = LeaseBook({"lease-b": 2}, unleased=12)
    shares = grant("a", 12, borrowed=True, leases=LEASES, book=book, site_gpus=32)
    assert shares == (
        # the unleased room (4), and 2 more once nothing is idle anywhere (never its own)
        Share(6, B),
        Share(6, B, lender_lease_id="lease-b", lender_tenant="b"),  # b's idle 6
    )
    assert book == LeaseBook({"lease-b": 2}, unleased=12)  # not changed


def test_a_guaranteed_start_beyond_its_leases_room_stays_on_its_lease() -> None:
    """A reclaim whose borrowers are still in their grace period: the holder's start is on
    its own lease all the same (it paid for it)."""
    book = LeaseBook({"lease-a": 6})
    shares = grant("a", 4, borrowed=False, leases=LEASES, book=book, site_gpus=32)
    assert shares == (Share(4, G, lease_id="lease-a"),)


def test_book_takes_and_gives_back() -> None:
    book = LeaseBook()
    shares = (Share(2, G, lease_id="x"), Share(3, B), Share(1, B, "", "y", "t"))
    book.take(shares)
    assert book == LeaseBook({"x": 2, "y": 1}, unleased=3)
    book.give(shares)
    assert book == LeaseBook()


def _job(job_id: str, tenant: str, gpus: int, at: float = 0.0) -> JobSpec:
    return JobSpec(id=job_id, tenant=tenant, gpus=gpus, submit_time=at)


def test_one_step_never_counts_a_lease_s_room_twice() -> None:
    """Two borrowed starts of one step: the second sees the room the first took."""
    cluster = build_cluster(ClusterSpec(racks=1, nodes_per_rack=4, gpus_per_node=4))  # 16
    state = SchedulerState(cluster, leases=[LeaseGuarantee("lease-b", "b", 12, 0.0, 1e6)])
    for spec in (_job("j1", "a", 4), _job("j2", "a", 4), _job("j3", "a", 4)):
        state.submit(spec)
    scheduler = Scheduler(make_policy("fifo"), SchedulerConfig())
    decisions = scheduler.step(state, 0.0)
    got = {s.job_id: s.shares for s in decisions.starts}
    assert got == {
        "j1": (Share(4, B),),  # the 4 unleased GPUs
        "j2": (Share(4, B, lender_lease_id="lease-b", lender_tenant="b"),),
        "j3": (Share(4, B, lender_lease_id="lease-b", lender_tenant="b"),),
    }
    apply_decisions(state, decisions)
    assert state.book == LeaseBook({"lease-b": 8}, unleased=4)
    # b claims its lease: its start is guaranteed, on its lease
    state.submit(_job("k1", "b", 4, 1.0))
    state.stop("j1", 1.0, state.jobs["j1"].status.SUCCEEDED)
    decisions = scheduler.step(state, 1.0)
    assert [(s.job_id, s.shares) for s in decisions.starts] == [
        ("k1", (Share(4, G, lease_id="lease-b"),))
    ]
    apply_decisions(state, decisions)
    assert state.book == LeaseBook({"lease-b": 12}, unleased=0)
