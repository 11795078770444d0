"""Benchmark 4: the reference site under a rack-scale mix with leases.

32x18x4 (2,304 GPUs), four tenants with leases covering 75 % of the GPUs plus a spot
tenant, large segmented gangs (64-GPU segments, each inside one NVLink domain) mixed with
small jobs, offered load 0.95, 30 s preemption grace. Targets: utilisation above 90 %,
guaranteed demand never waits longer than one step plus the grace, every fitting job on
the fewest racks possible, measured against the GPUs free at each start
(:mod:`gpulease.sim.locality`; the count against an empty site is printed too).

Each run prints, besides the targets, the bound no scheduler can pass on its input
(``utilization_bound_while_arriving``) and where the GPU-time went
(:mod:`gpulease.sim.occupancy`): busy in gangs or other work, or idle as spare trays beside
a segment, racks blocked by other work, open racks while gangs wait (a packing loss), open
racks with nothing to run. Each configuration runs with blocks kept and not (``--keep-blocks``:
work without a rack requirement leaves free 64-GPU blocks whole when other racks have room,
at the cost of spanning racks). Runs go to a pool of worker processes.

    .venv/bin/python benchmarks/bench_reference_mix.py                 # lease-bound gangs
    .venv/bin/python benchmarks/bench_reference_mix.py --keep-blocks 64 --policies fairshare
    .venv/bin/python benchmarks/bench_reference_mix.py --gang-limit site --seeds 0
    .venv/bin/python benchmarks/bench_reference_mix.py --jobs 3000     # the old, short run
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from _common import peak_rss_mib
from gpulease.inventory.topology import build_cluster, parse_cluster_spec
from gpulease.sim.occupancy import Occupancy
from gpulease.sim.runner import simulate
from gpulease.sim.synthetic import rack_scale_mix, segment_gpus

SPEC = "32x18x4"


@dataclass(frozen=True)
class Case:
    jobs: int
    seed: int
    policy: str
    gang_limit: str
    keep_blocks: int


def run(case: Case) -> dict[str, Any]:
    spec = parse_cluster_spec(SPEC)
    workload = rack_scale_mix(
        spec, jobs=case.jobs, load=0.95, seed=case.seed, gang_limit=case.gang_limit
    )
    first = workload.jobs[0].spec.submit_time
    last = workload.jobs[-1].spec.submit_time
    occupancy = Occupancy(build_cluster(spec, site="sim"), segment_gpus(spec), first, last)
    started = time.perf_counter()
    result = simulate(
        workload,
        spec,
        policy=case.policy,
        grace_s=30.0,
        observe=occupancy,
        keep_blocks=case.keep_blocks,
    )
    occupancy.finish(result.result.end_time)
    return {
        "case": case,
        "figures": result.figures,
        "shares": occupancy.shares(),
        "leased": sum(x.gpus for x in workload.leases),
        "largest": max(j.spec.gpus for j in workload.jobs),
        "wall_s": time.perf_counter() - started,
        "rss_mib": peak_rss_mib(),
    }


def report(out: dict[str, Any]) -> None:
    case: Case = out["case"]
    f, s = out["figures"], out["shares"]
    g, p = f["guarantee_wait"], f["placement"]
    print(
        f"\n{case.jobs:,} jobs, seed {case.seed}, gangs bound by {case.gang_limit} "
        f"(largest {out['largest']:,} GPUs), {out['leased']:,} GPUs leased, "
        f"policy {case.policy}, "
        + (f"keeping {case.keep_blocks}-GPU blocks" if case.keep_blocks else "blocks not kept")
    )
    print(
        f"  utilisation {f['utilization_while_arriving']:.1%} while jobs arrive "
        f"(bound {f['utilization_bound_while_arriving']:.1%}), {f['utilization']:.1%} over "
        f"{f['makespan_s'] / 86400:.0f} days; avg JCT {f['avg_jct_s'] / 3600:,.1f} h; "
        f"preemptions {f['preemptions']:,}"
    )
    print(
        f"  lease-guarantee wait: {g['jobs']:,} jobs, p99 {g['p99_s']:,.0f} s, "
        f"max {g['max_s']:,.0f} s (grace 30 s)"
    )
    over, spread = p["more_racks_by_topology"], p["spread_by_topology"]
    print(
        f"  placement: {p['fewest_free_racks_share']:.2%} of {p['starts']:,} starts on the "
        f"fewest racks the free GPUs allowed (over: required {spread['required']:,}, "
        f"preferred {spread['preferred']:,}, none {spread['none']:,}); "
        f"{p['fewest_racks_share']:.2%} on the fewest an empty site allows (over: required "
        f"{over['required']:,}, preferred {over['preferred']:,}, none {over['none']:,})"
    )
    print(
        "  GPU-time: "
        f"gangs {s['gang']:.1%}, other {s['other']:.1%} | idle: spare trays "
        f"{s['spare']:.1%}, racks blocked by other work {s['blocked']:.1%}, open racks "
        f"while gangs wait {s['open_waiting']:.1%}, open racks, nothing waiting "
        f"{s['open']:.1%}"
    )
    print(f"  wall {out['wall_s']:.1f} s, peak memory {out['rss_mib']:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--policies", default="default,fairshare")
    parser.add_argument("--gang-limit", choices=["lease", "site"], default="lease")
    parser.add_argument(
        "--keep-blocks", default="0,64", help="comma-separated block sizes to keep (0 = off)"
    )
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    blocks = [int(b) for b in args.keep_blocks.split(",")]
    cases = [
        Case(args.jobs, int(seed), policy, args.gang_limit, block)
        for seed in args.seeds.split(",")
        for policy in args.policies.split(",")
        for block in blocks
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        outs = list(pool.map(run, cases))
    for out in outs:
        report(out)
    print(f"\n{len(cases)} runs in {time.perf_counter() - started:.0f} s wall")
    for policy in args.policies.split(","):
        for block in blocks:
            mine = [
                o["figures"]
                for o in outs
                if o["case"].policy == policy and o["case"].keep_blocks == block
            ]
            util = [f["utilization_while_arriving"] for f in mine]
            now = [f["placement"]["fewest_free_racks_share"] for f in mine]
            empty = [f["placement"]["fewest_racks_share"] for f in mine]
            wait = max(f["guarantee_wait"]["max_s"] for f in mine)
            print(
                f"{policy}, keep blocks {block or 'off'}: utilisation {min(util):.1%} to "
                f"{max(util):.1%}, fewest racks free GPUs allowed {min(now):.2%} to "
                f"{max(now):.2%} (empty site {min(empty):.1%} to {max(empty):.1%}), "
                f"guarantee wait max {wait:,.0f} s ({len(mine)} seeds)"
            )


if __name__ == "__main__":
    main()
