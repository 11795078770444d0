"""Where GPU-time goes: literal states on two NVL72 racks, then a whole simulated run."""

from __future__ import annotations

import pytest

from gpulease.domain.models import JobSpec, TopologyMode, TopologyRequest
from gpulease.domain.states import NodeState
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.occupancy import CATEGORIES, Occupancy
from gpulease.sim.runner import simulate
from gpulease.sim.synthetic import rack_scale_mix, segment_gpus

PAIR = build_cluster(ClusterSpec(2, 18, 4))  # two 72-GPU racks; nodes 0-17 and 18-35
SEGMENT = TopologyRequest(TopologyMode.REQUIRED, segment=64)


def gang(name: str, gpus: int = 64) -> JobSpec:
    return JobSpec(name, "t", gpus, 0.0, gpus_per_node=4, topology=SEGMENT)


def small(name: str, gpus: int) -> JobSpec:
    return JobSpec(name, "t", gpus, 0.0)


def run_on(state: SchedulerState, spec: JobSpec, nodes: range) -> None:
    state.submit(spec)
    per_node = spec.gpus // len(nodes)
    state.start(spec.id, tuple((n, per_node) for n in nodes), 0.0, borrowed=False)


def counts(state: SchedulerState) -> dict[str, int]:
    return {k: v for k, v in Occupancy(PAIR, 64).snapshot(state).items() if v}


def test_spares_beside_a_segment_and_a_rack_blocked_by_other_work() -> None:
    state = SchedulerState(PAIR)
    run_on(state, gang("g"), range(0, 16))  # rack 0: a segment, two trays to spare
    run_on(state, small("m", 16), range(18, 22))  # rack 1: 4 trays taken, 14 whole left
    assert counts(state) == {"gang": 64, "other": 16, "spare": 8, "blocked": 56}


def test_open_racks_with_and_without_a_waiting_gang() -> None:
    state = SchedulerState(PAIR)
    assert counts(state) == {"open": 144}
    state.submit(gang("waiting", 128))  # queued (no step runs here)
    assert counts(state) == {"open_waiting": 144}
    state.submit(small("tiny", 1))
    run_on(state, small("one", 1), range(20, 21))  # one partial node: 68 whole GPUs left
    assert counts(state) == {"other": 1, "open_waiting": 143}


def test_down_nodes_are_unavailable_not_idle() -> None:
    state = SchedulerState(PAIR)
    for node in range(18, 36):
        state.set_node_state(node, NodeState.DOWN, 0.0)
    run_on(state, gang("g"), range(0, 16))
    assert counts(state) == {"gang": 64, "spare": 8, "unavailable": 72}


def test_intervals_are_integrated_inside_the_window() -> None:
    occupancy = Occupancy(PAIR, 64, start=10.0, end=30.0)
    state = SchedulerState(PAIR)
    occupancy.observe(0.0, state)  # both racks open from 0 to 20: counts from 10
    run_on(state, gang("g"), range(0, 16))
    occupancy.observe(20.0, state)  # then rack 1 alone is open
    occupancy.finish(50.0)  # the window ends at 30
    assert occupancy.gpu_seconds["open"] == pytest.approx(144 * 10 + 72 * 10)
    assert occupancy.gpu_seconds["gang"] == pytest.approx(64 * 10)
    assert occupancy.gpu_seconds["spare"] == pytest.approx(8 * 10)
    assert occupancy.gpu_seconds["open_waiting"] == 0.0
    assert sum(occupancy.shares().values()) == pytest.approx(1.0)


def test_a_whole_run_splits_exactly_into_busy_and_idle_categories() -> None:
    spec = ClusterSpec(4, 18, 4)
    workload = rack_scale_mix(spec, jobs=300, load=0.95, seed=5)
    first = workload.jobs[0].spec.submit_time
    last = workload.jobs[-1].spec.submit_time
    occupancy = Occupancy(
        build_cluster(spec, site="sim"), segment_gpus(spec), start=first, end=last
    )
    run = simulate(workload, spec, observe=occupancy)
    occupancy.finish(run.result.end_time)
    seconds = occupancy.gpu_seconds
    assert set(seconds) == set(CATEGORIES)
    assert sum(seconds.values()) == pytest.approx(spec.total_gpus * (last - first))
    busy = (seconds["gang"] + seconds["other"]) / (spec.total_gpus * (last - first))
    assert busy == pytest.approx(run.figures["utilization_while_arriving"])
    assert seconds["gang"] > seconds["other"] > 0  # the mix is mostly rack-scale gangs
    assert seconds["spare"] > 0  # 64-GPU segments leave two trays in each 72-GPU rack
