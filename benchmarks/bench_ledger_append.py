"""Ledger appends under concurrent writers on PostgreSQL, and the ledger's checks on the database.

In one run, on a throwaway PostgreSQL database, ``--writers`` threads (default 16, each with
its own connection) commit ``--transactions`` transactions each, every one writing
``--records`` audit records through the session (``services.audit.record``), in modes:

* ``before``: the audit insert alone, the ledger hooks removed from the session factory;
* ``counter``: the ledger before its sequencer (migration 0012): the counter row taken at
  the end of each transaction (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` and the
  entries, one statement), held through the commit;
* ``advisory``: that design's alternative, a transaction-level advisory lock, then the size
  read (``max(position)``), then the entries (two statements more);
* ``sequencer``: the ledger as shipped: each transaction queues its records
  (``ledger_pending``, no lock) and a sequencer thread (its own connection, every
  ``--sequencer-interval`` s, as the scheduler's) gives them positions; the longest wait for
  a position seen by the sequencer, and the time to drain the queue after the writers end,
  are printed.

For each it prints appends/s and commits/s (wall time, all writers), the CPU time a commit
cost this process (writers and sequencer) and the database's backends (``/proc``: the
steadier figure on a loaded machine), and checks the positions are gapless. Then, on
everything written: ``services.ledger.verify`` (all leaves recomputed from the audit rows),
``sign_head`` and inclusion-proof times and sizes through the service. Figures are printed,
never judged (a shared machine is noisy). The server's ``synchronous_commit`` is left as
configured (printed): the counter lock is held through the commit, so its flush is in the
serialised part.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_ledger_append.py \
        [--writers 16] [--transactions 60] [--records 1]
        [--modes before,counter,advisory,sequencer] [--sequencer-interval 0.25] [--rounds 1]
        [--async-commit]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, insert, text
from sqlalchemy.orm import Session

from _common import create_pg_database, drop_pg_database
from gpulease.domain.access import Principal, Role
from gpulease.domain.clock import ManualClock
from gpulease.persistence import ledger_store, migrate
from gpulease.persistence.db import Database
from gpulease.persistence.tables import LedgerEntry
from gpulease.services import audit, ledger, ledger_proofs, ledger_sequencer
from gpulease.services.context import ServiceContext
from gpulease.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_HOOKS = (
    ("after_flush", ledger_store.collect_flushed),
    ("after_soft_rollback", ledger_store.note_rollback),
    ("before_commit", ledger_store.queue_on_commit),
)
_PG_COUNTER_APPEND = text(  # migration 0012's append, in the writer's transaction
    "WITH pos AS ("
    "INSERT INTO ledger_state (id, size) VALUES (1, :n) "
    "ON CONFLICT (id) DO UPDATE SET size = ledger_state.size + excluded.size "
    "RETURNING size - :n AS start) "
    "INSERT INTO ledger_entries (position, audit_id, leaf_hash) "
    "SELECT pos.start + x.n - 1, CAST(x.e ->> 0 AS BIGINT), decode(x.e ->> 1, 'hex') "
    "FROM pos, json_array_elements(CAST(:rows AS json)) WITH ORDINALITY AS x(e, n)"
)


def _counter_append(session: Session, entries: Sequence[tuple[int, bytes]]) -> None:
    """Before the sequencer: the counter row bumped and the entries inserted, last."""
    rows = json.dumps([[audit_id, leaf.hex()] for audit_id, leaf in sorted(entries)])
    session.execute(_PG_COUNTER_APPEND, {"n": len(entries), "rows": rows})


def _advisory_append(session: Session, entries: Sequence[tuple[int, bytes]]) -> None:
    """The alternative: an advisory lock, the size read, the entries inserted."""
    session.execute(text("SELECT pg_advisory_xact_lock(815)"))
    start = int(
        session.execute(
            text("SELECT coalesce(max(position) + 1, 0) FROM ledger_entries")
        ).scalar_one()
    )
    session.execute(
        insert(LedgerEntry),
        [
            {"position": start + i, "audit_id": a, "leaf_hash": leaf}
            for i, (a, leaf) in enumerate(sorted(entries))
        ],
    )


_TICKS = os.sysconf("SC_CLK_TCK")


def _backends_cpu_s(db: Database) -> float:
    """CPU seconds so far of the PostgreSQL backends serving ``db``'s database (this host)."""
    with db.connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalars()
        total = 0.0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


class _Sequencer(threading.Thread):
    """The scheduler's sequencer thread, noting the longest wait it saw."""

    def __init__(self, ctx: ServiceContext, interval_s: float) -> None:
        super().__init__(name="bench-sequencer", daemon=True)
        self.ctx, self.interval_s = ctx, interval_s
        self.stop = threading.Event()
        self.longest_s = 0.0
        self.placed = 0

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.once()

    def once(self) -> None:
        with self.ctx.db.transaction(write=False) as tx:
            oldest = ledger_store.waiting(tx.session, limit=1)
        if oldest:
            self.longest_s = max(self.longest_s, oldest[0].age_s)
        self.placed += ledger_sequencer.sequence(self.ctx)


def run_mode(
    db: Database, mode: str, writers: int, transactions: int, records: int, interval_s: float
) -> dict[str, float]:
    original = ledger_store.queue
    sequencer = _Sequencer(ServiceContext(db), interval_s)
    if mode == "before":
        for name, hook in _HOOKS:
            event.remove(db._sessions, name, hook)
    elif mode == "advisory":
        ledger_store.queue = _advisory_append  # type: ignore[assignment]
    elif mode == "counter":
        ledger_store.queue = _counter_append  # type: ignore[assignment]
    else:
        sequencer.start()
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers + 1)
    latencies: list[float] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        mine: list[float] = []
        try:
            barrier.wait()
            for n in range(transactions):
                began = time.perf_counter()
                with db.transaction() as tx:
                    for r in range(records):
                        audit.record(
                            tx,
                            at=T0,
                            actor=f"writer-{w}",
                            action="bench.append",
                            subject_type="bench",
                            subject_id=f"w{w}-{n}-{r}",
                            after={"n": n, "r": r, "mode": mode},
                            reason="benchmark",
                        )
                mine.append(time.perf_counter() - began)
        except BaseException as error:
            errors.append(error)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    pg_cpu, cpu = _backends_cpu_s(db), time.process_time()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    ledger_store.queue = original  # type: ignore[assignment]
    drain_s = 0.0
    if mode == "sequencer":
        sequencer.stop.set()
        sequencer.join()
        sequencer.once()  # what the writers' last commits left
        drain_s = time.perf_counter() - began - took
    cpu, pg_cpu = time.process_time() - cpu, _backends_cpu_s(db) - pg_cpu
    if mode == "advisory":  # it kept no counter: set it, for the modes after it
        with db.connect() as conn:
            conn.execute(
                text(
                    "INSERT INTO ledger_state (id, size) SELECT 1, count(*) FROM ledger_entries "
                    "ON CONFLICT (id) DO UPDATE SET size = excluded.size"
                )
            )
            conn.commit()
    if mode == "before":
        for name, hook in _HOOKS:
            event.listen(db._sessions, name, hook)
    if errors:
        raise errors[0]
    latencies.sort()
    commits = writers * transactions
    return {
        "appends_per_s": commits * records / took,
        "commits_per_s": commits / took,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "seconds": took,
        "longest_wait_ms": 1000 * sequencer.longest_s,
        "drain_s": drain_s,
        "cpu_ms": 1000 * cpu / commits,  # this process (writers and sequencer), a commit
        "pg_cpu_ms": 1000 * pg_cpu / commits,  # the database's backends, a commit
    }


def gapless(db: Database) -> tuple[int, bool]:
    with db.connect() as conn:
        count, low, high = conn.execute(
            text("SELECT count(*), min(position), max(position) FROM ledger_entries")
        ).one()
    return int(count), count == 0 or (low == 0 and high == count - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--transactions", type=int, default=60)
    parser.add_argument("--records", type=int, default=1)
    parser.add_argument("--modes", default="before,counter,advisory,sequencer")
    parser.add_argument("--sequencer-interval", type=float, default=0.25)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the modes in turn this many times; the median of each mode is printed "
        "(a loaded machine drifts: modes taken in turn see the same drift)",
    )
    parser.add_argument("--proofs", type=int, default=200)
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="this benchmark database only: synchronous_commit off (commits do not wait for "
        "the disk), to see the lock's cost without the flush",
    )
    args = parser.parse_args()

    name, url = create_pg_database("gpulease_bench_ledger")
    try:
        if args.async_commit:
            import psycopg

            from _common import PG_DSN

            with psycopg.connect(PG_DSN, dbname="postgres", autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        db = Database(url, pool_size=args.writers + 2, max_overflow=0)
        migrate.upgrade(db)
        with db.connect() as conn:
            sync = conn.execute(text("SHOW synchronous_commit")).scalar_one()
        print(
            f"{args.writers} writers x {args.transactions} transactions x {args.records} "
            f"audit record(s) each; synchronous_commit={sync}"
        )
        results: dict[str, list[dict[str, float]]] = {}
        for _round, mode in ((n, m) for n in range(args.rounds) for m in args.modes.split(",")):
            r = run_mode(
                db, mode, args.writers, args.transactions, args.records, args.sequencer_interval
            )
            results.setdefault(mode, []).append(r)
            waits = (
                f"  longest wait for a position {r['longest_wait_ms']:.0f} ms, queue drained "
                f"{r['drain_s'] * 1000:.0f} ms after the writers"
                if mode == "sequencer"
                else ""
            )
            print(
                f"  {mode:<9} {r['appends_per_s']:8.0f} appends/s  {r['commits_per_s']:7.0f} "
                f"commits/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                f"CPU a commit {r['cpu_ms']:.2f} + {r['pg_cpu_ms']:.2f} ms (PostgreSQL)  "
                f"({r['seconds']:.2f} s){waits}"
            )
        if args.rounds > 1:
            print(f"median of {args.rounds} rounds (min - max):")
            for mode, runs in results.items():
                rates = sorted(r["appends_per_s"] for r in runs)
                p99 = statistics.median(r["p99_ms"] for r in runs)
                cpu = statistics.median(r["cpu_ms"] for r in runs)
                pg_cpu = statistics.median(r["pg_cpu_ms"] for r in runs)
                print(
                    f"  {mode:<9} {statistics.median(rates):8.0f} appends/s "
                    f"({rates[0]:.0f} - {rates[-1]:.0f})  p50 "
                    f"{statistics.median(r['p50_ms'] for r in runs):6.2f} ms  p99 {p99:6.2f} ms  "
                    f"CPU a commit {cpu:.2f} + {pg_cpu:.2f} ms (PostgreSQL)"
                )
        size, whole = gapless(db)
        print(f"ledger: {size} positions, gapless: {whole}")

        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(database_url=url, data_dir=Path(folder))
            ctx = ServiceContext(db, settings=settings, clock=ManualClock(T0))
            ledger.ensure_key(ctx)
            ledger_sequencer.sequence(ctx)  # the key's record at its position, before the purge
            with db.connect() as conn:  # the "before" rows are outside the ledger: drop them
                conn.execute(
                    text(
                        "DELETE FROM audit_log "
                        "WHERE id NOT IN (SELECT audit_id FROM ledger_entries)"
                    )
                )
                conn.commit()
            began = time.perf_counter()
            signed = ledger.sign_head(ctx)
            sign_s = time.perf_counter() - began
            assert signed is not None
            began, cpu = time.perf_counter(), time.process_time()
            verdict = ledger.verify(ctx)
            verify_s, verify_cpu = time.perf_counter() - began, time.process_time() - cpu
            per = 1e6 / max(verdict.size, 1)
            print(
                f"sign_head over {signed.tree_size} records: {sign_s * 1000:.1f} ms; "
                f"verify: {verify_s:.2f} s wall, {verify_cpu:.2f} s CPU here "
                f"({verify_s * per:.0f} / {verify_cpu * per:.0f} us a record), "
                f"{verdict.summary()}"
            )
            staff = Principal("bench", Role.OPERATOR_ADMIN, None)
            rng = random.Random(7)
            with db.connect() as conn:
                ids = [
                    int(i)
                    for i in conn.execute(text("SELECT audit_id FROM ledger_entries")).scalars()
                ]
            times, sizes = [], []
            ledger_proofs.prove(ctx, staff, audit_id=ids[0])  # builds the proof tree once
            for audit_id in rng.sample(ids, min(args.proofs, len(ids))):
                began = time.perf_counter()
                cited = ledger_proofs.prove(ctx, staff, audit_id=audit_id)
                times.append(time.perf_counter() - began)
                sizes.append(len(cited.proof.inclusion.path))
            mean = statistics.mean(sizes)
            print(
                "inclusion proof through the service: median "
                f"{statistics.median(times) * 1000:.2f} ms, {mean:.1f} hashes "
                f"({mean * 32:.0f} bytes) on average, tree of {signed.tree_size}"
            )
        db.dispose()
    finally:
        drop_pg_database(name)


if __name__ == "__main__":
    main()
