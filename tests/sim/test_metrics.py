"""The utilisation bound: exact on small hand examples, never below a simulated schedule."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.domain.models import JobSpec, TopologyMode, TopologyRequest
from gpulease.inventory.topology import ClusterSpec
from gpulease.sim.metrics import fluid_utilization_bound
from gpulease.sim.runner import simulate
from gpulease.sim.synthetic import rack_scale_mix
from gpulease.sim.workload import TraceJob, Workload


def job(name: str, gpus: int, submit: float, duration: float) -> TraceJob:
    spec = JobSpec(name, "t", gpus, submit, topology=TopologyRequest(TopologyMode.NONE))
    return TraceJob(spec, duration)


def test_bound_is_capacity_limited_when_work_arrives_in_a_lump() -> None:
    # 8 GPUs; 80 GPU-s arrive at 0 with a job lasting 10 s; the window is [0, 20].
    workload = Workload("lump", [job("a", 8, 0.0, 10.0), job("b", 1, 20.0, 1.0)])
    assert fluid_utilization_bound(workload, 8) == pytest.approx(80.0 / (8 * 20.0))
    # On 4 GPUs the fluid server needs 20 s for it: busy all window long.
    assert fluid_utilization_bound(workload, 4) == pytest.approx(1.0)


def test_bound_counts_only_work_a_job_can_do_inside_the_window() -> None:
    # A 1-GPU job of 100 s submitted at 0, the last submission at 10: at most 10 GPU-s.
    workload = Workload("long", [job("a", 1, 0.0, 100.0), job("b", 1, 10.0, 1.0)])
    assert fluid_utilization_bound(workload, 4) == pytest.approx(10.0 / 40.0)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    load=st.sampled_from([0.5, 0.95, 1.5]),
    policy=st.sampled_from(["fifo", "easy"]),
)
def test_no_simulated_schedule_beats_the_bound(seed: int, load: float, policy: str) -> None:
    # No leases and a non-preemptive policy: busy time is exactly useful work (work lost to
    # a preemption is done twice and counts as busy twice, which the bound does not cover).
    spec = ClusterSpec(4, 4, 4)
    workload = replace(rack_scale_mix(spec, jobs=40, load=load, seed=seed), leases=[])
    figures = simulate(workload, spec, policy=policy, grace_s=30.0).figures
    assert figures["preemptions"] == 0
    bound = figures["utilization_bound_while_arriving"]
    assert bound == fluid_utilization_bound(workload, spec.total_gpus)
    assert figures["utilization_while_arriving"] <= bound + 1e-9
