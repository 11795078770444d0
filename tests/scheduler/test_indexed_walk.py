"""Differential property: the indexed walk decides exactly like the full walk.

Random states (mixed sizes and topology modes, several tenants, leases with guarantees,
priority classes, preempted jobs in their grace period, down and draining nodes) are
stepped several times with the decisions applied and new jobs arriving in between. At every
step a scheduler kept across steps (queue index, tiers from the kept indexes, lazy reasons)
and one that ranks and walks the whole queue (``queue_index=False``) must return
equal ``Decisions``: starts, notices, requeues, timeouts, earmarks, releases,
``guaranteed_waiting``, ``next_wakeup`` and every waiting job's reason (code and text).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

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
from gpulease.domain.states import NODE_TRANSITIONS, JobState
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.scheduler.engine import Decisions, Scheduler, SchedulerConfig, apply_decisions
from gpulease.scheduler.ordering import (
    Las,
    LasFairShare,
    LasGangRack,
    OrderingPolicy,
    make_policy,
)
from gpulease.scheduler.placement import WaitCode, never_fits
from gpulease.scheduler.state import SchedulerState
from hypothesis_profiles import examples

CheckState = Callable[[SchedulerState], None]
CheckDecisions = Callable[[SchedulerState, Decisions], None]
FAST_LIMITS = (60.0, 240.0, 960.0)
GREEDY = ("default", "las", "fairshare", "las-gang", "default-fast", "las-fast")
OTHERS = ("fifo", "easy")


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


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def specs(draw: st.DrawFn, state: SchedulerState, job_id: str, submit: float) -> JobSpec | None:
    cluster = state.cluster
    node = cluster.nodes[0].gpus
    rack = cluster.rack_gpus(0)
    gpus = draw(
        st.one_of(
            st.sampled_from([1, 1, 2, 4]),
            st.integers(1, node),
            st.integers(1, rack),
            st.integers(1, cluster.total_gpus),
        )
    )
    gpn = draw(st.sampled_from([None, None, *(d for d in divisors(gpus) if d <= node)]))
    segments = [s for s in divisors(gpus) if s <= rack and (gpn is None or s % gpn == 0)]
    segment = draw(st.one_of(st.none(), st.sampled_from(segments))) if segments else None
    spec = JobSpec(
        job_id,
        draw(st.sampled_from(["a", "b", "c", "spot"])),
        gpus,
        submit,
        gpus_per_node=gpn,
        priority=draw(st.sampled_from(list(PriorityClass))),
        walltime=draw(st.one_of(st.none(), st.integers(5, 400).map(float))),
        preemptible=draw(st.booleans()),
        topology=TopologyRequest(draw(st.sampled_from(list(TopologyMode))), segment),
    )
    return None if never_fits(spec, cluster) is not None else spec


def compare(indexed: Scheduler, walker: Scheduler, state: SchedulerState, now: float) -> Decisions:
    decisions = indexed.step(state, now)
    full = walker.step(state, now)
    assert decisions.starts == full.starts
    assert decisions.notices == full.notices
    assert decisions.requeues == full.requeues
    assert decisions.timeouts == full.timeouts
    assert decisions.earmarks == full.earmarks
    assert decisions.releases == full.releases
    assert decisions.guaranteed_waiting == full.guaranteed_waiting
    assert decisions.next_wakeup == full.next_wakeup
    if walker.config.explain:
        codes = {job_id: reason.code for job_id, reason in decisions.waiting.items()}
        assert codes == {job_id: reason.code for job_id, reason in full.waiting.items()}
        assert decisions.waiting == full.waiting
        assert len(decisions.waiting) == len(full.waiting)
        for job_id, reason in full.waiting.items():
            assert decisions.waiting[job_id] == reason
            assert decisions.waiting.get(job_id) == reason
    assert decisions == full
    return decisions


def run(
    data: st.DataObject,
    policy: str,
    check_state: CheckState,
    check_decisions: CheckDecisions,
    *,
    leases: bool,
    explain: bool,
) -> None:
    cluster = build_cluster(
        ClusterSpec(
            data.draw(st.integers(1, 4), "racks"),
            data.draw(st.integers(1, 4), "nodes"),
            data.draw(st.sampled_from([1, 2, 4, 8]), "gpus"),
        )
    )
    total = cluster.total_gpus
    granted: list[LeaseGuarantee] = []
    if leases:
        for tenant in ("a", "b"):
            if data.draw(st.booleans(), f"lease {tenant}"):
                start = float(data.draw(st.sampled_from([0, 0, 50])))
                end = start + float(data.draw(st.integers(20, 2000)))
                gpus = data.draw(st.integers(1, max(1, total // 2)))
                granted.append(LeaseGuarantee(f"lease-{tenant}", tenant, gpus, start, end))
    state = SchedulerState(cluster, leases=granted, keep_history=False)
    grace = float(data.draw(st.sampled_from([0, 5, 30]), "grace"))
    config = SchedulerConfig(preemption_grace_s=grace, explain=explain)
    indexed = Scheduler(policy_named(policy), config)
    # Kept across steps too (its running-jobs memo rounds LAS crossings as the indexed
    # one's does; test_properties compares used and fresh schedulers apart).
    walker = Scheduler(indexed.policy, replace(config, queue_index=False))
    now = 0.0
    count = 0
    for _ in range(data.draw(st.integers(2, 7), "steps")):
        for _ in range(data.draw(st.integers(0, 8), "arrivals")):
            spec = data.draw(specs(state, f"j{count}", now))
            count += 1
            if spec is not None:
                state.submit(spec)
        if data.draw(st.integers(0, 4)) == 0:  # a node goes down, drains or comes back
            node = data.draw(st.integers(0, len(cluster.nodes) - 1))
            target = data.draw(st.sampled_from(sorted(NODE_TRANSITIONS[state.node_state[node]])))
            for job_id in state.set_node_state(node, target, now):
                state.stop(job_id, now, JobState.QUEUED, "node down")
        if state.running and data.draw(st.booleans()):  # a job ends
            ended = data.draw(st.sampled_from(sorted(state.running)))
            state.stop(ended, now, JobState.SUCCEEDED)
        check_state(state)
        decisions: Decisions = compare(indexed, walker, state, now)
        check_decisions(state, decisions)
        if decisions.notices:
            event("preempted jobs in grace")
        if decisions.guaranteed_waiting:
            event("guaranteed jobs waiting")
        if any(r.code is WaitCode.PREEMPTING for r in decisions.waiting.values()):
            event("waits for preempted GPUs")
        apply_decisions(state, decisions)
        now += float(data.draw(st.sampled_from([1, 5, 30, 120, 900]), "dt"))


# make test: 20 runs a greedy policy, 10 for every policy and option; the nightly profile
# ten times as many (tests/hypothesis_profiles.py)
DIFFERENTIAL = settings(
    max_examples=examples(20),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("policy", GREEDY)
@DIFFERENTIAL
@given(data=st.data())
def test_indexed_walk_with_leases_and_reasons_decides_like_the_full_walk(
    policy: str,
    data: st.DataObject,
    check_state_fn: CheckState,
    check_decisions_fn: CheckDecisions,
) -> None:
    run(data, policy, check_state_fn, check_decisions_fn, leases=True, explain=True)


@pytest.mark.parametrize("policy", [*GREEDY, *OTHERS])
@settings(DIFFERENTIAL, max_examples=examples(10))
@given(data=st.data(), leases=st.booleans(), explain=st.booleans())
def test_every_policy_decides_like_the_full_walk(
    policy: str,
    data: st.DataObject,
    leases: bool,
    explain: bool,
    check_state_fn: CheckState,
    check_decisions_fn: CheckDecisions,
) -> None:
    run(data, policy, check_state_fn, check_decisions_fn, leases=leases, explain=explain)
