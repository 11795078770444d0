"""The utilisation bound (exact on small hand examples, never below a simulated schedule)
and the lease-guarantee wait the loop measures."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpulease.domain.models import JobSpec, TopologyMode, TopologyRequest
from gpulease.inventory.topology import Cluster, ClusterSpec, build_cluster
from gpulease.scheduler.engine import Decisions, Start
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.loop import JobOutcome, Simulation
from gpulease.sim.metrics import domain_bound_gpus, fluid_utilization_bound, placement_quality
from gpulease.sim.runner import simulate
from gpulease.sim.synthetic import rack_scale_mix
from gpulease.sim.workload import TraceJob, Workload

NO_TOPOLOGY = TopologyRequest(TopologyMode.NONE)


def job(
    name: str,
    gpus: int,
    submit: float,
    duration: float,
    topology: TopologyRequest = NO_TOPOLOGY,
) -> TraceJob:
    return TraceJob(JobSpec(name, "t", gpus, submit, topology=topology), duration)


def flat(count: int) -> Cluster:
    """One rack of ``count`` one-GPU nodes: no rack-bound piece is ever over half of it
    unless it asks for most of the site."""
    return build_cluster(ClusterSpec(1, count, 1))


NVL72_PAIR = build_cluster(ClusterSpec(2, 18, 4))  # two 72-GPU racks
SEGMENTED = TopologyRequest(TopologyMode.REQUIRED, segment=64)


def test_bound_is_capacity_limited_when_work_arrives_in_a_lump() -> None:
    # 8 GPUs; 80 GPU-s arrive at 0 with a job lasting 10 s; the window is [0, 20].
    workload = Workload("lump", [job("a", 8, 0.0, 10.0), job("b", 1, 20.0, 1.0)])
    assert fluid_utilization_bound(workload, flat(8)) == pytest.approx(80.0 / (8 * 20.0))
    # On 4 GPUs the fluid server needs 20 s for it: busy all window long.
    assert fluid_utilization_bound(workload, flat(4)) == pytest.approx(1.0)


def test_bound_counts_only_work_a_job_can_do_inside_the_window() -> None:
    # A 1-GPU job of 100 s submitted at 0, the last submission at 10: at most 10 GPU-s.
    workload = Workload("long", [job("a", 1, 0.0, 100.0), job("b", 1, 10.0, 1.0)])
    assert fluid_utilization_bound(workload, flat(4)) == pytest.approx(10.0 / 40.0)


def test_segments_over_half_a_rack_never_share_one() -> None:
    # Three 64-GPU segmented gangs for 20 s on two 72-GPU racks: at most two run at once.
    gangs = [job(f"g{i}", 64, 0.0, 20.0, SEGMENTED) for i in range(3)]
    last = job("z", 1, 20.0, 1.0)
    workload = Workload("gangs", [*gangs, last])
    bound, held = domain_bound_gpus(workload, NVL72_PAIR)
    assert bound == {"g0", "g1", "g2"}
    assert held == 128
    assert fluid_utilization_bound(workload, NVL72_PAIR) == pytest.approx(128 / 144)
    # A 16-GPU job beside them fills the spare GPUs: the site can be busy throughout.
    filler = job("f", 16, 0.0, 20.0)
    workload = Workload("gangs and filler", [*gangs, filler, last])
    assert fluid_utilization_bound(workload, NVL72_PAIR) == pytest.approx(1.0)


def test_pieces_that_can_share_a_rack_are_not_bound() -> None:
    # 32-GPU pieces: two fit in a 72-GPU rack, so they may use it all.
    halves = TopologyRequest(TopologyMode.REQUIRED, segment=32)
    workload = Workload("halves", [job("a", 64, 0.0, 20.0, halves), job("z", 1, 20.0, 1.0)])
    assert domain_bound_gpus(workload, NVL72_PAIR) == (frozenset(), 0)
    # a whole-job REQUIRED request is its own piece
    whole = TopologyRequest(TopologyMode.REQUIRED)
    workload = Workload("whole", [job("a", 40, 0.0, 20.0, whole), job("z", 1, 20.0, 1.0)])
    assert domain_bound_gpus(workload, NVL72_PAIR) == (frozenset({"a"}), 80)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    load=st.sampled_from([0.5, 0.95, 1.5]),
    policy=st.sampled_from(["fifo", "easy"]),
    spec=st.sampled_from([ClusterSpec(4, 4, 4), ClusterSpec(3, 18, 4)]),
)
def test_no_simulated_schedule_beats_the_bound(
    seed: int, load: float, policy: str, spec: ClusterSpec
) -> None:
    # No leases and a non-preemptive policy: busy time is exactly useful work (work lost to
    # a preemption is done twice and counts as busy twice, which the bound does not cover).
    workload = replace(rack_scale_mix(spec, jobs=40, load=load, seed=seed), leases=[])
    figures = simulate(workload, spec, policy=policy, grace_s=30.0).figures
    assert figures["preemptions"] == 0
    bound = figures["utilization_bound_while_arriving"]
    assert bound == fluid_utilization_bound(workload, build_cluster(spec, site="sim"))
    assert figures["utilization_while_arriving"] <= bound + 1e-9


class Scripted:
    """Stands in for the engine to drive the loop's bookkeeping with chosen decisions."""

    class policy:  # noqa: N801 - the loop reads ``scheduler.policy.name``
        name = "scripted"

    def __init__(self, script: dict[float, Decisions]) -> None:
        self.script = script

    def step(self, state: SchedulerState, now: float) -> Decisions:
        return self.script.get(now, Decisions(now))


def test_guarantee_wait_restarts_when_a_job_drops_out_of_the_guarantee() -> None:
    cluster = flat(4)
    workload = Workload("one", [job("j", 4, 0.0, 10.0)])
    script = {
        0.0: Decisions(0.0, guaranteed_waiting=["j"], next_wakeup=5.0),
        5.0: Decisions(5.0, next_wakeup=8.0),  # the tenant's better jobs took the guarantee
        8.0: Decisions(8.0, guaranteed_waiting=["j"], next_wakeup=9.0),
        9.0: Decisions(9.0, starts=[Start("j", ((0, 1), (1, 1), (2, 1), (3, 1)), False)]),
    }
    result = Simulation(cluster, workload, Scripted(script)).run()  # type: ignore[arg-type]
    outcome = result.outcomes["j"]
    assert outcome.start == 9.0
    assert outcome.guarantee_wait == 1.0  # from 8 to 9, not from 0


def test_placement_quality_counts_starts_over_the_fewest_racks_by_locality() -> None:
    specs = {
        "p": JobSpec("p", "t", 8, 0.0, topology=TopologyRequest(TopologyMode.PREFERRED)),
        "g": JobSpec("g", "t", 128, 0.0, gpus_per_node=4, topology=SEGMENTED),
    }
    outcomes = [
        # second start spanned two racks where the free GPUs allowed one
        JobOutcome("p", "t", 8, 0.0, 10.0, racks=[1, 2], fewest_free=[0, 1]),
        # two segments need two racks, and the free GPUs allowed no fewer
        JobOutcome("g", "t", 128, 0.0, 10.0, racks=[2], fewest_free=[2]),
    ]
    quality = placement_quality(outcomes, specs, NVL72_PAIR)
    assert quality["starts"] == 3
    assert quality["multi_rack_starts"] == 2
    assert quality["starts_on_more_racks_than_needed"] == 1
    assert quality["more_racks_by_topology"] == {"none": 0, "preferred": 1, "required": 0}
    assert quality["fewest_racks_share"] == pytest.approx(2 / 3)
    assert quality["starts_on_more_racks_than_free_allowed"] == 1
    assert quality["spread_by_topology"] == {"none": 0, "preferred": 1, "required": 0}
    assert quality["fewest_free_racks_share"] == pytest.approx(2 / 3)


def test_rack_bound_jobs_never_span_more_racks_than_needed_in_a_run() -> None:
    spec = ClusterSpec(4, 18, 4)
    figures = simulate(rack_scale_mix(spec, jobs=300, load=1.2, seed=9), spec).figures
    quality = figures["placement"]
    assert quality["more_racks_by_topology"]["required"] == 0
    assert (
        sum(quality["more_racks_by_topology"].values())
        == (quality["starts_on_more_racks_than_needed"])
    )


@pytest.mark.parametrize(("promised_after", "fewest"), [(0, [2]), (1, [1])])
def test_the_loop_replays_promised_gpus_before_judging_a_spread_start(
    promised_after: int, fewest: list[int]
) -> None:
    # Two racks of two 4-GPU nodes. j starts on nodes 1 and 3 (two racks). Nodes 0 and 2
    # were promised to a job waiting for preemptions: before j was placed, the free GPUs
    # allowed no fewer racks; promised after it, one rack (nodes 0 and 1) would have done.
    cluster = build_cluster(ClusterSpec(2, 2, 4))
    preferred = TopologyRequest(TopologyMode.PREFERRED)
    workload = Workload("one", [job("j", 8, 0.0, 10.0, topology=preferred)])
    script = {
        0.0: Decisions(
            0.0,
            starts=[Start("j", ((1, 4), (3, 4)), False)],
            earmarks=[(promised_after, ((0, 4), (2, 4)))],
        )
    }
    result = Simulation(cluster, workload, Scripted(script)).run()  # type: ignore[arg-type]
    outcome = result.outcomes["j"]
    assert outcome.racks == [2]
    assert outcome.fewest_free == fewest
    specs = {"j": workload.jobs[0].spec}
    spread = placement_quality([outcome], specs, cluster)["starts_on_more_racks_than_free_allowed"]
    assert spread == (fewest[0] < 2)
