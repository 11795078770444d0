"""Ledger appends under concurrent writers on PostgreSQL, and the ledger's checks on the database.

In one run, on a throwaway PostgreSQL database, ``--writers`` threads (default 16, each with
its own connection) commit ``--transactions`` transactions each, every one writing
``--records`` audit records through the session (``services.audit.record``), in modes:

* ``before``: main's audit insert, the ledger hooks removed from the session factory;
* ``counter``: the ledger as shipped: the counter row taken at the end of the transaction
  (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` and the entries, one statement);
* ``advisory``: the alternative, a transaction-level advisory lock, then the size read
  (``max(position)``), then the entries (two statements more).

For each it prints appends/s and commits/s (wall time, all writers), and checks the
positions are gapless. Then, on everything written: ``services.ledger.verify`` (all leaves
recomputed from the audit rows), ``sign_head`` and inclusion-proof times and sizes through
the service. Figures are printed, never judged (a shared machine is noisy). The server's
``synchronous_commit`` is left as configured (printed): the counter lock is held through
the commit, so its flush is in the serialised part.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_ledger_append.py \
        [--writers 16] [--transactions 60] [--records 1] [--modes before,counter,advisory]
        [--async-commit]
"""

from __future__ import annotations

import argparse
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
from gpulease.services import audit, ledger, ledger_proofs
from gpulease.services.context import ServiceContext
from gpulease.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_HOOKS = (
    ("after_flush", ledger_store.collect_flushed),
    ("after_soft_rollback", ledger_store.note_rollback),
    ("before_commit", ledger_store.append_on_commit),
)


def _advisory_append(session: Session, entries: Sequence[tuple[int, bytes]]) -> int:
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
            for i, (a, leaf) in enumerate(entries)
        ],
    )
    return start


def run_mode(
    db: Database, mode: str, writers: int, transactions: int, records: int
) -> dict[str, float]:
    original = ledger_store.append
    if mode == "before":
        for name, hook in _HOOKS:
            event.remove(db._sessions, name, hook)
    elif mode == "advisory":
        ledger_store.append = _advisory_append
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
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - began
    ledger_store.append = original
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
    parser.add_argument("--modes", default="before,counter,advisory")
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
        results: dict[str, dict[str, float]] = {}
        for mode in args.modes.split(","):
            results[mode] = run_mode(db, mode, args.writers, args.transactions, args.records)
            r = results[mode]
            print(
                f"  {mode:<9} {r['appends_per_s']:8.0f} appends/s  {r['commits_per_s']:7.0f} "
                f"commits/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                f"({r['seconds']:.2f} s)"
            )
        size, whole = gapless(db)
        print(f"ledger: {size} positions, gapless: {whole}")

        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(database_url=url, data_dir=Path(folder))
            ctx = ServiceContext(db, settings=settings, clock=ManualClock(T0))
            ledger.ensure_key(ctx)
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
