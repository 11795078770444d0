"""Benchmark: what custody and location attestation cost the control plane.

What is measured, on a fresh database (PostgreSQL by default, dropped at the end; ``--sqlite``
for a file in a temporary directory) holding one GB200 NVL72 site of ``--racks`` racks (32
is the demo's 2,304 GPUs) with the demo's reference chain recorded for every chip and rack:

* recording the reference chain (5 events per chip, 5 per rack), events per second;
* the executor's sweep (``services.attestation.sweep``: every node seen at its site) and
  the check (``check``) per interval: the first sweep (inserts) and later ones (updates);
* a scheduler pass (``LiveScheduler.tick``) that sweeps, against the same pass with the
  attestor switched off (before / after in the same run, alternating, ``--passes`` each);
* a node agent's signed statement accepted end to end (``attestation.submit``: verify,
  store, audit, check the node), per second, and the pure signature check alone;
* the story of one chip (``custody.story``), milliseconds.

    python benchmarks/bench_attestation.py [--racks 32] [--passes 5] [--sqlite]

Caveats: the machine's 2 cores are shared with PostgreSQL and other work; figures are
medians of a few repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from _common import create_pg_database, drop_pg_database
from gpulease.domain.clock import ManualClock
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.inventory.attestation import Statement, sign, signature_valid
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.persistence.tables import Node
from gpulease.services import attestation, custody, demo, identity, inventory
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import Settings

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def run(url: str, racks: int, passes: int) -> None:
    db = Database(url)
    migrate.upgrade(db)
    clock = ManualClock(START)
    ctx = ServiceContext(db, settings=Settings(database_url=url), clock=clock)
    admin, _token = identity.bootstrap_operator(ctx, name="ops", email="ops@bench.example")
    operator = identity.principal_of(admin)
    inventory.register_site(
        ctx,
        operator,
        site_id=demo.SITE_ID,
        name="bench site",
        country="ID",
        city="Jakarta",
        hardware="gb200-nvl72",
        racks=racks,
        serial_prefix="AIV-NVL72",
    )
    with ctx.db.transaction(write=False) as tx:
        nodes = len(tx.all(tx.select(Node)))
    gpus = nodes * 4
    events = (gpus + racks) * 5
    took = timed(lambda: demo.record_reference_chain(ctx, operator, demo.SITE_ID))
    print(f"site: {racks} racks, {nodes} nodes, {gpus} GPUs; database {url.split(':')[0]}")
    print(f"reference chain: {events:,} events in {took:.2f} s = {events / took:,.0f} events/s")

    executor = SimulatedExecutor()
    first = timed(lambda: attestation.sweep(ctx, executor, clock.now()))
    check_first = timed(lambda: attestation.check(ctx, clock.now()))
    sweeps, checks = [], []
    for _ in range(passes):
        clock.advance(60)
        sweeps.append(timed(lambda: attestation.sweep(ctx, executor, clock.now())))
        checks.append(timed(lambda: attestation.check(ctx, clock.now())))
    print(
        f"executor sweep of {nodes} nodes: first {first * 1000:.0f} ms, then median "
        f"{statistics.median(sweeps) * 1000:.0f} ms; check: first {check_first * 1000:.0f} "
        f"ms, then median {statistics.median(checks) * 1000:.0f} ms"
    )

    scheduler = LiveScheduler(ctx, executor, name="bench")
    scheduler.tick()  # build the kept state
    on, off = [], []
    real_tick = scheduler.attestor.tick
    for _ in range(passes):
        for attest, into in ((False, off), (True, on)):
            clock.advance(ctx.settings.attestation_interval_s)
            scheduler.attestor.tick = real_tick if attest else (lambda now: [])
            into.append(timed(scheduler.tick))
    print(
        f"scheduler pass with a sweep due: median {statistics.median(on) * 1000:.0f} ms with "
        f"the attestor, {statistics.median(off) * 1000:.0f} ms without (same run, "
        f"{passes} each, alternating)"
    )

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    node_id = f"{demo.SITE_ID}-r00-n00"
    attestation.register_key(ctx, operator, node_id, public.hex())
    statements = []
    clock.advance(1)  # past the node's last (executor) attestation
    for i in range(200):
        statements.append(Statement(node_id, demo.SITE_ID, clock.now(), f"{i:032x}"))
        clock.advance(0.001)
    signed = [(s, sign(key, s)) for s in statements]
    took = timed(lambda: [signature_valid(public, s, sig) for s, sig in signed])
    print(f"signature check (pure): {len(signed) / took:,.0f} statements/s")
    took = timed(lambda: [attestation.submit(ctx, s.as_dict(), sig) for s, sig in signed])
    print(f"agent statement accepted end to end: {len(signed) / took:,.0f} statements/s")
    stories = [timed(lambda: custody.story(ctx, operator, "AIV-NVL72-G000000")) for _ in range(5)]
    print(f"story of one chip: median {statistics.median(stories) * 1000:.0f} ms")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--racks", type=int, default=32)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    if args.sqlite:
        with tempfile.TemporaryDirectory() as folder:
            run(f"sqlite:///{Path(folder) / 'bench.db'}", args.racks, args.passes)
        return
    name, url = create_pg_database("gpulease_bench_custody")
    try:
        run(url, args.racks, args.passes)
    finally:
        drop_pg_database(name)


if __name__ == "__main__":
    sys.exit(main())
