"""Benchmark: what several sites cost the control plane (CPU time, SQLite in-process).

What is measured, on a fresh SQLite file holding the demo (Jakarta, 32 GB200 NVL72 racks),
with or without its three regional HGX sites (``services.demo_sites``):

* an idle scheduler pass (``LiveScheduler.tick``, nothing queued): Jakarta alone against the
  four sites (each site's pass, its own admission under its packs, the per-site re-screening
  check);
* ``jobs.submit`` of an 8-GPU job naming its site against one dispatched among the four sites
  (``services.sites.choose``: one read of the tenant and one statement of the sites' rows
  and sums, then ``sites.decide``: admission and policy per site kept per standing, site,
  pack set and day, and the pure ``scheduler.dispatch``).

CPU time (``time.process_time``) of this process, which includes SQLite's work; the machine's
2 cores are shared, so wall time is not reported.

    python benchmarks/bench_sites.py [--passes 30] [--submits 100]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from gpulease.domain.clock import ManualClock
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.services import demo, identity, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import Settings

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _demo(root: Path, *, regional: bool) -> tuple[ServiceContext, ManualClock, list[demo.DemoUser]]:
    db = Database(f"sqlite:///{root}/bench.db")
    migrate.upgrade(db)
    clock = ManualClock(START)
    settings = Settings(data_dir=root / "var", token_ttl_days=3650)
    ctx = ServiceContext(db, settings=settings, clock=clock)
    return ctx, clock, demo.create_demo(ctx, regional_sites=regional)


def idle_pass_ms(regional: bool, passes: int) -> float:
    root = Path(tempfile.mkdtemp())
    try:
        ctx, clock, _users = _demo(root, regional=regional)
        scheduler = LiveScheduler(ctx, SimulatedExecutor(), name="bench")
        scheduler.tick()  # builds every site's state
        began = time.process_time()
        for _ in range(passes):
            clock.advance(1)
            scheduler.tick()
        ctx.db.dispose()
        return (time.process_time() - began) / passes * 1000
    finally:
        shutil.rmtree(root)


def submit_ms(submits: int) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp())
    try:
        ctx, _clock, users = _demo(root, regional=True)
        token = next(u.token for u in users if u.email == "admin@inftech.example")
        inftech = identity.authenticate(ctx, token)

        def run(**where: str) -> float:
            sub = jobs.JobSubmission(
                gpus=8, purpose="financial-services-ai", command="x", duration_s=60, **where
            )
            jobs.submit(ctx, inftech, sub)  # warm the memos
            began = time.process_time()
            for _ in range(submits):
                jobs.submit(ctx, inftech, sub)
            return (time.process_time() - began) / submits * 1000

        named, dispatched = run(site_id="jkt1"), run()
        ctx.db.dispose()
        return named, dispatched
    finally:
        shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=30)
    parser.add_argument("--submits", type=int, default=100)
    args = parser.parse_args()
    alone, four = idle_pass_ms(False, args.passes), idle_pass_ms(True, args.passes)
    print(f"idle pass: Jakarta alone {alone:.1f} ms CPU; four sites {four:.1f} ms CPU")
    named, dispatched = submit_ms(args.submits)
    print(f"submit: naming its site {named:.2f} ms CPU; dispatched among four {dispatched:.2f}")


if __name__ == "__main__":
    main()
