"""Builders and invariant checks shared by the scheduling-core tests.

Fixtures return plain functions (session scope, so hypothesis tests may use them too):

* ``make_state("1x2x4", leases=[...], jobs=[...], running={...})``: a SchedulerState;
* ``job("a", 4, tenant=..., submit=..., **JobSpec fields)``: a JobSpec;
* ``lease("acme", 8)``: a LeaseGuarantee active from 0 to 1e9;
* ``scheduler("las", grace=30)``: a Scheduler;
* ``run_step(scheduler, state, now)``: step, check, apply; returns the Decisions;
* ``check_state_fn(state)`` / ``check_decisions_fn(state, decisions)``: the core's
  invariants (``check_state`` / ``check_decisions`` below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from gpulease.domain.models import JobSpec, LeaseGuarantee, TopologyMode, TopologyRequest
from gpulease.domain.states import JobState, NodeState
from gpulease.inventory.topology import build_cluster, parse_cluster_spec
from gpulease.scheduler.engine import Decisions, Scheduler, SchedulerConfig, apply_decisions
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.placement import Placement
from gpulease.scheduler.state import SchedulerState

TOPOLOGIES: dict[str, TopologyMode] = {m.value: m for m in TopologyMode}


def build_job(
    job_id: str,
    gpus: int,
    *,
    tenant: str = "t",
    submit: float = 0.0,
    topology: str | TopologyMode = TopologyMode.PREFERRED,
    segment: int | None = None,
    **fields: Any,
) -> JobSpec:
    mode = TOPOLOGIES[topology] if isinstance(topology, str) else topology
    return JobSpec(job_id, tenant, gpus, submit, topology=TopologyRequest(mode, segment), **fields)


def build_lease(
    tenant: str, gpus: int, start: float = 0.0, end: float = 1e9, lease_id: str | None = None
) -> LeaseGuarantee:
    return LeaseGuarantee(lease_id or f"lease-{tenant}", tenant, gpus, start, end)


def build_state(
    spec_text: str,
    *,
    leases: Iterable[LeaseGuarantee] = (),
    jobs: Iterable[JobSpec] = (),
    running: Mapping[str, Placement] | None = None,
    started_at: float = 0.0,
) -> SchedulerState:
    """A state on ``spec_text``; ``jobs`` are submitted, those in ``running`` started there.

    Running jobs start at ``started_at`` and are marked borrowed when their tenant has no
    lease (the flag matters only for reporting).
    """
    state = SchedulerState(build_cluster(parse_cluster_spec(spec_text)), leases=leases)
    leased = {lease.tenant for lease in state.leases}
    for spec in jobs:
        state.submit(spec)
    for job_id, placement in (running or {}).items():
        tenant = state.jobs[job_id].spec.tenant
        state.start(job_id, placement, started_at, borrowed=tenant not in leased)
    return state


def build_scheduler(policy: str = "fifo", *, grace: float = 0.0, explain: bool = True) -> Scheduler:
    return Scheduler(
        make_policy(policy), SchedulerConfig(preemption_grace_s=grace, explain=explain)
    )


def check_state(state: SchedulerState) -> None:
    """No GPU held twice; masks, counts and the free map agree with the running jobs."""
    cluster = state.cluster
    held: dict[tuple[int, int], str] = {}
    for job_id, record in state.running.items():
        assert record.status is JobState.RUNNING
        assert record.run_start is not None
        assert sum(len(gpus) for _, gpus in record.allocation) == record.spec.gpus, job_id
        nodes = [node for node, _ in record.allocation]
        assert len(nodes) == len(set(nodes)), job_id
        for node, gpus in record.allocation:
            assert gpus, job_id
            for gpu in gpus:
                assert 0 <= gpu < cluster.nodes[node].gpus
                assert (node, gpu) not in held, (
                    f"GPU {node}/{gpu}: {held.get((node, gpu))}, {job_id}"
                )
                held[(node, gpu)] = job_id
    for record in state.queued.values():
        assert record.status is JobState.QUEUED
        assert record.allocation == ()
        assert record.run_start is None
        assert record.preempt_at is None
    assert state.queued.keys().isdisjoint(state.running.keys())
    for job_id, record in state.jobs.items():
        in_queue, in_run = job_id in state.queued, job_id in state.running
        assert in_queue == (record.status is JobState.QUEUED)
        assert in_run == (record.status is JobState.RUNNING)
    for hw in cluster.nodes:
        full = (1 << hw.gpus) - 1
        busy = sum(1 << gpu for (n, gpu) in held if n == hw.index)
        assert state.node_free_mask[hw.index] == full & ~busy, hw.id
        assert state.node_free[hw.index] == hw.gpus - bin(busy).count("1"), hw.id
    free = state.free_map()
    up = [s is NodeState.UP for s in state.node_state]
    expected = [f if u else 0 for f, u in zip(state.node_free, up, strict=True)]
    assert free.node_free == expected
    assert free.rack_free == [sum(expected[n] for n in rack.nodes) for rack in cluster.racks]
    assert free.total == sum(expected)


def check_decisions(state: SchedulerState, decisions: Decisions) -> None:
    """Decisions of one step, before they are applied to ``state``.

    Each start: a queued job, exactly ``spec.gpus`` GPUs, only on UP nodes, within the
    GPUs free once this step's timeouts and requeues release theirs, whole nodes of
    ``gpus_per_node``, one rack under ``required``, whole segments per rack.
    """
    cluster = state.cluster
    timeouts = set(decisions.timeouts)
    requeues = {p.job_id for p in decisions.requeues}
    notices = {p.job_id for p in decisions.notices}
    assert len(timeouts) == len(decisions.timeouts)
    assert len(requeues) == len(decisions.requeues)
    assert len(notices) == len(decisions.notices)
    assert timeouts <= state.running.keys()
    assert requeues <= state.running.keys()
    assert notices <= state.running.keys()
    assert timeouts.isdisjoint(requeues)
    assert (timeouts | requeues).isdisjoint(notices)
    for job_id in notices:
        assert state.running[job_id].preempt_at is None, f"{job_id} noticed twice"
    for preempt in decisions.requeues:
        assert preempt.at == decisions.now
    for preempt in decisions.notices:
        assert preempt.at > decisions.now
    available = list(state.node_free)
    for job_id in timeouts | requeues:
        for node, gpus in state.running[job_id].allocation:
            available[node] += len(gpus)
    started: set[str] = set()
    for start in decisions.starts:
        assert start.job_id in state.queued, f"{start.job_id} is not queued"
        assert start.job_id not in started
        started.add(start.job_id)
        spec = state.jobs[start.job_id].spec
        placement = start.placement
        assert list(placement) == sorted(placement)
        assert sum(count for _, count in placement) == spec.gpus
        for node, count in placement:
            assert count >= 1
            assert state.node_state[node] is NodeState.UP, f"{start.job_id} on {node}"
            available[node] -= count
            assert available[node] >= 0, f"node {node} over-committed by {start.job_id}"
        if spec.gpus_per_node is not None:
            assert {count for _, count in placement} == {spec.gpus_per_node}
        per_rack: dict[int, int] = {}
        for node, count in placement:
            rack = cluster.nodes[node].rack
            per_rack[rack] = per_rack.get(rack, 0) + count
        segment = spec.topology.segment
        if segment is not None:
            assert all(gpus % segment == 0 for gpus in per_rack.values()), start
        elif spec.topology.mode is TopologyMode.REQUIRED:
            assert len(per_rack) == 1, start
    if decisions.waiting:
        assert decisions.waiting.keys() == state.queued.keys() - started


def step_and_apply(scheduler: Scheduler, state: SchedulerState, now: float) -> Decisions:
    check_state(state)
    decisions = scheduler.step(state, now)
    check_decisions(state, decisions)
    apply_decisions(state, decisions)
    check_state(state)
    return decisions


@pytest.fixture(scope="session")
def job() -> Callable[..., JobSpec]:
    return build_job


@pytest.fixture(scope="session")
def lease() -> Callable[..., LeaseGuarantee]:
    return build_lease


@pytest.fixture(scope="session")
def make_state() -> Callable[..., SchedulerState]:
    return build_state


@pytest.fixture(scope="session")
def scheduler() -> Callable[..., Scheduler]:
    return build_scheduler


@pytest.fixture(scope="session")
def run_step() -> Callable[[Scheduler, SchedulerState, float], Decisions]:
    return step_and_apply


@pytest.fixture(scope="session")
def check_state_fn() -> Callable[[SchedulerState], None]:
    return check_state


@pytest.fixture(scope="session")
def check_decisions_fn() -> Callable[[SchedulerState, Decisions], None]:
    return check_decisions
