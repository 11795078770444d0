"""A simulated week metered and rated by the live system's cores (issue 16's property).

The simulator drives the real scheduler core (leases, borrowing, reclaim with a grace
period, node failures and repairs, requeues); :class:`~gpulease.sim.metering.AllocationLog`
records every run's GPUs with the capacity the core attributed at its start, as the live
service writes ``gpu_allocations``. Then, whatever the workload:

* metered GPU-seconds equal allocated GPU-seconds: the usage records (cut at hours, the
  month end the week crosses and a price change) sum exactly to the allocations, and to
  the GPU-seconds of service the scheduler's own state counted (to rounding at the
  microsecond, once per interval end);
* no GPU is held by two runs at once (``meter`` refuses overlaps);
* a guaranteed GPU is on a lease of its own tenant, a lent one on another tenant's;
* every tenant's week rates into an invoice whose total is the sum of its lines and whose
  usage lines sum to the records they cite, every record of the tenant cited once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpulease.domain.clock import from_seconds, to_seconds
from gpulease.domain.models import JobSpec, LeaseGuarantee
from gpulease.domain.states import NodeState
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.metering import invoices
from gpulease.metering.periods import Granularity, Period
from gpulease.metering.plans import PlanSchedule, PlanVersion
from gpulease.metering.rating import LeaseTerm, LineKind, rate_period
from gpulease.metering.sources import RecordedAllocation, split_at_leases
from gpulease.metering.usage import CapacityClass, allocated_micros, meter
from gpulease.scheduler.engine import Scheduler, SchedulerConfig
from gpulease.scheduler.ordering import make_policy
from gpulease.sim.loop import Simulation
from gpulease.sim.metering import AllocationLog
from gpulease.sim.workload import NodeEvent, TraceJob, Workload

T0 = to_seconds(datetime(2026, 3, 28, tzinfo=UTC))  # the week crosses April 1st
DAY = 86400.0
WEEK = 7 * DAY
CLUSTER = build_cluster(ClusterSpec(racks=2, nodes_per_rack=4, gpus_per_node=4))  # 32 GPUs
LEASES = [
    LeaseGuarantee("lease-a", "a", 8, T0, T0 + 4 * DAY),  # ends mid-week, under running jobs
    LeaseGuarantee("lease-b", "b", 12, T0 + DAY, T0 + WEEK),
]
TENANTS = ("a", "b", "c")  # c has no lease: it only borrows


def _version(n: int, start: datetime, rate: str) -> PlanVersion:
    return PlanVersion(
        "std", n, start, "USD", Decimal("2"), Decimal(rate), Decimal("0.5"), Decimal("0.25")
    )


PLAN = PlanSchedule(
    [
        _version(1, datetime(2026, 1, 1, tzinfo=UTC), "3"),
        _version(2, from_seconds(T0 + 2.5 * DAY), "3.30"),  # a price change mid-week
    ]
)

jobs_strategy = st.lists(
    st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from([1, 2, 4, 8, 16]),
        st.floats(0, 5 * DAY, allow_nan=False),  # submitted
        st.floats(60, 2 * DAY, allow_nan=False),  # true duration
        st.booleans(),  # preemptible (not: on-demand on unleased capacity)
    ),
    min_size=8,
    max_size=40,
)
failures_strategy = st.lists(
    st.tuples(
        st.integers(0, len(CLUSTER.nodes) - 1),
        st.floats(0, WEEK, allow_nan=False),
        st.floats(60, DAY, allow_nan=False),
    ),
    max_size=6,
)


def _workload(
    jobs: list[tuple[str, int, float, float, bool]], failures: list[tuple[int, float, float]]
) -> Workload:
    trace = [
        TraceJob(
            JobSpec(id=f"j{i}", tenant=t, gpus=g, submit_time=T0 + at, preemptible=p), duration
        )
        for i, (t, g, at, duration, p) in enumerate(jobs)
    ]
    events: list[NodeEvent] = []
    down_until: dict[int, float] = {}
    for node, at, length in sorted(failures, key=lambda f: f[1]):
        if at < down_until.get(node, -1.0):
            continue  # a node fails again only once repaired
        events.append(NodeEvent(T0 + at, node, NodeState.DOWN))
        events.append(NodeEvent(T0 + at + length, node, NodeState.UP))
        down_until[node] = at + length
    return Workload("week", trace, list(LEASES), sorted(events, key=lambda e: e.time))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(jobs=jobs_strategy, failures=failures_strategy)
def test_metered_gpu_seconds_equal_allocated_over_a_week(
    jobs: list[tuple[str, int, float, float, bool]], failures: list[tuple[int, float, float]]
) -> None:
    log = AllocationLog()
    scheduler = Scheduler(make_policy("fifo"), SchedulerConfig(preemption_grace_s=30.0))
    sim = Simulation(
        CLUSTER, _workload(jobs, failures), scheduler, record_events=False, observe=log.observe
    )
    result = sim.run()
    allocations = log.allocations()
    assert all(a.end is not None for a in allocations)  # every run ended
    end = from_seconds(result.end_time)
    changes = PLAN.change_times()
    records = meter(allocations, end, Granularity.HOUR, changes)  # refuses any overlap
    metered = sum(r.micros for r in records)
    assert metered == allocated_micros(allocations, end)
    # the scheduler's own count of service: floats, each interval end rounded to 1 us
    attained = sum(r.attained for r in sim.state.jobs.values())
    assert abs(metered / 1e6 - attained) <= 2e-6 * len(allocations) + 1e-9 * attained
    for tenant in TENANTS:
        mine = sum(r.micros for r in records if r.tenant == tenant) / 1e6
        theirs = sum(r.attained for r in sim.state.jobs.values() if r.spec.tenant == tenant)
        assert abs(mine - theirs) <= 2e-6 * len(allocations) + 1e-9 * theirs
    holders = {x.lease_id: x.tenant for x in LEASES} | {"": ""}
    preemptible = {f"j{i}": p for i, (*_, p) in enumerate(jobs)}
    for a in allocations:
        if a.capacity is CapacityClass.GUARANTEED:
            assert holders[a.lease_id or ""] == a.tenant
        elif a.lender_lease_id is not None:
            assert holders[a.lender_lease_id] == a.lender_tenant != a.tenant
        if a.capacity is CapacityClass.ON_DEMAND:  # unleased, a job that asked not preempted
            assert a.lender_lease_id is None
            assert not preemptible[a.job_id]
    # rated as the live service does: cut at the leases' windows, then per tenant
    windows = {x.lease_id: (from_seconds(x.start), from_seconds(x.end)) for x in LEASES}
    recorded = [
        RecordedAllocation(
            a.id,
            a.tenant,
            a.job_id,
            a.gpu_serial,
            a.start,
            a.end,
            a.capacity,
            a.lease_id,
            a.lender_lease_id,
            a.lender_tenant,
        )
        for a in allocations
    ]
    period = Period(from_seconds(T0), max(end, from_seconds(T0 + WEEK)) + timedelta(seconds=1))
    cut = split_at_leases(recorded, windows)
    week = meter(cut, period.end, Granularity.MONTH, [*changes, period.start, period.end])
    assert sum(r.micros for r in week) == metered
    terms = [
        LeaseTerm(x.lease_id, x.tenant, x.gpus, from_seconds(x.start), from_seconds(x.end))
        for x in LEASES
    ]
    by_id = {r.id: r for r in week}
    for tenant in TENANTS:
        rated = rate_period(tenant, period, week, terms, dict.fromkeys(TENANTS, PLAN))
        invoice = invoices.issue(rated, f"inv-{tenant}", period.end)
        invoices.check(invoice, by_id)
        cited = [
            u
            for ln in invoice.lines
            if ln.kind in {LineKind.INCLUDED, LineKind.BORROWED, LineKind.ON_DEMAND}
            for u in ln.usage_ids
        ]
        assert sorted(cited) == sorted(r.id for r in week if r.tenant == tenant)
        assert invoice.total == sum((ln.amount for ln in invoice.lines), Decimal(0))
