"""Reference mode: Tiresias' ``dlas-gpu`` scheduler (NSDI'19), as its own simulator runs it.

A faithful port of ``dlas_sim_jobs(gputime=True)`` with ``--scheme=count`` from
``SymbioticLab/Tiresias/simulator/run_sim.py`` (commit of the public repository, Apache 2.0;
its code is not copied here, only its behaviour), so that gpulease's policies can be measured
against the 2019 scheduler on any input without running a Python 2 program beside it. It
reproduces Tiresias' own average JCT exactly on the Philly VCs of
``benchmarks/bench_policies_by_vc.py`` (``tests/sim/test_tiresias.py`` holds a figure worked
by hand; ``docs/scheduling.md`` lists every modelling difference from gpulease's engine).

What Tiresias' simulator does, and this module therefore does:

* **Integer time.** Submit times and durations are whole seconds (``int``; a trace with
  fractions is truncated, as Tiresias' CSV reader does); attained service is integer.
* **Events.** The clock moves to the earliest of: the next submission instant, the earliest
  end among running jobs, and the earliest *queue jump* (below). At every event all the
  running jobs' service is brought up to date, then the whole cluster is re-allocated.
* **Queues.** Three queues. A job's *attained service* is run seconds x GPUs; it moves
  from Q0 to Q1 at 3,250 GPU-seconds and from Q1 to Q2 at 7,200 (``JOBS.queue_limit``;
  the third limit, 18,000, is never used). A demoted job is appended to the *end* of its new
  queue, behind that queue's pending jobs. There is no promotion: ``dlas-gpu`` runs with
  ``solve_starvation = 0``, so Tiresias' starvation rule is off.
* **Queue jumps.** The next check of a running job's level is at
  ``now + (limit - run_seconds) // gpus`` (sic: run seconds, not GPU-seconds, are
  subtracted from a GPU-second limit, in Python 2 integer division); a job is demoted only
  when an event finds ``run_seconds x gpus >= limit``, so a multi-GPU job can stay in its
  queue past its limit until the next event of any kind.
* **Allocation** (``count``: GPUs are counted, never placed). Starting from an empty
  cluster, queues are walked best first and each queue in its order: a job that fits in
  the GPUs not yet given runs (it starts if it was pending), one that does not is skipped
  (preempted if it was running, at no cost: it keeps all its service). No job blocks the
  ones after it. Then each queue is stably partitioned: running jobs first, pending after,
  each in their previous order; new arrivals are appended to Q0.
* **The SRTF oracle** (``tiresias-srtf``, Tiresias' ``shortest-gpu``, clairvoyant: a
  yardstick, not a policy): at every arrival or end, the runnable jobs are stably sorted by
  remaining GPU-seconds (a waiting job keeps the figure it had when it last ran) and any
  job that fits runs, in that order.
* **One pool.** Leases, tenants, priority classes, walltimes and checkpoints play no part
  (Tiresias has none); a workload with node events is refused.
* **JCT** = end - submit of every job; the run needs a cluster at least as large as the
  largest job (Tiresias stops with "not large enough" otherwise; so does :func:`run`).

Invariants: pure and deterministic (same input, same result); every job of the workload
ends exactly once; at no instant do running jobs hold more GPUs than the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpulease.domain.errors import InvalidRequest
from gpulease.domain.states import JobState
from gpulease.sim.loop import JobOutcome, SimResult
from gpulease.sim.workload import Workload

REFERENCE_POLICIES: tuple[str, ...] = ("tiresias-dlas-gpu", "tiresias-srtf")
TIRESIAS_LIMITS: tuple[int, ...] = (3250, 7200)  # GPU-seconds: Q0 -> Q1 -> Q2


@dataclass(slots=True, eq=False)  # identity semantics: queues hold and remove these objects
class _Job:
    id: str
    gpus: int
    submit: int
    duration: int
    queue: int = 0
    running: bool = False
    executed: int = 0  # run seconds (Tiresias' executed_time = total_executed_time here)
    last_check: int = 0
    start: int | None = None
    preemptions: int = 0


@dataclass(slots=True)
class _Trace:
    """The step timeline ``summarize`` integrates: (time, busy GPUs, waiting jobs)."""

    points: list[tuple[float, int, int]] = field(default_factory=list)


def _load(workload: Workload, total_gpus: int) -> tuple[list[_Job], dict[str, JobOutcome]]:
    if workload.node_events:
        raise InvalidRequest(
            "the Tiresias reference models no node events (its nodes never fail)", field="trace"
        )
    jobs = [
        _Job(j.spec.id, j.spec.gpus, int(j.spec.submit_time), int(j.duration))
        for j in workload.jobs
    ]
    too_big = [j for j in jobs if j.gpus > total_gpus]
    if too_big:
        raise InvalidRequest(
            f"job {too_big[0].id} needs {too_big[0].gpus} GPUs; the cluster has {total_gpus}",
            field="cluster",
        )
    jobs.sort(key=lambda j: j.submit)  # stable, as Tiresias' list.sort
    tenants = {j.spec.id: j.spec.tenant for j in workload.jobs}
    outcomes = {j.id: JobOutcome(j.id, tenants[j.id], j.gpus, j.submit, j.duration) for j in jobs}
    return jobs, outcomes


def _arrivals(jobs: list[_Job]) -> list[tuple[int, list[_Job]]]:
    arrivals: list[tuple[int, list[_Job]]] = []
    for job in jobs:
        if arrivals and arrivals[-1][0] == job.submit:
            arrivals[-1][1].append(job)
        else:
            arrivals.append((job.submit, [job]))
    return arrivals


def run(
    workload: Workload, total_gpus: int, limits: tuple[int, ...] = TIRESIAS_LIMITS
) -> SimResult:
    """Simulate ``workload`` under Tiresias ``dlas-gpu`` on ``total_gpus`` counted GPUs."""
    jobs, outcomes = _load(workload, total_gpus)
    arrivals = _arrivals(jobs)
    queues: list[list[_Job]] = [[] for _ in range(len(limits) + 1)]
    runnable: list[_Job] = []
    trace = _Trace()
    next_arrival = 0
    end_at: int | None = None
    end_jobs: list[_Job] = []
    jump_at: int | None = None
    steps = 0
    now = 0
    while next_arrival < len(arrivals) or runnable:
        candidates = [t for t in (end_at, jump_at) if t is not None]
        if next_arrival < len(arrivals):
            candidates.append(arrivals[next_arrival][0])
        now = min(candidates)
        if end_at is not None and end_at == now:  # a jump at the same instant ends them too
            for job in end_jobs:
                runnable.remove(job)
                queues[job.queue].remove(job)
                outcomes[job.id].end = float(now)
                outcomes[job.id].status = JobState.SUCCEEDED
        if next_arrival < len(arrivals) and arrivals[next_arrival][0] == now:
            for job in arrivals[next_arrival][1]:
                job.last_check = job.submit
                runnable.append(job)
                queues[0].append(job)
            next_arrival += 1
        _account(runnable, queues, limits, now)
        _allocate(queues, total_gpus, now)
        for job in runnable:
            if job.running and outcomes[job.id].start is None:
                outcomes[job.id].start = float(now)
        end_at, end_jobs, jump_at = _next_events(runnable, limits, now)
        steps += 1
        busy = sum(j.gpus for j in runnable if j.running)
        trace.points.append((float(now), busy, sum(1 for j in runnable if not j.running)))
    for job in jobs:
        outcomes[job.id].preemptions = job.preemptions
    return SimResult(total_gpus, REFERENCE_POLICIES[0], outcomes, trace.points, [], steps, now)


def _account(
    runnable: list[_Job], queues: list[list[_Job]], limits: tuple[int, ...], now: int
) -> None:
    """Bring service up to ``now``; demote a running job past its queue's limit."""
    for job in runnable:
        if job.running:
            job.executed += now - job.last_check
            job.last_check = now
            if job.queue < len(limits) and job.executed * job.gpus >= limits[job.queue]:
                queues[job.queue].remove(job)
                job.queue += 1
                queues[job.queue].append(job)
        else:
            job.last_check = now


def _allocate(queues: list[list[_Job]], total_gpus: int, now: int) -> None:
    """Re-allocate the whole cluster: walk the queues best first, any job that fits runs."""
    free = total_gpus
    for queue in queues:
        for job in queue:
            if free >= job.gpus:
                job.running = True
                free -= job.gpus
            elif job.running:
                job.running = False
                job.preemptions += 1
    for index, queue in enumerate(queues):
        queues[index] = [j for j in queue if j.running] + [j for j in queue if not j.running]


def _next_events(
    runnable: list[_Job], limits: tuple[int, ...], now: int
) -> tuple[int | None, list[_Job], int | None]:
    """The earliest end (and the jobs ending then) and the earliest queue jump."""
    end_at: int | None = None
    end_jobs: list[_Job] = []
    jump_at: int | None = None
    for job in runnable:
        if not job.running:
            continue
        end = now + job.duration - job.executed
        if end_at is None or end < end_at:
            end_at, end_jobs = end, [job]
        elif end == end_at:
            end_jobs.append(job)
        if job.queue < len(limits):
            jump = now + (limits[job.queue] - job.executed) // job.gpus
            if jump_at is None or jump < jump_at:
                jump_at = jump
    return end_at, end_jobs, jump_at


def run_srtf(workload: Workload, total_gpus: int) -> SimResult:
    """Simulate ``workload`` under Tiresias' ``shortest-gpu`` oracle (knows every duration)."""
    jobs, outcomes = _load(workload, total_gpus)
    arrivals = _arrivals(jobs)
    runnable: list[_Job] = []
    remaining: dict[str, int] = {}  # GPU-seconds left, as of the job's last run
    points: list[tuple[float, int, int]] = []
    next_arrival = 0
    end_at: int | None = None
    steps = 0
    now = 0
    while next_arrival < len(arrivals) or runnable:
        candidates = [] if end_at is None else [end_at]
        if next_arrival < len(arrivals):
            candidates.append(arrivals[next_arrival][0])
        now = min(candidates)
        for job in runnable:
            if job.running:
                job.executed += now - job.last_check
                remaining[job.id] = (job.duration - job.executed) * job.gpus
            job.last_check = now
        if end_at == now:
            for job in [j for j in runnable if j.running and j.executed >= j.duration]:
                runnable.remove(job)
                outcomes[job.id].end = float(now)
                outcomes[job.id].status = JobState.SUCCEEDED
        if next_arrival < len(arrivals) and arrivals[next_arrival][0] == now:
            for job in arrivals[next_arrival][1]:
                job.last_check = now
                remaining[job.id] = job.duration * job.gpus
                runnable.append(job)
            next_arrival += 1
        runnable.sort(key=lambda j: remaining[j.id])
        free = total_gpus
        for job in runnable:
            if free >= job.gpus:
                free -= job.gpus
                job.running = True
                if outcomes[job.id].start is None:
                    outcomes[job.id].start = float(now)
            elif job.running:
                job.running = False
                job.preemptions += 1
        ends = [now + j.duration - j.executed for j in runnable if j.running]
        end_at = min(ends) if ends else None
        steps += 1
        busy = total_gpus - free
        points.append((float(now), busy, sum(1 for j in runnable if not j.running)))
    for job in jobs:
        outcomes[job.id].preemptions = job.preemptions
    return SimResult(total_gpus, REFERENCE_POLICIES[1], outcomes, points, [], steps, now)


def run_reference(policy: str, workload: Workload, total_gpus: int) -> SimResult:
    """Run one of :data:`REFERENCE_POLICIES` by name."""
    if policy == "tiresias-dlas-gpu":
        return run(workload, total_gpus)
    if policy == "tiresias-srtf":
        return run_srtf(workload, total_gpus)
    raise InvalidRequest(
        f"unknown reference {policy!r}; choose one of {', '.join(REFERENCE_POLICIES)}",
        field="policy",
    )
