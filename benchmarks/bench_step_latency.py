"""Benchmark 3: latency of one scheduling step at scale.

Two cases: 2,304 GPUs (32 NVL72 racks) with 10,000 queued jobs, and 100,008 GPUs (1,389
racks) with 100,000 queued jobs. The cluster is first filled to ~97 % with running jobs of
mixed sizes and attained service. Default policy, reasons explained. Two modes:

* ``repeat``: ``Scheduler.step`` is timed repeatedly on that same state (decisions are not
  applied, so every step sees the same input; no leases). The first step also builds the
  running-jobs index and is reported apart.
* ``steady``: the live service's shape. Four of the eight tenants hold leases (10 % of the
  site each), reasons are explained, the grace period is 30 s. The queued jobs arrive at
  once (the *burst* step: leased tenants reclaim, LAS level 0 preempts, thousands of
  notices); then every simulated second ``--arrivals`` jobs arrive, as many running jobs
  finish, the step runs and its decisions are applied. Reported: the burst step and p50 /
  p99 / max of the steady steps, *before* (``SchedulerConfig(queue_index=False)``: rank,
  tier and explain every job, as the live service did) and *after* (the indexed walk), on
  the same initial state, in the same run; and whether both decided alike on the steps
  both ran.

    .venv/bin/python benchmarks/bench_step_latency.py [--mode repeat|steady|both]
        [--repeat 20] [--racks 1389] [--queued 100000] [--steps 120] [--before-steps 5]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from _common import peak_rss_mib
from gpulease.domain.models import JobSpec, LeaseGuarantee
from gpulease.domain.states import JobState
from gpulease.inventory.topology import build_cluster, parse_cluster_spec
from gpulease.scheduler.engine import Decisions, Scheduler, SchedulerConfig, apply_decisions
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.metrics import percentile

SIZES = (1, 1, 1, 2, 4, 4, 8, 8, 16, 32, 64)


def build(
    spec_text: str, queued: int, seed: int, *, submit: bool = True
) -> tuple[SchedulerState, float]:
    rng = random.Random(seed)
    cluster = build_cluster(parse_cluster_spec(spec_text))
    state = SchedulerState(cluster, keep_history=False)
    fill = Scheduler(make_policy("fifo"), SchedulerConfig(explain=False))
    now = 0.0
    target = int(cluster.total_gpus * 0.97)
    n = 0
    while cluster.total_gpus - state.free_map().total < target:
        batch = [
            JobSpec(f"run-{n + i}", f"t{rng.randrange(8)}", rng.choice(SIZES), now)
            for i in range(2000)
        ]
        n += len(batch)
        for spec in batch:
            state.submit(spec)
        apply_decisions(state, fill.step(state, now))
        for job_id in list(state.queued):
            state.stop(job_id, now, state.jobs[job_id].status.CANCELLED)
        now += rng.uniform(600, 7200)
    if not submit:
        return state, now
    for i in range(queued):
        state.submit(JobSpec(f"q-{i}", f"t{rng.randrange(8)}", rng.choice(SIZES), now + i * 0.01))
    return state, now + queued * 0.01 + 1.0


def measure(spec_text: str, queued: int, repeat: int) -> None:
    state, now = build(spec_text, queued, seed=7)
    scheduler = Scheduler(make_policy("default"), SchedulerConfig(explain=True))
    started = time.perf_counter()
    first = scheduler.step(state, now)
    first_s = time.perf_counter() - started
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        scheduler.step(state, now)
        times.append(time.perf_counter() - started)
    print(
        f"{spec_text} ({state.cluster.total_gpus:,} GPUs), {len(state.running):,} running, "
        f"{len(state.queued):,} queued: first step {first_s * 1000:,.0f} ms "
        f"({len(first.starts)} starts, {len(first.requeues) + len(first.notices)} preemptions)"
        f"; then p50 {statistics.median(times) * 1000:,.0f} ms, "
        f"p99 {percentile(times, 99) * 1000:,.0f} ms over {repeat} steps; "
        f"peak memory {peak_rss_mib():,.0f} MiB"
    )


def steady_run(
    spec_text: str, queued: int, steps: int, arrivals: int, *, indexed: bool
) -> tuple[float, list[float], list[Decisions], int]:
    """Burst step time, steady step times, every step's decisions, starts in the run."""
    state, now = build(spec_text, queued, seed=7, submit=False)
    share = state.cluster.total_gpus // 10
    for tenant in ("t0", "t1", "t2", "t3"):
        state.add_lease(LeaseGuarantee(f"lease-{tenant}", tenant, share, 0.0, 1e12))
    rng = random.Random(11)
    for i in range(queued):
        state.submit(JobSpec(f"q-{i}", f"t{rng.randrange(8)}", rng.choice(SIZES), now))
    gc.collect()
    gc.freeze()  # as a long-lived leader would: the built state is not garbage
    config = SchedulerConfig(preemption_grace_s=30.0, explain=True, queue_index=indexed)
    scheduler = Scheduler(make_policy("default"), config)
    scheduler.step(state, now)  # builds the running-jobs index (a leader's first pass)
    now += 1.0
    started = time.perf_counter()
    burst = scheduler.step(state, now)
    burst_s = time.perf_counter() - started
    apply_decisions(state, burst)
    log = [burst]
    starts = len(burst.starts)
    times: list[float] = []
    n = 0
    for _ in range(steps):
        now += 1.0
        ending = rng.sample(sorted(state.running), min(arrivals, len(state.running)))
        for job_id in ending:
            if state.running[job_id].preempt_at is None:
                state.stop(job_id, now, JobState.SUCCEEDED)
        for _ in range(arrivals):
            spec = JobSpec(f"s-{n}", f"t{rng.randrange(8)}", rng.choice(SIZES), now)
            state.submit(spec)
            n += 1
        started = time.perf_counter()
        decisions = scheduler.step(state, now)
        times.append(time.perf_counter() - started)
        apply_decisions(state, decisions)
        log.append(decisions)
        starts += len(decisions.starts)
    return burst_s, times, log, starts


def _figures(label: str, burst_s: float, times: list[float], first: Decisions) -> str:
    ms = [t * 1000 for t in times]
    return (
        f"  {label}: burst step {burst_s * 1000:,.0f} ms ({len(first.starts)} starts, "
        f"{len(first.notices) + len(first.requeues)} preemptions, "
        f"{len(first.guaranteed_waiting)} guaranteed waiting); steady over {len(ms)} steps: "
        f"p50 {statistics.median(ms):,.1f} ms, p99 {percentile(ms, 99):,.1f} ms, "
        f"max {max(ms):,.1f} ms"
    )


def steady(spec_text: str, queued: int, steps: int, before_steps: int, arrivals: int) -> None:
    racks = spec_text.split("x")[0]
    print(
        f"steady state, {spec_text} ({int(racks) * 72:,} GPUs), {queued:,} queued, "
        f"{arrivals} arrivals and up to {arrivals} completions per simulated second, "
        "4 leases of 10 %, reasons explained, grace 30 s:"
    )
    before = steady_run(spec_text, queued, before_steps, arrivals, indexed=False)
    print(_figures("before (full walk)", before[0], before[1], before[2][0]))
    after = steady_run(spec_text, queued, steps, arrivals, indexed=True)
    print(_figures("after (indexed)   ", after[0], after[1], after[2][0]))
    same = all(a == b for a, b in zip(before[2], after[2], strict=False))
    print(
        f"  same decisions on the {len(before[2])} steps both ran: {same}; "
        f"starts after {len(after[2])} steps: {after[3]:,}; peak memory "
        f"{peak_rss_mib():,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("repeat", "steady", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--racks", type=int, default=1389, help="steady mode: NVL72 racks")
    parser.add_argument("--queued", type=int, default=100_000, help="steady mode")
    parser.add_argument("--steps", type=int, default=120, help="steady mode: indexed steps")
    parser.add_argument("--before-steps", type=int, default=5, help="steady: full-walk steps")
    parser.add_argument("--arrivals", type=int, default=100, help="steady: jobs per second")
    args = parser.parse_args()
    if args.mode in ("repeat", "both"):
        measure("32x18x4", 10_000, args.repeat)
        measure("1389x18x4", 100_000, max(3, args.repeat // 4))
    if args.mode in ("steady", "both"):
        steady(f"{args.racks}x18x4", args.queued, args.steps, args.before_steps, args.arrivals)


if __name__ == "__main__":
    main()
