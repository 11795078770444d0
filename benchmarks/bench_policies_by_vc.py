"""Policies across Philly virtual clusters, sizes and trace lengths, against Tiresias.

For each virtual cluster: its first N jobs (1,000 or 3,000) of at least 60 s, submit times
rebased to 0 (the conversion of bench_tiresias.py), grace 0, on several cluster sizes: the
160 GPUs of bench_tiresias.py (4x5x8) and fractions of the VC's *peak demand* (the most
GPUs its jobs would hold at once if each started on arrival; rounded up to whole 8-GPU
nodes and at least the largest job). At 1x peak and above no job ever waits under a
work-conserving policy, so every policy scores the same there: those columns check that
nothing is lost, the fractions below 1x are where policies differ.

Prints the average JCT of FIFO, the reference (``tiresias-dlas-gpu``: Tiresias' own
scheduler, reproduced exactly, see ``gpulease.sim.tiresias``), ``las``, ``las-gang``,
``default`` and the SRTF oracle (``tiresias-srtf``, clairvoyant), and each policy's ratio
to the reference (< 1: better than Tiresias).

    .venv/bin/python benchmarks/bench_policies_by_vc.py                    # everything
    .venv/bin/python benchmarks/bench_policies_by_vc.py --jobs 1000 --vcs ee9e8c,b436b2 \\
        --sizes 160,0.5
"""

from __future__ import annotations

import argparse
import math

from rich.console import Console
from rich.table import Table

from _common import PHILLY
from gpulease.inventory.topology import parse_cluster_spec
from gpulease.sim.runner import simulate
from gpulease.sim.traces import load_trace
from gpulease.sim.workload import Workload

VCS = (
    "ee9e8c",
    "6214e9",
    "11cb48",
    "6c71a0",
    "b436b2",
    "103959",
    "0e4a51",
    "ed69ec",
    "7f04ca",
    "2869ce",
    "e13805",
)
POLICIES = ("fifo", "tiresias-dlas-gpu", "las", "las-gang", "default", "tiresias-srtf")
SHORT = {"tiresias-dlas-gpu": "reference", "tiresias-srtf": "SRTF oracle"}
SIZES = ("160", "0.25", "0.5", "1", "2")  # "160": 4x5x8; a fraction: of the peak demand


def peak_demand(workload: Workload) -> int:
    """The most GPUs the jobs would hold at once if each started when it arrived."""
    changes = sorted(
        [(j.spec.submit_time, j.spec.gpus) for j in workload.jobs]
        + [(j.spec.submit_time + j.duration, -j.spec.gpus) for j in workload.jobs]
    )  # at one instant, ends (negative) sort before starts
    held = peak = 0
    for _, gpus in changes:
        held += gpus
        peak = max(peak, held)
    return peak


def cluster_for(size: str, workload: Workload) -> str:
    if size == "160":
        return "4x5x8"
    largest = max(j.spec.gpus for j in workload.jobs)
    gpus = max(largest, 8 * math.ceil(float(size) * peak_demand(workload) / 8))
    return f"1x{math.ceil(gpus / 8)}x8"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="1000,3000", help="first N jobs of each VC")
    parser.add_argument("--vcs", default=",".join(VCS))
    parser.add_argument("--sizes", default=",".join(SIZES), help="160 or a fraction of peak")
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    policies = args.policies.split(",")
    reference = "tiresias-dlas-gpu"
    for first in (int(n) for n in args.jobs.split(",")):
        table = Table(title=f"average JCT (s), first {first:,} jobs >= 60 s of each VC, grace 0")
        columns = ["VC", "jobs", "size", "GPUs", *(SHORT.get(p, p) for p in policies)]
        ratios = [p for p in ("las", "las-gang", "default") if p in policies]
        if reference in policies:
            columns += [f"{p} / ref" for p in ratios]
        for column in columns:
            table.add_column(column, justify="left" if column in ("VC", "size") else "right")
        for vc in args.vcs.split(","):
            workload = load_trace(PHILLY, "philly", tenant=vc, min_duration=60, first=first)
            for size in args.sizes.split(","):
                spec = parse_cluster_spec(cluster_for(size, workload))
                jct = {
                    p: simulate(workload, spec, policy=p, grace_s=0.0).figures["avg_jct_s"]
                    for p in policies
                }
                row = [
                    vc,
                    f"{len(workload.jobs):,}",
                    "4x5x8" if size == "160" else f"{size}x peak",
                    f"{spec.total_gpus:,}",
                    *(f"{jct[p]:,.0f}" for p in policies),
                ]
                if reference in policies:
                    row += [f"{jct[p] / jct[reference]:.3f}" for p in ratios]
                table.add_row(*row)
        Console(width=200).print(table)


if __name__ == "__main__":
    main()
