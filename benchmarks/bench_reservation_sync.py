"""What keeping leases mirrored as Slurm reservations costs (issue 13).

Two parts:

1. The pure plan (``leasing/reservation_plan.plan``) at the demo site's size (576 nodes of
   4 GPUs) for a number of leases with random overlapping windows: CPU time of a plan
   from nothing (a new leader's first sync) and of the steady state (planned again from
   its own output, as every later sync does), median of ``--repeat`` runs.
2. With ``--slurm`` (a throwaway local Slurm, ``scripts/install-slurm.sh``): a steady-state
   sync of ``--leases`` reservations already in step, Slurm's side only: the executor
   reads every reservation once (``reservations``) then mirrors each lease, either reading
   each one again (``fresh=False``: one ``scontrol show`` per lease, as before) or trusting
   that read (``fresh=True``: what ``services.reservation_sync`` does). Client commands
   and wall time, both measured in this run, alternately, ``--repeat`` times.

    python benchmarks/bench_reservation_sync.py --leases 200 --slurm

The load average is printed beside the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from gpulease.leasing.reservation_plan import PlanLease, PlanNode, plan  # noqa: E402

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def book(leases: int, seed: int) -> tuple[list[PlanNode], list[PlanLease]]:
    rng = random.Random(seed)
    nodes = [PlanNode(f"jkt1-r{r:02d}-n{n:02d}", 4, rng.random() > 0.02) for r in range(32)
             for n in range(18)]  # fmt: skip
    book = []
    for i in range(leases):
        start = T0 + timedelta(hours=rng.randrange(0, 24 * 60))
        hours = rng.randrange(1, 24 * 30)
        book.append(PlanLease(f"lease-{i:05d}", 4 * rng.randrange(1, 40), start,
                              start + timedelta(hours=hours)))  # fmt: skip
    return nodes, book


def cpu(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.process_time() - began)
    return statistics.median(times)


def part_plan(repeat: int) -> None:
    print("plan over 576 nodes (4 GPUs each), CPU ms, median of", repeat)
    print(f"{'leases':>8} {'from nothing':>14} {'steady state':>14} {'nodes reserved':>15}")
    for leases in (50, 200, 800):
        nodes, lease_book = book(leases, seed=leases)
        first = plan(nodes, lease_book)
        previous = {c.lease_id: list(c.nodes) for c in first}
        scratch = cpu(lambda: plan(nodes, lease_book), repeat)  # noqa: B023
        steady = cpu(lambda: plan(nodes, lease_book, previous), repeat)  # noqa: B023
        reserved = sum(len(c.nodes) for c in first)
        print(f"{leases:>8} {scratch * 1000:>14.1f} {steady * 1000:>14.1f} {reserved:>15}")


def part_slurm(leases: int, repeat: int) -> None:
    from gpulease.executors.slurm import SlurmExecutor, SlurmSite
    from support.slurm_cluster import SITE_ID, SLURM_NODES, LocalSlurmCluster

    base = Path(tempfile.mkdtemp(prefix="slb-"))
    cluster = LocalSlurmCluster(nodes=4, gpus_per_node=4, base_dir=base / "c",
                                node_names=SLURM_NODES)  # fmt: skip
    cluster.start()
    try:
        site = SlurmSite(SITE_ID, partition=cluster.partition, conf=cluster.conf_path)
        executor = SlurmExecutor([site])
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
        wanted = []
        for i in range(leases):  # one node each, windows one after another per node
            node = SLURM_NODES[i % len(SLURM_NODES)]
            begin = start + timedelta(hours=i // len(SLURM_NODES))
            wanted.append((f"lease-{i:05d}", [node], begin, begin + timedelta(hours=1)))
        for lease_id, nodes, begin, end in wanted:
            executor.mirror_reservation(lease_id, nodes, begin, end, users=["root"])

        def sync(fresh: bool) -> tuple[int, float]:
            commands, began = executor.commands, time.perf_counter()
            executor.reservations()
            for lease_id, nodes, begin, end in wanted:
                done = executor.mirror_reservation(
                    lease_id, nodes, begin, end, users=["root"], fresh=fresh
                )
                assert done == "unchanged", done
            return executor.commands - commands, time.perf_counter() - began

        rows: dict[bool, list[tuple[int, float]]] = {False: [], True: []}
        for _ in range(repeat):
            for fresh in (False, True):
                rows[fresh].append(sync(fresh))
        print(f"\nsteady-state sync of {leases} reservations in step, local Slurm 22.05, "
              f"median of {repeat}")  # fmt: skip
        print(f"{'':>28} {'commands':>9} {'wall s':>8}")
        for fresh, label in ((False, "one show per lease (before)"), (True, "one read (after)")):
            commands = rows[fresh][0][0]
            wall = statistics.median(w for _, w in rows[fresh])
            print(f"{label:>28} {commands:>9} {wall:>8.2f}")
        for lease_id, *_ in wanted:
            executor.drop_reservation(lease_id)
    finally:
        cluster.cancel_all()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leases", type=int, default=200, help="reservations (--slurm)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--slurm", action="store_true", help="also the Slurm side")
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    part_plan(args.repeat)
    if args.slurm:
        part_slurm(args.leases, args.repeat)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
