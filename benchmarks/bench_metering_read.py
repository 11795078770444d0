"""Benchmark: reading a month of usage (totals by tenant, and every record), before and after.

What is measured. On a fresh PostgreSQL database (dropped at the end) holding one site of
``--racks`` GB200 NVL72 racks and three lease-less tenants, ``--rows`` closed allocation
rows (jobs of 8 GPUs, 10-minute runs one after another on each GPU through March 2026) are
inserted directly. Then, in a fresh process per measurement (so each peak is its own):

* ``summary``: ``services.metering.usage_by_tenant`` for every tenant (the usage page and
  ``GET /usage/summary``);
* ``load``: ``services.metering.load_period`` for every tenant (what an invoice reads).

Per measurement: the process's CPU time (user + system; PostgreSQL's own work is not in it),
the wall time, the growth of its peak RSS over the import-and-connect baseline and the peak
RSS itself (medians of ``--repeat``); and, in one more run of each with ``tracemalloc`` on
(slower, so kept out of the times), the peak of Python's own allocations during the read.
``--baseline REF`` runs the same measurements on REF's ``src`` (a temporary ``git
worktree``), alternating the two sides ``--repeat`` times, and prints the medians side by
side with after/before ratios. Both sides use only entry points both have.

    python benchmarks/bench_metering_read.py --baseline main [--rows 100000] [--repeat 3]

Caveats: the machine has 2 cores shared with other work; CPU time is steadier than wall
time, read the ratios of one run. The figures include building the usage records; the
totals' memory on the paged side is bounded by the page (5,000 rows), on a side that reads
every row at once it grows with the month.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import ROOT, create_pg_database, drop_pg_database, git_tree, side_by_side

MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
NOW = datetime(2026, 4, 2, tzinfo=UTC)
DB_PREFIX = "metering2_bench"
RUN = timedelta(minutes=10)
GPUS_PER_JOB = 8


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _context(url: str, data_dir: Path) -> Any:
    from gpulease.domain.clock import ManualClock
    from gpulease.persistence.db import Database
    from gpulease.services.context import ServiceContext
    from gpulease.settings import Settings

    settings = Settings(database_url=url, data_dir=data_dir)
    return ServiceContext(Database(url), settings=settings, clock=ManualClock(NOW))


def _seed(url: str, racks: int, rows: int) -> str:
    """The site, three tenants, the jobs and ``rows`` allocation rows; the operator's token."""
    from sqlalchemy import insert

    from gpulease.persistence import migrate
    from gpulease.persistence.tables import Gpu, GpuAllocation, Job, Node
    from gpulease.services import identity, inventory

    ctx = _context(url, Path(tempfile.mkdtemp(prefix="meterbench-")))
    migrate.upgrade(ctx.db)
    user, token = identity.bootstrap_operator(ctx, name="Ops", email="ops@bench.example")
    operator = identity.principal_of(user)
    inventory.register_site(
        ctx,
        operator,
        site_id="b1",
        name="Bench",
        country="ID",
        city="Jakarta",
        hardware="gb200-nvl72",
        racks=racks,
        serial_prefix="BENCH",
    )
    tenants = [
        identity.create_tenant(ctx, operator, name=f"Tenant {i}", country="SG", kind="lab").id
        for i in range(3)
    ]
    with ctx.db.transaction(write=False) as tx:
        gpus = [(g.serial, g.node_id, g.slot) for g in tx.all(tx.select(Gpu).order_by(Gpu.serial))]
        nodes = {n.id for n in tx.all(tx.select(Node))}
    assert nodes
    groups = [gpus[i : i + GPUS_PER_JOB] for i in range(0, len(gpus), GPUS_PER_JOB)]
    job_rows: list[dict[str, Any]] = []
    alloc_rows: list[dict[str, Any]] = []
    n = 0
    slot = 0
    while len(alloc_rows) < rows:
        start = MARCH[0] + slot * RUN
        if start + RUN > MARCH[1]:
            raise SystemExit(f"{rows} rows do not fit in March on {len(gpus)} GPUs")
        for group in groups:
            if len(alloc_rows) >= rows:
                break
            tenant = tenants[n % 3]
            job_id = f"job-b{n:08d}"
            n += 1
            job_rows.append(
                {
                    "id": job_id,
                    "tenant_id": tenant,
                    "site_id": "b1",
                    "name": "bench",
                    "gpus": GPUS_PER_JOB,
                    "topology": "preferred",
                    "priority": "normal",
                    "purpose": "scientific-computing",
                    "preemptible": True,
                    "requeueable": True,
                    "state": "succeeded",
                    "submitted_at": start,
                    "started_at": start,
                    "ended_at": start + RUN,
                    "created_by": user.id,
                    "version": 1,
                }
            )
            for serial, node_id, gpu_slot in group:
                alloc_rows.append(
                    {
                        "job_id": job_id,
                        "tenant_id": tenant,
                        "node_id": node_id,
                        "gpu_serial": serial,
                        "slot": gpu_slot,
                        "purpose": "scientific-computing",
                        "start": start,
                        "end": start + RUN,
                        "capacity": "borrowed",
                    }
                )
        slot += 1
    with ctx.db.transaction() as tx:
        for i in range(0, len(job_rows), 5000):
            tx.session.execute(insert(Job), job_rows[i : i + 5000])
        for i in range(0, len(alloc_rows), 5000):
            tx.session.execute(insert(GpuAllocation), alloc_rows[i : i + 5000])
    ctx.db.dispose()
    return token


def _measure(args: argparse.Namespace) -> None:
    """One measurement in this process (its own peak RSS): print a JSON line."""
    from gpulease.metering.periods import Period
    from gpulease.services import identity, metering

    ctx = _context(args.url, Path(tempfile.mkdtemp(prefix="meterbench-")))
    principal = identity.authenticate(ctx, args.token)
    period = Period(*MARCH)
    if args.traced:
        tracemalloc.start()
    base_rss, cpu0, wall0 = _maxrss_mib(), _cpu(), time.perf_counter()
    if args.measure == "summary":
        got = metering.usage_by_tenant(ctx, principal, period)
        seconds = sum(u.total for u in got)
    else:
        usage = metering.load_period(ctx, period, None)
        seconds = sum(r.gpu_seconds for r in usage.records)
    out = {
        "cpu_s": round(_cpu() - cpu0, 3),
        "wall_s": round(time.perf_counter() - wall0, 3),
        "rss_growth_mib": round(_maxrss_mib() - base_rss, 1),
        "peak_rss_mib": round(_maxrss_mib(), 1),
        "gpu_seconds": str(seconds),
    }
    if args.traced:
        out["traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    print(json.dumps(out))
    ctx.db.dispose()


def _run_side(src: Path, url: str, token: str, measure: str, traced: bool) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    argv = [sys.executable, __file__, "--child", measure, "--url", url, "--token", token]
    argv += ["--traced"] if traced else []
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{src}: {measure} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--racks", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="a git ref to measure beside")
    parser.add_argument("--child", choices=("summary", "load"), default=None)
    parser.add_argument("--url", default=None)
    parser.add_argument("--token", default=None)
    parser.add_argument("--traced", action="store_true", help="child: tracemalloc's peak")
    args = parser.parse_args()
    if args.child is not None:
        args.measure = args.child
        _measure(args)
        return
    name, url = create_pg_database(DB_PREFIX)
    try:
        began = time.perf_counter()
        token = _seed(url, args.racks, args.rows)
        print(f"seeded {args.rows:,} allocation rows in {time.perf_counter() - began:.1f} s")
        tree = git_tree(args.baseline) if args.baseline else contextlib.nullcontext(None)
        with tree as before:
            sides = {"after": ROOT / "src"} if before is None else {"before": before}
            sides["after"] = ROOT / "src"
            results: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in sides}
            for _ in range(args.repeat):
                for measure in ("summary", "load"):
                    for side, src in sides.items():  # alternate, so both see the same load
                        got = _run_side(src, url, token, measure, traced=False)
                        results[side].setdefault(measure, []).append(got)
            for measure in ("summary", "load"):  # Python's own peak, in runs of their own
                for side, src in sides.items():
                    got = _run_side(src, url, token, measure, traced=True)
                    results[side][measure][0]["traced_peak_mib"] = got["traced_peak_mib"]
        figures: dict[str, dict[str, Any]] = {}
        for side, by_measure in results.items():
            figures[side] = {}
            for measure, runs in by_measure.items():
                figures[side][measure] = {
                    k: statistics.median(float(r[k]) for r in runs)
                    for k in ("cpu_s", "wall_s", "rss_growth_mib", "peak_rss_mib")
                }
                figures[side][measure]["traced_peak_mib"] = runs[0]["traced_peak_mib"]
                totals = {r["gpu_seconds"] for r in runs}
                assert len(totals) == 1, totals
                figures[side][measure]["gpu_seconds"] = totals.pop()
        gpu_seconds = {f[m]["gpu_seconds"] for f in figures.values() for m in f}
        assert len(gpu_seconds) == 1, f"the sides disagree: {gpu_seconds}"
        print(f"GPU-seconds read (every side, every measure): {gpu_seconds.pop()}")
        print(f"load average: {os.getloadavg()}")
        rows = tuple(
            (f"{m} {k}", f"{m}.{k}")
            for m in ("summary", "load")
            for k in ("cpu_s", "wall_s", "rss_growth_mib", "peak_rss_mib", "traced_peak_mib")
        )
        print(side_by_side(figures, rows))
    finally:
        drop_pg_database(name)


if __name__ == "__main__":
    main()
