"""The engine's memos kept across steps never go stale.

Two memos added for the large site: the GPUs of jobs in their grace period
(``releases.GraceReleases``, what jobs waiting for preempted GPUs plan on) and each leased
tenant's first-fit into its guarantee (``tiers.TierMemo``). Random step sequences stress
what should invalidate them: preemption notices (grace periods begin, the engine's or a
driver's), victims that finish
or are cancelled inside their grace, grace periods ending, arrivals ranked above the waiting
jobs, cancels, node failures, drains and repairs, leases that start, end or are added.

At every step a scheduler kept across the steps must decide exactly like a fresh one built
for that step alone (plans, earmarks and reasons included), and the kept memos must equal
the same memos built from scratch on the same state.
"""

from __future__ import annotations

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
from gpulease.scheduler.quota import guarantees_at
from gpulease.scheduler.releases import GraceReleases
from gpulease.scheduler.state import SchedulerState
from gpulease.scheduler.tiers import guaranteed
from hypothesis_profiles import examples

FAST = (30.0, 120.0, 480.0)  # LAS levels crossed within a few steps: running jobs preempted


def fast_gangs(limits: tuple[float, ...]) -> LasGangRack:
    """``default``'s levels made fast: las-gang's two, rack-scale gangs' three."""
    return LasGangRack(
        limits=limits[:2],
        exponents=(0.0, 0.5),
        rack_limits=limits,
        rack_exponents=(0.0, 0.5, 0.5),
    )


def policy_named(name: str) -> OrderingPolicy:
    if name == "default-fast":
        return LasFairShare(las=fast_gangs(FAST), name=name)
    if name == "las-fast":
        return Las(limits=FAST, name=name)
    return make_policy(name)


def grace_memo(scheduler: Scheduler) -> GraceReleases:
    return scheduler._grace


def rebuilt_grace(state: SchedulerState, now: float) -> GraceReleases:
    """The grace-period memo built from scratch: every running job in its grace period."""
    memo = GraceReleases()
    kept = memo.kept(state)
    leaving = {
        job_id: record.preempt_at
        for job_id, record in state.running.items()
        if record.preempt_at is not None
        and record.preempt_at > now
        and (record.spec.walltime is None or record.run_time_at(now) < record.spec.walltime)
    }
    assert not kept
    memo.sync(state, leaving, list(leaving))
    return memo


def same_memo(kept: GraceReleases, fresh: GraceReleases) -> None:
    assert kept._jobs == fresh._jobs
    assert kept.parts == fresh.parts
    assert kept.count_at == fresh.count_at
    assert kept.nodes_at == fresh.nodes_at
    assert kept.soon is not None
    assert fresh.soon is not None
    assert kept.soon.node_free == fresh.soon.node_free
    assert kept.soon.rack_free == fresh.soon.rack_free
    assert kept.soon.total == fresh.soon.total


def tiers_of(scheduler: Scheduler, state: SchedulerState, now: float, memo: bool) -> object:
    """``guaranteed`` on the scheduler's indexes, with its kept memo or without one."""
    queue = scheduler._queue
    assert queue is not None
    leaving = {j for j, r in state.running.items() if r.preempt_at is not None}
    tiers = guaranteed(
        queue,
        scheduler._index,
        state,
        guarantees_at(state.leases, now),
        leaving,
        now,
        scheduler._tiers if memo else None,
    )
    return [(x.key, x.coarse, x.record.id) for x in tiers.queued], sorted(tiers.running)


@st.composite
def spec_of(draw: st.DrawFn, state: SchedulerState, job_id: str, now: float) -> JobSpec | None:
    cluster = state.cluster
    gpus = draw(st.sampled_from([1, 1, 2, 4, cluster.nodes[0].gpus, cluster.rack_gpus(0)]))
    segment = draw(st.sampled_from([None, None, gpus]))  # a rack-scale gang of one segment
    spec = JobSpec(
        job_id,
        draw(st.sampled_from(["a", "b", "c"])),
        gpus,
        now,
        priority=draw(st.sampled_from(list(PriorityClass))),
        preemptible=draw(st.booleans()),
        topology=TopologyRequest(
            TopologyMode.REQUIRED if segment else TopologyMode.PREFERRED, segment
        ),
    )
    return None if never_fits(spec, cluster) is not None else spec


MEMO = settings(
    max_examples=examples(20),  # the nightly profile: 200 (tests/hypothesis_profiles.py)
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("policy", ["default-fast", "las-fast", "default", "fairshare"])
@MEMO
@given(data=st.data())
def test_a_kept_scheduler_plans_like_a_fresh_one_through_grace_periods(
    policy: str, data: st.DataObject
) -> None:
    cluster = build_cluster(
        ClusterSpec(data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), 4)
    )
    total = cluster.total_gpus
    leases = [
        LeaseGuarantee("lease-a", "a", data.draw(st.integers(1, max(1, total // 2))), 0.0, 1e9),
        LeaseGuarantee("lease-b", "b", data.draw(st.integers(1, max(1, total // 3))), 20.0, 200.0),
    ]
    state = SchedulerState(cluster, leases=leases, keep_history=False)
    config = SchedulerConfig(preemption_grace_s=float(data.draw(st.sampled_from([5, 30]))))
    kept = Scheduler(policy_named(policy), config)
    now, count = 0.0, 0
    for _ in range(data.draw(st.integers(3, 10), "steps")):
        for _ in range(data.draw(st.integers(0, 5), "arrivals")):
            spec = data.draw(spec_of(state, f"j{count}", now))
            count += 1
            if spec is not None:
                state.submit(spec)
        action = data.draw(st.sampled_from(["none", "end", "cancel", "node", "lease", "notice"]))
        if action == "end" and state.running:  # a run ends, perhaps inside its grace
            ended = data.draw(st.sampled_from(sorted(state.running)))
            state.stop(ended, now, JobState.SUCCEEDED)
        elif action == "cancel" and state.queued:
            state.stop(data.draw(st.sampled_from(sorted(state.queued))), now, JobState.CANCELLED)
        elif action == "node":
            node = data.draw(st.integers(0, len(cluster.nodes) - 1))
            target = data.draw(st.sampled_from(sorted(NODE_TRANSITIONS[state.node_state[node]])))
            for job_id in state.set_node_state(node, target, now):
                state.stop(job_id, now, JobState.QUEUED, "node down")
        elif action == "notice" and state.running:  # a driver preempts a job (an operator)
            victim = data.draw(st.sampled_from(sorted(state.running)))
            if state.running[victim].preempt_at is None:
                state.begin_preemption(victim, now + config.preemption_grace_s, "operator")
        elif action == "lease":
            gpus = data.draw(st.integers(1, total))
            state.add_lease(LeaseGuarantee(f"lease-c{count}", "c", gpus, now, now + 60.0))
        decisions: Decisions = kept.step(state, now)
        fresh = Scheduler(kept.policy, config).step(state, now)
        assert decisions == fresh
        assert decisions.earmarks == fresh.earmarks
        assert dict(decisions.waiting.items()) == dict(fresh.waiting.items())
        same_memo(grace_memo(kept), rebuilt_grace(state, now))
        if kept._queue is not None and getattr(kept.policy, "coarse_ordered", False):
            assert tiers_of(kept, state, now, memo=True) == tiers_of(kept, state, now, False)
        if state.running and any(r.preempt_at for r in state.running.values()):
            event("jobs in their grace period")
        if any(r.code is WaitCode.PREEMPTING for r in decisions.waiting.values()):
            event("plans on released GPUs")
        apply_decisions(state, decisions)
        now += float(data.draw(st.sampled_from([1, 2, 5, 30, 120]), "dt"))
