"""Benchmark 2: simulator speed on the whole Philly trace.

All 82,247 jobs on 32x18x4 (2,304 GPUs) at offered load 0.9, default policy. Prints wall
time (loading included) and peak memory. Target: under 60 s and 2 GiB on 2 cores.

    .venv/bin/python benchmarks/bench_sim_speed.py [--policy NAME] [--first N]
"""

from __future__ import annotations

import argparse
import time

from _common import PHILLY, peak_rss_mib
from gpulease.inventory.topology import parse_cluster_spec
from gpulease.sim.runner import simulate
from gpulease.sim.traces import compress_to_load, load_trace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", default="default")
    parser.add_argument("--first", type=int, default=None)
    args = parser.parse_args()
    spec = parse_cluster_spec("32x18x4")
    started = time.perf_counter()
    workload = load_trace(PHILLY, "philly", first=args.first)
    workload = compress_to_load(workload, spec.total_gpus, 0.9)
    loaded = time.perf_counter()
    run = simulate(workload, spec, policy=args.policy)
    done = time.perf_counter()
    f = run.figures
    print(f"jobs: {f['jobs']:,} on {spec} ({spec.total_gpus:,} GPUs), policy {args.policy}")
    print(
        f"load: {loaded - started:.1f} s, simulate: {done - loaded:.1f} s, "
        f"total wall: {done - started:.1f} s, peak memory: {peak_rss_mib():,.0f} MiB"
    )
    print(
        f"steps: {f['steps']:,}, avg JCT {f['avg_jct_s']:,.0f} s, "
        f"utilization {f['utilization_while_arriving']:.1%} while jobs arrive "
        f"({f['utilization']:.1%} over the makespan), preemptions {f['preemptions']:,}"
    )


if __name__ == "__main__":
    main()
