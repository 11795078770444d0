"""Benchmark 1: schedule quality against Tiresias (NSDI'19) on the same input.

Input: the first 1,000 jobs of Philly virtual cluster ee9e8c with duration >= 60 s, submit
times rebased to 0, on 4x5x8 (160 GPUs), no preemption grace. Tiresias' own simulator on
exactly this input: FIFO 330,125 s, dlas-gpu 179,256 s, shortest-first oracle 144,469 s.

    .venv/bin/python benchmarks/bench_tiresias.py
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from _common import PHILLY
from gpulease.inventory.topology import parse_cluster_spec
from gpulease.sim.runner import simulate
from gpulease.sim.traces import load_trace

TIRESIAS = {"fifo": 330_125.0, "dlas-gpu": 179_256.0, "srtf oracle": 144_469.0}
POLICIES = (
    "fifo",
    "easy",
    "fairshare",
    "las",
    "default",
    "las-gang",
    "tiresias-dlas-gpu",  # the reference mode: Tiresias' own scheduler (gpulease.sim.tiresias)
    "tiresias-srtf",  # its clairvoyant oracle
)


def main() -> None:
    workload = load_trace(PHILLY, "philly", tenant="ee9e8c", min_duration=60, first=1000)
    spec = parse_cluster_spec("4x5x8")
    table = Table(title="ee9e8c, first 1,000 jobs >= 60 s, 4x5x8 (160 GPUs)")
    for column in ("policy", "avg JCT (s)", "p99 JCT (s)", "preemptions", "vs dlas-gpu", "wall"):
        table.add_column(column, justify="right" if column != "policy" else "left")
    for name, figure in TIRESIAS.items():
        table.add_row(f"Tiresias {name}", f"{figure:,.0f}", "", "", "", "")
    for policy in POLICIES:
        started = time.perf_counter()
        run = simulate(workload, spec, policy=policy, grace_s=0.0)
        wall = time.perf_counter() - started
        f = run.figures
        ratio = f["avg_jct_s"] / TIRESIAS["dlas-gpu"]
        table.add_row(
            f"gpulease {policy}",
            f"{f['avg_jct_s']:,.0f}",
            f"{f['p99_jct_s']:,.0f}",
            f"{f['preemptions']:,}",
            f"{ratio:.3f}x",
            f"{wall:.1f} s",
        )
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
