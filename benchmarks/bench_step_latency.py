"""Benchmark 3: latency of one scheduling step at scale.

Two cases: 2,304 GPUs (32 NVL72 racks) with 10,000 queued jobs, and 100,008 GPUs (1,389
racks) with 100,000 queued jobs. The cluster is first filled to ~97 % with running jobs of
mixed sizes and attained service; then ``Scheduler.step`` is timed repeatedly on that same
state (decisions are not applied, so every step sees the same input). The first step also
builds the running-jobs index and is reported apart. Default policy, reasons explained.

    .venv/bin/python benchmarks/bench_step_latency.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from _common import peak_rss_mib
from gpulease.domain.models import JobSpec
from gpulease.inventory.topology import build_cluster, parse_cluster_spec
from gpulease.scheduler.engine import Scheduler, SchedulerConfig, apply_decisions
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.state import SchedulerState
from gpulease.sim.metrics import percentile

SIZES = (1, 1, 1, 2, 4, 4, 8, 8, 16, 32, 64)


def build(spec_text: str, queued: int, seed: int) -> tuple[SchedulerState, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    measure("32x18x4", 10_000, args.repeat)
    measure("1389x18x4", 100_000, max(3, args.repeat // 4))


if __name__ == "__main__":
    main()
