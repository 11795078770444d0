"""The fewest racks a job could span on the free GPUs: literal cases, the placer's promise
(equal without kept blocks, never fewer with them), and whole runs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.domain.models import JobSpec, PriorityClass, TopologyMode, TopologyRequest
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.scheduler.engine import Scheduler, SchedulerConfig
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.placement import FreeMap, place, racks_spanned
from gpulease.sim.locality import fewest_racks_free
from gpulease.sim.loop import Simulation
from gpulease.sim.metrics import placement_quality
from gpulease.sim.runner import simulate
from gpulease.sim.synthetic import rack_scale_mix
from gpulease.sim.workload import TraceJob, Workload

NVL72_PAIR = ClusterSpec(2, 18, 4)


def free_map(per_node: list[int], spec: ClusterSpec = NVL72_PAIR) -> FreeMap:
    return FreeMap(build_cluster(spec), per_node)


def spec_of(
    gpus: int,
    mode: TopologyMode = TopologyMode.PREFERRED,
    segment: int | None = None,
    gpus_per_node: int | None = None,
) -> JobSpec:
    return JobSpec(
        "j", "t", gpus, 0.0, gpus_per_node=gpus_per_node, topology=TopologyRequest(mode, segment)
    )


def test_literal_cases_on_two_nvl72_racks() -> None:
    # rack 0: two free trays (8 GPUs); rack 1: 32 GPUs free, 3 on each of 8 nodes + 8 on two
    rack0 = [4, 4] + [0] * 16
    rack1 = [3] * 8 + [4, 4] + [0] * 8
    free = free_map(rack0 + rack1)
    assert fewest_racks_free(spec_of(16), free) == 1
    assert fewest_racks_free(spec_of(36), free) == 2
    assert fewest_racks_free(spec_of(41), free) == 0  # 40 GPUs free in all
    assert fewest_racks_free(spec_of(16, TopologyMode.REQUIRED), free) == 1
    assert fewest_racks_free(spec_of(36, TopologyMode.REQUIRED), free) == 0
    # whole 4-GPU nodes: rack 1 has only two of them
    assert fewest_racks_free(spec_of(8, gpus_per_node=4), free) == 1
    assert fewest_racks_free(spec_of(12, gpus_per_node=4), free) == 2
    assert fewest_racks_free(spec_of(20, gpus_per_node=4), free) == 0
    # 64-GPU segments on an empty pair: one per rack
    empty = free_map([4] * 36)
    segmented = spec_of(128, TopologyMode.REQUIRED, segment=64, gpus_per_node=4)
    assert fewest_racks_free(segmented, empty) == 2
    assert fewest_racks_free(spec_of(192, TopologyMode.REQUIRED, segment=64), empty) == 0


SMALL = ClusterSpec(4, 4, 4)


@st.composite
def jobs(draw: st.DrawFn) -> JobSpec:
    mode = draw(st.sampled_from(list(TopologyMode)))
    if draw(st.booleans()):
        segment = draw(st.sampled_from([4, 8, 16]))
        gpn = draw(st.sampled_from([None, 1, 2, 4]))
        return spec_of(segment * draw(st.integers(1, 4)), mode, segment, gpn)
    gpus = draw(st.integers(1, 40))
    gpn = draw(st.sampled_from([None, 1, 2, 4]))
    if gpn is not None:
        gpus = gpn * max(1, gpus // gpn)
    return spec_of(gpus, mode, None, gpn)


@settings(max_examples=400, deadline=None)
@given(per_node=st.lists(st.integers(0, 4), min_size=16, max_size=16), job=jobs())
def test_the_placer_takes_exactly_the_fewest_racks_the_free_gpus_allow(
    per_node: list[int], job: JobSpec
) -> None:
    free = free_map(per_node, SMALL)
    fewest = fewest_racks_free(job, free)
    placed = place(job, free)
    if isinstance(placed, tuple):
        assert racks_spanned(free.cluster, placed) == fewest
    else:
        assert fewest == 0
    kept = place(job, free, keep_blocks=8)
    if isinstance(kept, tuple):  # kept blocks may cost racks, never save one
        assert racks_spanned(free.cluster, kept) >= fewest


@pytest.mark.parametrize(
    ("policy", "grace", "keep_blocks"),
    [("fairshare", 30.0, 0), ("fairshare", 30.0, 64), ("default", 0.0, 0), ("default", 30.0, 0)],
)
def test_runs_without_kept_blocks_never_spread_a_job_the_free_gpus_allowed_on_fewer_racks(
    policy: str, grace: float, keep_blocks: int
) -> None:
    spec = ClusterSpec(6, 18, 4)
    workload = rack_scale_mix(spec, jobs=400, load=1.1, seed=4)
    run = simulate(workload, spec, policy=policy, grace_s=grace, keep_blocks=keep_blocks)
    figures = run.figures
    quality = figures["placement"]
    assert all(o.start is not None for o in run.result.outcomes.values())
    assert quality["starts"] >= 400
    spread = quality["starts_on_more_racks_than_free_allowed"]
    assert spread == sum(quality["spread_by_topology"].values())
    assert quality["spread_by_topology"]["required"] == 0
    if keep_blocks:
        assert spread > 0  # kept blocks spread jobs on purpose
    else:
        assert spread == 0


@pytest.mark.parametrize("grace", [0.0, 30.0])
def test_gpus_freed_by_a_later_preemption_in_the_same_step_do_not_count_for_an_earlier_start(
    grace: float,
) -> None:
    # Two racks of two 4-GPU nodes, full of LOW work; a and b end at 5 s. At 10 s x (HIGH,
    # 8 GPUs) starts on the two free nodes, one per rack (no rack has 8 free); then y (HIGH)
    # preempts w. With no grace w's GPUs come free in that same step, after x was placed:
    # x spread over the fewest racks it could.
    cluster = build_cluster(ClusterSpec(2, 2, 4))

    def trace_job(name: str, gpus: int, submit: float, priority: PriorityClass) -> TraceJob:
        preferred = TopologyRequest(TopologyMode.PREFERRED)
        spec = JobSpec(name, "t", gpus, submit, priority=priority, topology=preferred)
        return TraceJob(spec, 5.0 if name in "ab" else 1000.0)

    low, high = PriorityClass.LOW, PriorityClass.HIGH
    jobs = [
        trace_job("a", 4, 0.0, low),
        trace_job("v", 4, 0.1, low),
        trace_job("b", 4, 0.2, low),
        trace_job("w", 4, 0.3, low),
        trace_job("x", 8, 10.0, high),
        trace_job("y", 4, 10.0, high),
    ]
    scheduler = Scheduler(make_policy("fifo"), SchedulerConfig(preemption_grace_s=grace))
    result = Simulation(cluster, Workload("same-step", jobs), scheduler).run()
    x = result.outcomes["x"]
    assert x.start == 10.0
    assert x.racks == [2]
    assert x.fewest_free == [2]
    specs = {job.spec.id: job.spec for job in jobs}
    quality = placement_quality(list(result.outcomes.values()), specs, cluster)
    assert quality["starts_on_more_racks_than_free_allowed"] == 0
