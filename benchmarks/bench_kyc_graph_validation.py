"""KYC case graph validation on the largest bodies the API accepts: time and peak memory.

Shapes (each within the body's limits: 500 parties, 1,000 ownership edges):

* ``fan-20-tail-479``: 20 owners of the tenant, all owned by one 479-party chain (9,600
  ownership chains of ~250 links);
* ``fan-40-tail-240``: the same with 40 branches (9,600 chains of ~120 links);
* ``days-1000``: 1,000 stakes in the tenant, each from its own day;
* ``dense-cycles``: 45 parties each owning 2 % of every other (refused: over 10,000 chains).

``--baseline REF`` also runs the same shapes on the code of ``REF`` (a temporary git
worktree), in the same run, in a subprocess each:

    .venv/bin/python benchmarks/bench_kyc_graph_validation.py --baseline main

Measured (2 shared cores, against main before the attack-kyc fixes, same run):

    shape              code       outcome    seconds  peak MiB
    fan-20-tail-479    this tree  accepted     0.013       0.3
    fan-20-tail-479    main       accepted     0.601      36.8
    fan-40-tail-240    this tree  accepted     0.015       0.1
    fan-40-tail-240    main       accepted     0.139      19.2
    days-1000          this tree  accepted     0.004       0.1
    days-1000          main       accepted     0.400       0.3
    dense-cycles       this tree  refused      0.062       0.1
    dense-cycles       main       refused      0.304       4.7
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import tracemalloc
from datetime import date, timedelta
from decimal import Decimal

from _common import git_tree

SHAPES = ("fan-20-tail-479", "fan-40-tail-240", "days-1000", "dense-cycles")


def _shape(name: str) -> object:
    from gpulease.compliance.case_graph import (
        CaseGraph,
        DeclaredParty,
        DeclaredStake,
        PartyDetails,
    )

    stakes: list[DeclaredStake] = []
    if name.startswith("fan"):
        k, tail = int(name.split("-")[1]), int(name.split("-")[3])
        refs = [f"b{i}" for i in range(k)] + [f"t{j}" for j in range(tail)]
        stakes += [DeclaredStake(f"b{i}", "tenant", Decimal(2)) for i in range(k)]
        stakes += [DeclaredStake("t0", f"b{i}", Decimal(100)) for i in range(k)]
        stakes += [DeclaredStake(f"t{j + 1}", f"t{j}", Decimal(100)) for j in range(tail - 1)]
    elif name == "days-1000":
        refs = [f"p{i}" for i in range(500)]
        first = date(2000, 1, 1)
        stakes += [
            DeclaredStake(f"p{i % 500}", "tenant", Decimal("0.05"), first + timedelta(days=i))
            for i in range(1000)
        ]
    else:
        refs = [f"p{i}" for i in range(45)]
        stakes += [
            DeclaredStake(f"p{i}", f"p{j}", Decimal(2))
            for i in range(45)
            for j in range(45)
            if i != j
        ][:999]
        stakes.append(DeclaredStake("p0", "tenant", Decimal(1)))
    return CaseGraph.build(
        PartyDetails("Org"),
        parties=[DeclaredParty(r, PartyDetails(f"Party {r}")) for r in refs],
        stakes=stakes,
    )


def measure() -> dict[str, dict[str, object]]:
    from gpulease.compliance.case_graph import validate_graph
    from gpulease.domain.errors import InvalidRequest

    out: dict[str, dict[str, object]] = {}
    for name in SHAPES:
        graph = _shape(name)
        start = time.perf_counter()
        try:
            validate_graph(graph)  # type: ignore[arg-type]
            outcome = "accepted"
        except InvalidRequest:
            outcome = "refused"
        seconds = time.perf_counter() - start
        tracemalloc.start()
        with contextlib.suppress(InvalidRequest):
            validate_graph(graph)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[name] = {"seconds": seconds, "peak_mib": peak / (1 << 20), "outcome": outcome}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a git ref to measure beside this tree")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure()))
        return
    runs = {"this tree": measure()}
    if args.baseline:
        with git_tree(args.baseline) as src:
            env = {**os.environ, "PYTHONPATH": str(src)}
            found = subprocess.run(
                [sys.executable, __file__, "--json"], env=env, check=True, capture_output=True
            )
            runs[args.baseline] = json.loads(found.stdout)
    print(f"{'shape':<18} {'code':<10} {'outcome':<9} {'seconds':>8} {'peak MiB':>9}")
    for name in SHAPES:
        for label, figures in runs.items():
            f = figures[name]
            print(
                f"{name:<18} {label:<10} {f['outcome']:<9} {f['seconds']:>8.3f} "
                f"{f['peak_mib']:>9.1f}"
            )


if __name__ == "__main__":
    main()
