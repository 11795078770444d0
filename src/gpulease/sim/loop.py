"""The discrete-event loop: a virtual clock driving the same scheduling core as the server.

Design (after SimPy): a heap of ``(time, order, sequence, event)``; ``order`` puts job ends
before node events before arrivals before wake-ups at the same instant, and the sequence
number from a counter breaks remaining ties, so a run is exactly repeatable. After all the
events of an instant are applied, the engine takes one step and its decisions are applied;
the engine's ``next_wakeup`` becomes an event. The simulator alone knows each job's true
remaining work: the scheduler never sees it.

Observers: ``observe(now, state)`` is called after every step's decisions are applied, with
the state as it stays until the next event (read it, never change it): analyses such as
:mod:`gpulease.sim.occupancy` integrate over the run without the loop knowing them.

Progress: a run that ends early (preemption, node failure) keeps the work up to its last
checkpoint (all of it when the job has no checkpoint interval).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from gpulease.domain.states import JobState
from gpulease.inventory.topology import Cluster
from gpulease.scheduler.engine import Decisions, Scheduler, apply_decisions
from gpulease.scheduler.placement import racks_spanned
from gpulease.scheduler.state import JobRecord, SchedulerState
from gpulease.sim.locality import fewest_racks_free
from gpulease.sim.workload import NodeEvent, TraceJob, Workload

_END, _NODE, _ARRIVAL, _WAKE = 0, 1, 2, 3


@dataclass(slots=True)
class JobOutcome:
    """What happened to one job, for metrics."""

    id: str
    tenant: str
    gpus: int
    submit: float
    duration: float
    start: float | None = None
    end: float | None = None
    status: JobState = JobState.QUEUED
    preemptions: int = 0
    racks: list[int] = field(default_factory=list)  # racks spanned at each start
    # racks the GPUs free at each start allowed at least (0: not computed, one rack spanned)
    fewest_free: list[int] = field(default_factory=list)
    guarantee_wait: float | None = None  # wait while within its tenant's guarantee


@dataclass(slots=True)
class SimResult:
    cluster_gpus: int
    policy: str
    outcomes: dict[str, JobOutcome]
    timeline: list[tuple[float, int, int]]  # (time, busy GPUs, queued jobs) after each step
    events: list[tuple[float, str, str]]  # (time, what, job or node) in order
    steps: int
    end_time: float


class Simulation:
    def __init__(
        self,
        cluster: Cluster,
        workload: Workload,
        scheduler: Scheduler,
        *,
        progress: Callable[[int, int], None] | None = None,
        record_events: bool = True,
        observe: Callable[[float, SchedulerState], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.workload = workload
        self.scheduler = scheduler
        self.state = SchedulerState(cluster, leases=workload.leases, keep_history=False)
        self.progress = progress
        self.record_events = record_events
        self.observe = observe
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = itertools.count()
        self._remaining: dict[str, float] = {}
        self._run_gen: dict[str, int] = {}  # job -> id of its current run
        self._gens = itertools.count()
        self._trace: dict[str, TraceJob] = {}
        self.outcomes: dict[str, JobOutcome] = {}
        self.events: list[tuple[float, str, str]] = []
        self.timeline: list[tuple[float, int, int]] = []
        self._busy = 0
        self._total = self._finished = self._steps = 0
        self._now = 0.0
        self._next_wake = math.inf

    def _push(self, time: float, order: int, payload: object) -> None:
        heapq.heappush(self._heap, (time, order, next(self._seq), payload))

    def _log(self, time: float, what: str, subject: str) -> None:
        if self.record_events:
            self.events.append((time, what, subject))

    def run(self) -> SimResult:
        self.prime()
        while self._heap:
            self.advance()
        if self.progress is not None:
            self.progress(self._finished, self._total)
        return self.result()

    # A run in pieces, for a driver of several sites (:mod:`gpulease.sim.multisite`):
    # ``prime`` once, then ``advance`` one instant at a time (``next_time`` says when),
    # ``arrive_later`` adding arrivals the driver decided, and ``result`` at the end.
    def prime(self) -> None:
        for job in self.workload.jobs:
            self._push(job.spec.submit_time, _ARRIVAL, job)
        for node_event in self.workload.node_events:
            self._push(node_event.time, _NODE, node_event)
        self._total = len(self.workload.jobs)
        self._finished = 0
        self._steps = 0
        self._now = 0.0
        self._next_wake = math.inf

    def next_time(self) -> float:
        """The instant of the next event (infinity when none is left)."""
        return self._heap[0][0] if self._heap else math.inf

    def arrive_later(self, job: TraceJob) -> None:
        """Add an arrival at its submit time (not before the last instant advanced)."""
        if job.spec.submit_time < self._now:
            raise ValueError(f"job {job.spec.id} arrives before the simulation's present")
        self._total += 1
        self._push(job.spec.submit_time, _ARRIVAL, job)

    def advance(self) -> None:
        """Apply every event of the next instant, then take one step and apply it."""
        heap = self._heap
        now = self._now = heap[0][0]
        while heap and heap[0][0] == now:
            _, order, _, payload = heapq.heappop(heap)
            if order == _END:
                assert isinstance(payload, tuple)
                name, gen = payload
                if self._run_gen.get(name) == gen:
                    self._finish(name, now)
                    self._finished += 1
            elif order == _ARRIVAL:
                assert isinstance(payload, TraceJob)
                self._arrive(payload, now)
            elif order == _NODE:
                self._node_event(payload, now)
            elif now != self._next_wake:
                continue  # a superseded wake-up
        decisions = self.scheduler.step(self.state, now)
        self._steps += 1
        self._apply(decisions, now)
        self._finished += len(decisions.timeouts)
        wake = decisions.next_wakeup
        if wake is not None and wake > now and wake != self._next_wake:
            self._next_wake = wake
            self._push(wake, _WAKE, None)
        elif wake is None:
            self._next_wake = math.inf
        self.timeline.append((now, self._busy, len(self.state.queued)))
        if self.observe is not None:
            self.observe(now, self.state)
        if self.progress is not None and self._steps % 512 == 0:
            self.progress(self._finished, self._total)

    def result(self) -> SimResult:
        return SimResult(
            self.cluster.total_gpus,
            self.scheduler.policy.name,
            self.outcomes,
            self.timeline,
            self.events,
            self._steps,
            self._now,
        )

    # ---------------------------------------------------------------- events
    def _arrive(self, job: TraceJob, now: float) -> None:
        spec = job.spec
        self._trace[spec.id] = job
        self._remaining[spec.id] = job.duration
        self.outcomes[spec.id] = JobOutcome(spec.id, spec.tenant, spec.gpus, now, job.duration)
        self.state.submit(spec)
        self._log(now, "submit", spec.id)

    def _finish(self, name: str, now: float) -> None:
        record = self.state.jobs[name]
        self._busy -= record.spec.gpus
        self.state.stop(name, now, JobState.SUCCEEDED)
        self._run_gen.pop(name, None)
        outcome = self.outcomes[name]
        outcome.end = now
        outcome.status = JobState.SUCCEEDED
        self._log(now, "end", name)

    def _node_event(self, payload: object, now: float) -> None:
        assert isinstance(payload, NodeEvent)
        if self.state.node_state[payload.node] is payload.state:
            return
        hit = self.state.set_node_state(payload.node, payload.state, now)
        self._log(now, f"node-{payload.state.value}", self.cluster.nodes[payload.node].id)
        for name in hit:
            record = self.state.jobs[name]
            self._interrupt(record, now)
            if record.spec.requeueable:
                self.state.stop(name, now, JobState.QUEUED, "node failure")
                self._log(now, "requeue-failure", name)
            else:
                self.state.stop(name, now, JobState.FAILED, "node failure")
                outcome = self.outcomes[name]
                outcome.end, outcome.status = now, JobState.FAILED
                self._log(now, "fail", name)

    def _interrupt(self, record: JobRecord, now: float) -> None:
        """A run stops early: keep its progress up to the last checkpoint."""
        assert record.run_start is not None
        elapsed = now - record.run_start
        interval = record.spec.checkpoint_interval
        kept = elapsed if interval is None else math.floor(elapsed / interval) * interval
        self._remaining[record.id] -= kept
        self._run_gen.pop(record.id, None)
        self._busy -= record.spec.gpus

    # ------------------------------------------------------------- decisions
    def _fewest_free(self, decisions: Decisions, spans: list[int]) -> list[int]:
        """For each start, the fewest racks the GPUs free just before it allowed (0 where
        the start took one rack, which nothing beats). The engine decided the step's starts,
        its promises of free GPUs to jobs waiting for preempted ones (``earmarks``) and
        the GPUs it freed by preempting with no grace (``releases``) in one order, so
        giving the starts back, taking the releases out and replaying all three in that
        order rebuilds the free map each start was placed on. (An EASY backfill is placed
        around the queue head's reservation, which this map does not show: it may count
        as spread.)"""
        if all(racks <= 1 for racks in spans):
            return [0] * len(spans)
        free = self.state.free_map()
        for start in decisions.starts:
            free.give(start.placement)
        for _, gpus in decisions.releases:
            free.take(gpus)
        changes = sorted(
            [(index, free.take, gpus) for index, gpus in decisions.earmarks]
            + [(index, free.give, gpus) for index, gpus in decisions.releases],
            key=lambda change: change[0],
        )  # stable: same-index changes keep the engine's order within each kind
        pending = iter(changes)
        change = next(pending, None)
        fewest: list[int] = []
        for index, (start, racks) in enumerate(zip(decisions.starts, spans, strict=True)):
            while change is not None and change[0] <= index:
                change[1](change[2])
                change = next(pending, None)
            spec = self.state.jobs[start.job_id].spec
            fewest.append(fewest_racks_free(spec, free) if racks > 1 else 0)
            free.take(start.placement)
        return fewest

    def _apply(self, decisions: Decisions, now: float) -> None:
        state = self.state
        for name in decisions.timeouts:
            self._interrupt(state.jobs[name], now)
            outcome = self.outcomes[name]
            outcome.end, outcome.status = now, JobState.FAILED
            self._log(now, "timeout", name)
        for preempt in decisions.requeues:
            self._interrupt(state.jobs[preempt.job_id], now)
            self.outcomes[preempt.job_id].preemptions += 1
            self._log(now, "preempt", preempt.job_id)
        for preempt in decisions.notices:
            self._log(now, "notice", preempt.job_id)
        # Guarantee wait: time queued within the tenant's guarantee without a break (the
        # state keeps each claim's start; a job that drops out of the guarantee loses it).
        claimed = {s.job_id: state.jobs[s.job_id].guaranteed_since for s in decisions.starts}
        apply_decisions(state, decisions)
        spans = [racks_spanned(self.cluster, start.placement) for start in decisions.starts]
        fewest = self._fewest_free(decisions, spans)
        for start, racks, least in zip(decisions.starts, spans, fewest, strict=True):
            name = start.job_id
            gen = self._run_gen[name] = next(self._gens)
            self._push(now + max(self._remaining[name], 0.0), _END, (name, gen))
            self._busy += state.jobs[name].spec.gpus
            outcome = self.outcomes[name]
            if outcome.start is None:
                outcome.start = now
            outcome.racks.append(racks)
            outcome.fewest_free.append(least)
            if not start.borrowed:
                since = claimed[name]
                wait = 0.0 if since is None else now - since
                outcome.guarantee_wait = max(outcome.guarantee_wait or 0.0, wait)
            self._log(now, "start", name)
