"""Policies across Philly virtual clusters: is ``las-gang`` better than ``las`` beyond ee9e8c?

For each of the largest virtual clusters: its first 1,000 jobs of at least 60 s, submit
times rebased to 0, on 4x5x8 (160 GPUs), grace 0 (the Tiresias set-up of bench_tiresias.py).
Prints the average JCT of each policy and the ratio of ``las-gang`` to ``las``.

    .venv/bin/python benchmarks/bench_policies_by_vc.py
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from _common import PHILLY
from gpulease.inventory.topology import parse_cluster_spec
from gpulease.sim.runner import simulate
from gpulease.sim.traces import load_trace

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
POLICIES = ("las", "las-gang", "default")


def main() -> None:
    spec = parse_cluster_spec("4x5x8")
    table = Table(title="average JCT (s), first 1,000 jobs >= 60 s of each VC, 4x5x8")
    for column in ("VC", "jobs", *POLICIES, "las-gang / las"):
        table.add_column(column, justify="left" if column == "VC" else "right")
    for vc in VCS:
        workload = load_trace(PHILLY, "philly", tenant=vc, min_duration=60, first=1000)
        jct = {
            p: simulate(workload, spec, policy=p, grace_s=0.0).figures["avg_jct_s"]
            for p in POLICIES
        }
        table.add_row(
            vc,
            f"{len(workload.jobs):,}",
            *(f"{jct[p]:,.0f}" for p in POLICIES),
            f"{jct['las-gang'] / jct['las']:.3f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
