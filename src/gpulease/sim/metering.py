"""The simulator's allocation log: what the live service writes as ``gpu_allocations`` rows.

Design. An observer of :class:`~gpulease.sim.loop.Simulation` (``observe(now, state)``,
called after every step with the state as it stays until the next event). A run is a
running job's ``(id, run_start)``; when a run appears, one allocation per GPU it holds is
opened, each with the capacity the core attributed to it (``JobRecord.shares``, in the
order of its GPUs, as ``services.runs.start_run`` writes them); when the run is gone (it
ended, was preempted, requeued or hit by a node failure at that instant), its allocations
close at that ``now``. :meth:`AllocationLog.allocations` gives them as metering
:class:`~gpulease.metering.usage.Allocation` s, so a simulated week is metered and rated by
the same cores as the live system (a job submitted not preemptible is on-demand on unleased
capacity: ``metering.sources.on_demand``, as the live service reads it).

Invariant: a run's allocations span exactly ``[run_start, end)`` of the run as the state
kept it, so their GPU-seconds equal the state's attained service (the property test).
A GPU is named ``<node id>/<index>`` (the simulator has no serials).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpulease.domain.clock import from_seconds
from gpulease.metering.sources import on_demand
from gpulease.metering.usage import Allocation, CapacityClass
from gpulease.scheduler.lease_book import Share
from gpulease.scheduler.state import SchedulerState


@dataclass(slots=True)
class _Run:
    tenant: str
    start: float
    gpus: list[str]
    shares: tuple[Share, ...]
    preemptible: bool = True
    end: float | None = None


@dataclass(slots=True)
class AllocationLog:
    runs: dict[tuple[str, float], _Run] = field(default_factory=dict)
    _open: set[tuple[str, float]] = field(default_factory=set)

    def observe(self, now: float, state: SchedulerState) -> None:
        current: set[tuple[str, float]] = set()
        for record in state.running.values():
            assert record.run_start is not None
            key = (record.id, record.run_start)
            current.add(key)
            if key not in self.runs:
                nodes = state.cluster.nodes
                gpus = [f"{nodes[n].id}/{g}" for n, held in record.allocation for g in held]
                self.runs[key] = _Run(
                    record.spec.tenant,
                    record.run_start,
                    gpus,
                    record.shares,
                    record.spec.preemptible,
                )
                self._open.add(key)
        for key in self._open - current:
            self.runs[key].end = now
        self._open = current

    def allocations(self) -> list[Allocation]:
        """Every GPU of every run so far (runs still going: open)."""
        out: list[Allocation] = []
        firm = {job_id for (job_id, _), run in self.runs.items() if not run.preemptible}
        for (job_id, _), run in sorted(self.runs.items()):
            sources: list[Share] = [s for s in run.shares for _ in range(s.gpus)]
            for i, gpu in enumerate(run.gpus):
                share = sources[i] if i < len(sources) else None
                out.append(
                    Allocation(
                        id=f"{job_id}@{run.start!r}/{i}",
                        tenant=run.tenant,
                        job_id=job_id,
                        gpu_serial=gpu,
                        start=from_seconds(run.start),
                        end=None if run.end is None else from_seconds(run.end),
                        capacity=CapacityClass.BORROWED if share is None else share.capacity,
                        lease_id=None if share is None else share.lease_id,
                        lender_lease_id=None if share is None else share.lender_lease_id,
                        lender_tenant=None if share is None else share.lender_tenant,
                    )
                )
        return on_demand(out, firm)
