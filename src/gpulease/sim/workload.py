"""What a simulation replays: jobs with their true durations, leases, and failures.

The true ``duration`` (seconds of run time the job needs on its GPUs) belongs to the
simulator only: the scheduler sees a :class:`JobSpec`, which carries a walltime only when the
trace supplies an estimate (non-clairvoyant by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpulease.domain.errors import InvalidRequest
from gpulease.domain.models import JobSpec, LeaseGuarantee
from gpulease.domain.states import NodeState


@dataclass(frozen=True, slots=True)
class TraceJob:
    spec: JobSpec
    duration: float  # true run time needed, seconds (hidden from the scheduler)

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise InvalidRequest(
                f"job {self.spec.id}: duration must be > 0, got {self.duration}", field="duration"
            )


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """At ``time``, node ``node`` (index) goes to ``state`` (a failure, a repair, a drain)."""

    time: float
    node: int
    state: NodeState


@dataclass(slots=True)
class Workload:
    name: str
    jobs: list[TraceJob]
    leases: list[LeaseGuarantee] = field(default_factory=list)
    node_events: list[NodeEvent] = field(default_factory=list)

    @property
    def gpu_seconds(self) -> float:
        return sum(j.duration * j.spec.gpus for j in self.jobs)

    @property
    def span(self) -> float:
        if not self.jobs:
            return 0.0
        times = [j.spec.submit_time for j in self.jobs]
        return max(times) - min(times)
