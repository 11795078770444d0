"""Property tests: random small sites, job mixes, leases and node events, every policy.

Each run goes through the simulator with a checking scheduler that verifies, at every
step, that no GPU is held twice, that every running gang holds exactly its GPUs, that no
start lands on a node that is not UP or over-commits one, that ``required`` / segment /
``gpus_per_node`` requests are honoured, and that every waiting job has a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gpulease.domain.models import (
    JobSpec,
    LeaseGuarantee,
    PriorityClass,
    TopologyMode,
    TopologyRequest,
)
from gpulease.domain.states import NODE_TRANSITIONS, TERMINAL_JOB_STATES, NodeState
from gpulease.inventory.topology import Cluster, ClusterSpec, build_cluster
from gpulease.scheduler.engine import (
    Decisions,
    Scheduler,
    SchedulerConfig,
    apply_decisions,
)
from gpulease.scheduler.ordering import (
    POLICY_NAMES,
    Las,
    LasFairShare,
    LasGangRack,
    OrderingPolicy,
    make_policy,
)
from gpulease.scheduler.placement import never_fits
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.loop import SimResult, Simulation
from gpulease.sim.synthetic import rack_scale_mix
from gpulease.sim.workload import NodeEvent, TraceJob, Workload
from hypothesis_profiles import examples

CheckState = Callable[[SchedulerState], None]
CheckDecisions = Callable[[SchedulerState, Decisions], None]

MAX_STEPS = 5000  # a livelock shows up as a failure, not a hang
# make test: 20 scenarios a policy (10 for the comparisons, each example simulated two or
# three times); the nightly profile runs ten times as many (tests/hypothesis_profiles.py)
PROPERTY = settings(
    max_examples=examples(20),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SMALL_PROPERTY = settings(PROPERTY, max_examples=examples(10))


class CheckingScheduler(Scheduler):
    """A Scheduler that checks the state before and the decisions after every step (and,
    with ``compare_fresh``, that a fresh Scheduler decides the same on the same input)."""

    def __init__(
        self,
        policy: str,
        grace: float,
        check_state: CheckState,
        check_decisions: CheckDecisions,
        *,
        compare_fresh: bool = False,
        compare_full_walk: bool = False,
        explain: bool = True,
    ) -> None:
        super().__init__(
            policy_named(policy), SchedulerConfig(preemption_grace_s=grace, explain=explain)
        )
        self.check_state = check_state
        self.check_decisions = check_decisions
        self.compare_fresh = compare_fresh
        self.compare_full_walk = compare_full_walk
        self.steps = 0
        self.last_now = -1.0

    def step(self, state: SchedulerState, now: float) -> Decisions:
        self.steps += 1
        assert self.steps <= MAX_STEPS, "no progress: livelock?"
        assert now > self.last_now, "one step per instant, in time order"
        self.last_now = now
        self.check_state(state)
        before = fingerprint(state)
        decisions = super().step(state, now)
        assert fingerprint(state) == before, "step() must not modify the state"
        if self.compare_fresh:
            # Same state, same now, same decisions: whatever this scheduler remembers from
            # earlier steps, a fresh one decides exactly the same.
            assert Scheduler(self.policy, self.config).step(state, now) == decisions
        if self.compare_full_walk:
            # The queue index skips only visits that change nothing: ranking and walking
            # the whole queue decides exactly the same.
            full = Scheduler(self.policy, replace(self.config, queue_index=False))
            assert full.step(state, now) == decisions
        self.check_decisions(state, decisions)
        return decisions


# LAS with levels at 1, 4 and 16 GPU-minutes, so that short runs change level and preempt.
FAST_LIMITS = (60.0, 240.0, 960.0)
POLICIES = (*POLICY_NAMES, "las-fast", "default-fast")


def fast_gangs(limits: tuple[float, ...]) -> LasGangRack:
    """``default``'s levels made fast: las-gang's two, rack-scale gangs' three."""
    return LasGangRack(
        limits=limits[:2],
        exponents=(0.0, 0.5),
        rack_limits=limits,
        rack_exponents=(0.0, 0.5, 0.5),
    )


def policy_named(name: str) -> OrderingPolicy:
    if name == "las-fast":
        return Las(limits=FAST_LIMITS, name=name)
    if name == "default-fast":
        return LasFairShare(las=fast_gangs(FAST_LIMITS), name=name)
    return make_policy(name)


def fingerprint(state: SchedulerState) -> tuple[object, ...]:
    return (
        list(state.node_free),
        list(state.node_free_mask),
        list(state.node_state),
        list(state.queued),
        [(r.id, r.allocation, r.run_start, r.preempt_at) for r in state.running.values()],
    )


# ---------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Scenario:
    cluster: Cluster
    workload: Workload
    policy: str
    grace: float


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    return build_cluster(
        ClusterSpec(draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 8)))
    )


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def job_specs(
    draw: st.DrawFn,
    cluster: Cluster,
    job_id: str,
    tenants: list[str],
    *,
    uniform_priority: bool,
    power_of_two: bool = False,
) -> TraceJob | None:
    node = cluster.nodes[0].gpus
    rack = cluster.rack_gpus(0)
    if power_of_two:
        gpus = draw(st.sampled_from([2**k for k in range(8) if 2**k <= cluster.total_gpus]))
    else:
        gpus = draw(
            st.one_of(
                st.integers(1, node), st.integers(1, rack), st.integers(1, cluster.total_gpus)
            )
        )
    gpn = draw(st.sampled_from([None, *(d for d in divisors(gpus) if d <= node)]))
    segments = [s for s in divisors(gpus) if s <= rack and (gpn is None or s % gpn == 0)]
    segment = draw(st.one_of(st.none(), st.sampled_from(segments))) if segments else None
    priority = (
        PriorityClass.NORMAL if uniform_priority else draw(st.sampled_from(list(PriorityClass)))
    )
    spec = JobSpec(
        job_id,
        draw(st.sampled_from(tenants)),
        gpus,
        float(draw(st.integers(0, 600))),
        gpus_per_node=gpn,
        priority=priority,
        walltime=draw(st.one_of(st.none(), st.integers(1, 1500).map(float))),
        preemptible=draw(st.booleans()),
        requeueable=draw(st.booleans()),
        checkpoint_interval=draw(st.one_of(st.none(), st.integers(1, 300).map(float))),
        topology=TopologyRequest(draw(st.sampled_from(list(TopologyMode))), segment),
    )
    if never_fits(spec, cluster) is not None:
        return None
    return TraceJob(spec, float(draw(st.integers(1, 1200))))


@st.composite
def leases_for(draw: st.DrawFn, cluster: Cluster, tenants: list[str]) -> list[LeaseGuarantee]:
    leases: list[LeaseGuarantee] = []
    for tenant in tenants:
        if draw(st.booleans()):
            start = float(draw(st.sampled_from([0, 0, 300])))
            leases.append(
                LeaseGuarantee(
                    f"lease-{tenant}",
                    tenant,
                    draw(st.integers(1, max(1, cluster.total_gpus // 2))),
                    start,
                    start + float(draw(st.integers(1, 3000))),
                )
            )
    return leases


@st.composite
def node_events(draw: st.DrawFn, cluster: Cluster) -> list[NodeEvent]:
    """Random valid node transitions; every node is UP again at the end."""
    raw = draw(
        st.lists(
            st.tuples(
                st.integers(0, 1500), st.integers(0, len(cluster.nodes) - 1), st.integers(0, 1)
            ),
            max_size=5,
        )
    )
    current = [NodeState.UP] * len(cluster.nodes)
    events: list[NodeEvent] = []
    for time, node, choice in sorted(raw, key=lambda e: e[0]):
        targets = sorted(NODE_TRANSITIONS[current[node]])
        target = targets[choice % len(targets)]
        current[node] = target
        events.append(NodeEvent(float(time), node, target))
    for node, state in enumerate(current):
        if state is not NodeState.UP:
            events.append(NodeEvent(1501.0, node, NodeState.UP))
    return events


@st.composite
def scenarios(draw: st.DrawFn, policy: str, *, power_of_two: bool = False) -> Scenario:
    cluster = draw(clusters())
    uniform = False  # every policy, EASY included, with priorities and leases
    tenants = ["a", "b", "spot"]
    leases = [] if uniform else draw(leases_for(cluster, ["a", "b"]))
    count = draw(st.integers(1, 14))
    jobs = [
        draw(
            job_specs(
                cluster, f"j{n}", tenants, uniform_priority=uniform, power_of_two=power_of_two
            )
        )
        for n in range(count)
    ]
    workload = Workload(
        "property",
        [j for j in jobs if j is not None],
        leases=leases,
        node_events=draw(node_events(cluster)),
    )
    grace = float(draw(st.sampled_from([0, 0, 5, 30])))
    return Scenario(cluster, workload, policy, grace)


def simulate(
    scenario: Scenario,
    check_state: CheckState,
    check: CheckDecisions,
    *,
    compare_fresh: bool = False,
    compare_full_walk: bool = False,
    explain: bool = True,
) -> Simulation:
    scheduler = CheckingScheduler(
        scenario.policy,
        scenario.grace,
        check_state,
        check,
        compare_fresh=compare_fresh,
        compare_full_walk=compare_full_walk,
        explain=explain,
    )
    sim = Simulation(scenario.cluster, scenario.workload, scheduler)
    sim.run()
    check_state(sim.state)
    return sim


# ------------------------------------------------------------------------------ properties


def describe(scenario: Scenario, sim: Simulation) -> None:
    """Hypothesis statistics (--hypothesis-show-statistics): what the runs exercised."""
    kinds = {what for _, what, _ in sim.events}
    event(f"grace={scenario.grace:g}")
    for kind in ("notice", "preempt", "timeout", "requeue-failure", "fail", "node-draining"):
        if kind in kinds:
            event(f"has {kind}")


@pytest.mark.parametrize("policy", POLICIES)
@PROPERTY
@given(data=st.data())
def test_invariants_hold_at_every_step_and_every_job_finishes(
    policy: str, data: st.DataObject, check_state_fn: CheckState, check_decisions_fn: CheckDecisions
) -> None:
    scenario = data.draw(scenarios(policy))
    sim = simulate(scenario, check_state_fn, check_decisions_fn)
    describe(scenario, sim)
    # No node stays down: nothing deadlocks, every job ends.
    assert sim.state.queued == {}
    assert sim.state.running == {}
    for outcome in sim.outcomes.values():
        assert outcome.status in TERMINAL_JOB_STATES
        assert outcome.end is not None
    assert set(sim.outcomes) == {j.spec.id for j in scenario.workload.jobs}
    # Starts are logged once per run; racks spanned obey `required`.
    for job in scenario.workload.jobs:
        outcome = sim.outcomes[job.spec.id]
        record = sim.state.jobs[job.spec.id]
        assert len(outcome.racks) == record.starts
        if job.spec.topology.mode is TopologyMode.REQUIRED and job.spec.topology.segment is None:
            assert set(outcome.racks) <= {1}
        if outcome.start is not None:
            assert outcome.start >= job.spec.submit_time


@pytest.mark.parametrize("policy", POLICIES)
@SMALL_PROPERTY
@given(data=st.data())
def test_a_used_scheduler_decides_like_a_fresh_one(
    policy: str, data: st.DataObject, check_state_fn: CheckState, check_decisions_fn: CheckDecisions
) -> None:
    """The engine's memo across steps never changes a decision.

    Gangs are powers of two so that LAS level crossings are exact in binary floating
    point: with other sizes a crossing can land a rounding error below a limit, the
    bug shown by test_engine.py::test_a_used_scheduler_decides_like_a_fresh_one_at_a_las_...
    """
    scenario = data.draw(scenarios(policy, power_of_two=True))
    simulate(scenario, check_state_fn, check_decisions_fn, compare_fresh=True)


@pytest.mark.parametrize("policy", POLICIES)
@SMALL_PROPERTY
@given(data=st.data())
def test_the_queue_index_decides_like_the_full_walk(
    policy: str, data: st.DataObject, check_state_fn: CheckState, check_decisions_fn: CheckDecisions
) -> None:
    """The engine walks the queue through its kept index (tiers from its kept indexes when
    leases exist, reasons resolved per run of jobs) and skips jobs whose shape is hopeless;
    a used one, a fresh one and one that ranks the whole queue every step decide exactly
    the same, reasons included (leases off half the time, reasons on half the time)."""
    scenario = data.draw(scenarios(policy, power_of_two=True))
    if data.draw(st.booleans()):
        scenario = replace(scenario, workload=replace(scenario.workload, leases=[]))
    simulate(
        scenario,
        check_state_fn,
        check_decisions_fn,
        compare_fresh=True,
        compare_full_walk=True,
        explain=data.draw(st.booleans()),
    )


@pytest.mark.parametrize("policy", POLICIES)
@SMALL_PROPERTY
@given(data=st.data())
def test_same_workload_same_event_log(policy: str, data: st.DataObject) -> None:
    scenario = data.draw(scenarios(policy))

    def run() -> SimResult:
        # A fresh scheduler each time: nothing may carry over between runs but the inputs.
        scheduler = Scheduler(
            policy_named(scenario.policy), SchedulerConfig(preemption_grace_s=scenario.grace)
        )
        return Simulation(scenario.cluster, scenario.workload, scheduler).run()

    first, second = run(), run()
    assert first.events == second.events
    assert first.timeline == second.timeline
    assert first.outcomes == second.outcomes
    assert first.steps == second.steps


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_same_seed_same_event_log_on_the_synthetic_mix(policy: str) -> None:
    spec = ClusterSpec(4, 4, 4)
    cluster = build_cluster(spec)

    def run() -> SimResult:
        workload = rack_scale_mix(spec, jobs=60, load=1.2, seed=7, walltime_estimates=True)
        scheduler = Scheduler(make_policy(policy), SchedulerConfig(preemption_grace_s=30.0))
        return Simulation(cluster, workload, scheduler).run()

    first, second = run(), run()
    assert len(first.events) >= 3 * 60  # submit, start and end of every job at least
    assert first.events == second.events
    assert first.outcomes == second.outcomes


# ---------------------------------------------------------------------------------- reclaim


@dataclass(frozen=True)
class ReclaimCase:
    cluster: Cluster
    borrowers: list[TraceJob]
    owner_jobs: list[TraceJob]
    guarantee: int
    policy: str


@st.composite
def reclaim_cases(draw: st.DrawFn) -> ReclaimCase:
    """Borrowers fill the site at t=0 (``spot`` has no lease; ``other`` leases what the
    owner does not); ``owner`` then asks for at most its guarantee, unconstrained."""
    cluster = draw(clusters())
    total = cluster.total_gpus
    guarantee = draw(st.integers(1, total))
    borrowers: list[TraceJob] = []
    for n in range(draw(st.integers(1, 8))):
        spec = JobSpec(
            f"s{n}",
            draw(st.sampled_from(["spot", "other"])),
            draw(st.integers(1, total)),
            0.0,
            priority=draw(st.sampled_from(list(PriorityClass))),
            preemptible=draw(st.booleans()),
            walltime=draw(st.one_of(st.none(), st.integers(20, 300).map(float))),
            topology=TopologyRequest(draw(st.sampled_from(list(TopologyMode)))),
        )
        if never_fits(spec, cluster) is None:
            borrowers.append(TraceJob(spec, float(draw(st.integers(50, 500)))))
    owner_jobs: list[TraceJob] = []
    left = guarantee
    n = 0
    while n == 0 or (left and draw(st.booleans())):
        gpus = draw(st.integers(1, left))
        spec = JobSpec(
            f"o{n}",
            "owner",
            gpus,
            float(draw(st.integers(10, 100))),
            priority=draw(st.sampled_from(list(PriorityClass))),
            preemptible=draw(st.booleans()),
            topology=TopologyRequest(TopologyMode.NONE),
        )
        owner_jobs.append(TraceJob(spec, float(draw(st.integers(1, 500)))))
        left -= gpus
        n += 1
    policy = draw(st.sampled_from(POLICIES))
    return ReclaimCase(cluster, borrowers, owner_jobs, guarantee, policy)


def reclaim_leases(case: ReclaimCase) -> list[LeaseGuarantee]:
    # `other` holds a lease for what the owner does not, so it has guaranteed work too.
    leases = [LeaseGuarantee("lease-owner", "owner", case.guarantee, 0.0, 1e6)]
    if case.cluster.total_gpus > case.guarantee:
        rest = case.cluster.total_gpus - case.guarantee
        leases.append(LeaseGuarantee("lease-other", "other", rest, 0.0, 1e6))
    return leases


@PROPERTY
@given(case=reclaim_cases(), grace=st.sampled_from([0.0, 30.0]))
def test_lease_holder_starts_within_the_grace_in_simulation(
    case: ReclaimCase,
    grace: float,
    check_state_fn: CheckState,
    check_decisions_fn: CheckDecisions,
) -> None:
    workload = Workload("reclaim", case.borrowers + case.owner_jobs, leases=reclaim_leases(case))
    scenario = Scenario(case.cluster, workload, case.policy, grace)
    sim = simulate(scenario, check_state_fn, check_decisions_fn)
    # The tenant's demand is whole once its last job arrived; a later job of a higher class
    # may take GPUs being released for an earlier one, which then gets its own victims: so
    # every job runs at the latest one grace period after the tenant's last submission.
    last = max(job.spec.submit_time for job in case.owner_jobs)
    for job in case.owner_jobs:
        outcome = sim.outcomes[job.spec.id]
        assert outcome.start is not None
        assert outcome.start <= last + grace, job.spec.id
        assert outcome.guarantee_wait is not None
        assert outcome.guarantee_wait <= last - job.spec.submit_time + grace
        # Claims of one class are served oldest first, each on the earliest releases that
        # let it start: unless a later job of a higher class came, the grace is the wait.
        spec = job.spec
        if not any(
            o.spec.submit_time > spec.submit_time and o.spec.priority > spec.priority
            for o in case.owner_jobs
        ):
            assert outcome.guarantee_wait <= grace, spec.id


@PROPERTY
@given(case=reclaim_cases(), grace=st.sampled_from([0.0, 1.0, 30.0]))
def test_lease_holder_starts_within_one_step_plus_grace(
    case: ReclaimCase,
    grace: float,
    check_state_fn: CheckState,
    check_decisions_fn: CheckDecisions,
) -> None:
    """Core-level: step when borrowers arrive, when the owner's demand arrives, and when
    the grace ends; then every owner job runs, on guaranteed (not borrowed) capacity."""
    state = SchedulerState(case.cluster, leases=reclaim_leases(case))
    scheduler = CheckingScheduler(case.policy, grace, check_state_fn, check_decisions_fn)

    def step(now: float) -> Decisions:
        decisions = scheduler.step(state, now)
        apply_decisions(state, decisions)
        return decisions

    for job in case.borrowers:
        state.submit(job.spec)
    step(0.0)
    submit = 150.0  # every owner job at once, while borrowers still run
    for job in case.owner_jobs:
        state.submit(replace(job.spec, submit_time=submit))
    first = step(submit)
    event(f"reclaim: {len(first.requeues) + len(first.notices)} victims")
    if grace > 0:
        step(submit + grace)
    for job in case.owner_jobs:
        record = state.jobs[job.spec.id]
        assert job.spec.id in state.running, (job.spec.id, record.history)
        assert record.borrowed is False
        assert record.first_start is not None
        assert record.first_start <= submit + grace
    check_state_fn(state)


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_a_lone_job_on_an_empty_site_starts_at_submit(policy: str) -> None:
    cluster = build_cluster(ClusterSpec(2, 2, 4))
    job = TraceJob(JobSpec("j", "t", 16, 5.0, topology=TopologyRequest(TopologyMode.NONE)), 9.0)
    result = Simulation(
        cluster, Workload("one", [job]), Scheduler(make_policy(policy), SchedulerConfig())
    ).run()
    assert result.events == [(5.0, "submit", "j"), (5.0, "start", "j"), (14.0, "end", "j")]
