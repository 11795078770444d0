"""Sweep random reclaim cases: does guaranteed demand ever wait longer than the grace?

Each case (seeded) is a small site (1-4 racks of 1-4 nodes of 1-8 GPUs) that borrowers
(``spot``, which leases nothing, and ``other``, which leases what ``owner`` does not) fill
at t=0 with jobs of any locality request, lasting 50-500 s. ``owner`` then submits jobs
totalling at most its guarantee, at random times between 10 and 100 s. Grace 30 s. A case
fails when an owner job waits within its guarantee longer than the grace (the loop's
``guarantee_wait``). This is the domain of the reclaim property test in
``tests/scheduler/test_properties.py``, drawn many more times than CI can afford; a failure
prints its seed and policy so it can be replayed.

    .venv/bin/python benchmarks/sweep_reclaim.py                  # seeds 0-19,999
    .venv/bin/python benchmarks/sweep_reclaim.py --seeds 5000 --policies fifo
"""

from __future__ import annotations

import argparse
import random
import time

from rich.progress import track

from gpulease.domain.models import JobSpec, LeaseGuarantee, TopologyMode, TopologyRequest
from gpulease.inventory.topology import ClusterSpec, build_cluster
from gpulease.scheduler.engine import Scheduler, SchedulerConfig
from gpulease.scheduler.ordering import make_policy
from gpulease.scheduler.placement import never_fits
from gpulease.sim.loop import Simulation
from gpulease.sim.workload import TraceJob, Workload

GRACE = 30.0


def case(seed: int) -> tuple[ClusterSpec, list[TraceJob], list[str], list[LeaseGuarantee]]:
    rng = random.Random(seed)
    spec = ClusterSpec(rng.randint(1, 4), rng.randint(1, 4), rng.randint(1, 8))
    cluster = build_cluster(spec)
    total, node, rack = (
        spec.total_gpus,
        spec.gpus_per_node,
        spec.nodes_per_rack * spec.gpus_per_node,
    )
    jobs: list[TraceJob] = []
    for n in range(rng.randint(1, 8)):
        gpus = rng.choice([rng.randint(1, node), rng.randint(1, rack), rng.randint(1, total)])
        mode = rng.choice(list(TopologyMode))
        job = JobSpec(
            f"s{n}", rng.choice(["spot", "other"]), gpus, 0.0, topology=TopologyRequest(mode)
        )
        if never_fits(job, cluster) is None:
            jobs.append(TraceJob(job, float(rng.randint(50, 500))))
    guarantee = rng.randint(1, total)
    owner: list[str] = []
    left = guarantee
    while left and (not owner or rng.random() < 0.8):
        gpus = rng.randint(1, left)
        job = JobSpec(
            f"o{len(owner)}",
            "owner",
            gpus,
            float(rng.randint(10, 100)),
            topology=TopologyRequest(TopologyMode.NONE),
        )
        jobs.append(TraceJob(job, float(rng.randint(50, 500))))
        owner.append(job.id)
        left -= gpus
    leases = [LeaseGuarantee("lease-owner", "owner", guarantee, 0.0, 1e6)]
    if total > guarantee:
        leases.append(LeaseGuarantee("lease-other", "other", total - guarantee, 0.0, 1e6))
    return spec, jobs, owner, leases


def late_jobs(seed: int, policy: str) -> list[tuple[str, float]]:
    spec, jobs, owner, leases = case(seed)
    scheduler = Scheduler(
        make_policy(policy), SchedulerConfig(preemption_grace_s=GRACE, explain=False)
    )
    result = Simulation(
        build_cluster(spec), Workload(f"reclaim-{seed}", jobs, leases), scheduler
    ).run()
    waits = [(name, result.outcomes[name].guarantee_wait or 0.0) for name in owner]
    return [(name, wait) for name, wait in waits if wait > GRACE + 1e-9]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20_000)
    parser.add_argument("--policies", default="fifo,fairshare,default")
    args = parser.parse_args()
    policies = args.policies.split(",")
    started = time.perf_counter()
    failed = 0
    for seed in track(range(args.seeds), description="reclaim cases"):
        for policy in policies:
            late = late_jobs(seed, policy)
            if late:
                failed += 1
                if failed <= 20:
                    print(
                        f"seed {seed}, {policy}: "
                        + ", ".join(f"{n} waited {w:.0f} s" for n, w in late)
                    )
    runs = args.seeds * len(policies)
    print(
        f"{failed:,} of {runs:,} cases had guaranteed demand wait longer than the {GRACE:.0f} s "
        f"grace ({time.perf_counter() - started:.0f} s wall)"
    )


if __name__ == "__main__":
    main()
