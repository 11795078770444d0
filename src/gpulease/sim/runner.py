"""One call from a description of a run to its figures; shared by the CLI and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpulease.inventory.topology import Cluster, ClusterSpec, build_cluster
from gpulease.scheduler.engine import Scheduler, SchedulerConfig
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.loop import SimResult, Simulation
from gpulease.sim.metrics import summarize
from gpulease.sim.tiresias import REFERENCE_POLICIES, run_reference
from gpulease.sim.workload import Workload


@dataclass(slots=True)
class Run:
    cluster: Cluster
    workload: Workload
    result: SimResult
    figures: dict[str, Any]


def simulate(
    workload: Workload,
    spec: ClusterSpec,
    *,
    policy: str = "default",
    grace_s: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
    record_events: bool = False,
    observe: Callable[[float, SchedulerState], None] | None = None,
    keep_blocks: int = 0,
) -> Run:
    cluster = build_cluster(spec, site="sim")
    if policy in REFERENCE_POLICIES:  # Tiresias' own scheduler, GPUs counted, not placed
        result = run_reference(policy, workload, cluster.total_gpus)
        return Run(cluster, workload, result, summarize(result, workload, cluster))
    config = SchedulerConfig(preemption_grace_s=grace_s, explain=False, keep_blocks=keep_blocks)
    scheduler = Scheduler(make_policy(policy), config)
    simulation = Simulation(
        cluster,
        workload,
        scheduler,
        progress=progress,
        record_events=record_events,
        observe=observe,
    )
    result = simulation.run()
    return Run(cluster, workload, result, summarize(result, workload, cluster))
