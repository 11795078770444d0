"""Benchmark 4: the reference site under a rack-scale mix with leases.

32x18x4 (2,304 GPUs), four tenants with leases covering 75 % of the GPUs plus a spot
tenant, large segmented gangs (64-2,048 GPUs, 64-GPU segments inside one NVLink domain)
mixed with small jobs, offered load 0.95, default policy, 30 s preemption grace.
Targets: utilization above 90 %, guaranteed demand never waits longer than one step plus
the grace, every fitting job on the fewest racks possible.

    .venv/bin/python benchmarks/bench_reference_mix.py [--jobs 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

from _common import peak_rss_mib
from gpulease.inventory.topology import parse_cluster_spec
from gpulease.sim.runner import simulate
from gpulease.sim.synthetic import rack_scale_mix


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", default="default")
    args = parser.parse_args()
    spec = parse_cluster_spec("32x18x4")
    workload = rack_scale_mix(spec, jobs=args.jobs, load=0.95, seed=args.seed)
    started = time.perf_counter()
    run = simulate(workload, spec, policy=args.policy, grace_s=30.0)
    wall = time.perf_counter() - started
    f = run.figures
    g = f["guarantee_wait"]
    p = f["placement"]
    print(
        f"{len(workload.jobs):,} jobs, {len(workload.leases)} leases "
        f"({sum(x.gpus for x in workload.leases):,} GPUs guaranteed), policy {args.policy}"
    )
    print(
        f"utilization {f['utilization_while_arriving']:.1%} while jobs arrive, "
        f"{f['utilization']:.1%} over a makespan of {f['makespan_s'] / 86400:.1f} "
        f"days; avg JCT {f['avg_jct_s'] / 3600:,.1f} h; preemptions {f['preemptions']:,}"
    )
    print(
        f"utilization bound: no scheduler can exceed "
        f"{f['utilization_bound_while_arriving']:.1%} while jobs arrive on this input "
        f"(fluid server, no gangs, no topology)"
    )
    print(
        f"lease-guarantee wait: {g['jobs']:,} jobs waited within a guarantee; "
        f"p99 {g['p99_s']:,.0f} s, max {g['max_s']:,.0f} s (grace 30 s)"
    )
    print(
        f"placement: {p['fewest_racks_share']:.1%} of {p['starts']:,} starts on the fewest "
        f"racks a job needs on an empty site; {p['multi_rack_starts']:,} multi-rack starts"
    )
    print(f"wall {wall:.1f} s, peak memory {peak_rss_mib():,.0f} MiB")


if __name__ == "__main__":
    main()
