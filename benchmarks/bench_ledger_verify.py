"""``ledger verify`` over a large ledger on PostgreSQL: wall time, CPU time and peak memory.

On a throwaway PostgreSQL database (migrated, with a signing key made by
``services.ledger.ensure_key``), ``--records`` audit records (default 10^6) are bulk
inserted (``COPY``) with their ledger entries and leaf hashes, and heads are signed over
them every ``--head-every`` records (the pure core's frontier and ``sign_tree_head``, stored
as ``sign_head`` stores them). Then ``services.ledger.verify`` runs in a fresh child process
(so its peak resident memory is its own), which prints its wall time, its own CPU time
(PostgreSQL's backend is not counted) and its peak RSS. Figures are printed, never judged.

    cd benchmarks && PYTHONPATH=../src python bench_ledger_verify.py [--records 1000000]
        [--head-every 65536] [--keep]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.types.json import Json

from _common import PG_DSN, create_pg_database, drop_pg_database
from gpulease.domain.clock import ManualClock
from gpulease.ledger.heads import sign_tree_head
from gpulease.ledger.merkle import MerkleFrontier
from gpulease.ledger.records import record_leaf
from gpulease.persistence import ledger_store, migrate
from gpulease.persistence.db import Database
from gpulease.services import ledger, ledger_keys, ledger_sequencer
from gpulease.services.context import ServiceContext
from gpulease.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 50_000


def _fields(i: int) -> dict[str, object]:
    return {
        "at": T0 + timedelta(seconds=1, microseconds=i * 1000),
        "actor": f"user-{i % 97}",
        "action": "job.start" if i % 3 else "job.submit",
        "subject_type": "job",
        "subject_id": f"job-{i:08x}",
        "before": None if i % 3 else {"state": "queued"},
        "after": {"i": i, "gpus": 4 + i % 4, "site": "jakarta", "node": f"n{i % 64}"},
        "reason": "benchmark",
    }


def fill(url: str, data_dir: Path, records: int, head_every: int) -> None:
    db = Database(url)
    migrate.upgrade(db)
    settings = Settings(database_url=url, data_dir=data_dir)
    ctx = ServiceContext(db, settings=settings, clock=ManualClock(T0))
    kid = ledger.ensure_key(ctx)
    ledger_sequencer.sequence(ctx)
    with db.transaction(write=False) as tx:
        (entry,) = list(ledger_store.entries(tx.session))
    start_id = entry.audit_id + 1
    private = ledger_keys.load_private_key(ledger_keys.key_file(settings, kid))
    frontier = MerkleFrontier()
    frontier.append_leaf_hash(entry.leaf_hash)
    heads = []
    began = time.perf_counter()
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        for low in range(0, records, CHUNK):
            rows = []
            for i in range(low, min(records, low + CHUNK)):
                fields = _fields(i)
                leaf = record_leaf(fields)
                rows.append((start_id + i, fields, leaf))
                frontier.append_leaf_hash(leaf)
                if frontier.size % head_every == 0:
                    heads.append((frontier.size, frontier.root()))
            with conn.cursor().copy(
                "COPY audit_log (id, at, actor, action, subject_type, subject_id, before, "
                "after, reason) FROM STDIN"
            ) as copy:
                for audit_id, f, _leaf in rows:
                    copy.write_row(
                        (
                            audit_id,
                            f["at"],
                            f["actor"],
                            f["action"],
                            f["subject_type"],
                            f["subject_id"],
                            None if f["before"] is None else Json(f["before"]),
                            Json(f["after"]),
                            f["reason"],
                        )
                    )
            with conn.cursor().copy(
                "COPY ledger_entries (position, audit_id, leaf_hash) FROM STDIN"
            ) as copy:
                for audit_id, _f, leaf in rows:
                    copy.write_row((audit_id - start_id + 1, audit_id, leaf))
            conn.commit()
        if not heads or heads[-1][0] != frontier.size:
            heads.append((frontier.size, frontier.root()))
        conn.execute("UPDATE ledger_state SET size = %s WHERE id = 1", (frontier.size,))
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('audit_log', 'id'), %s)",
            (start_id + records,),
        )
        for n, (size, root) in enumerate(heads):
            signed = sign_tree_head(
                private, tree_size=size, root_hash=root, timestamp=T0 + timedelta(hours=n + 1)
            )
            conn.execute(
                "INSERT INTO ledger_heads (tree_size, root_hash, signed_at, key_id, signature) "
                "VALUES (%s, %s, %s, %s, %s)",
                (size, root, signed.head.timestamp, kid, signed.signature),
            )
        conn.commit()
        conn.execute("ANALYZE")
    db.dispose()
    print(
        f"filled: {frontier.size} records, {len(heads)} signed heads, "
        f"{time.perf_counter() - began:.1f} s"
    )


def verify_child(url: str, data_dir: Path) -> None:
    settings = Settings(database_url=url, data_dir=data_dir)
    db = Database(url)
    ctx = ServiceContext(db, settings=settings, clock=ManualClock(T0 + timedelta(days=1)))
    began, cpu = time.perf_counter(), time.process_time()
    verdict = ledger.verify(ctx)
    wall, used = time.perf_counter() - began, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    per = 1e6 / max(verdict.size, 1)
    print(
        f"verify: {verdict.size} records, {wall:.1f} s wall, {used:.1f} s CPU in the verifying "
        f"process ({wall * per:.1f} / {used * per:.1f} us a record), peak RSS {peak:.0f} MiB; "
        f"{verdict.summary()}"
    )
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--head-every", type=int, default=65_536)
    parser.add_argument("--keep", action="store_true", help="keep the database (its name)")
    parser.add_argument(
        "--verify-child", nargs=2, metavar=("URL", "DATA_DIR"), help=argparse.SUPPRESS
    )  # the child process that verifies
    args = parser.parse_args()
    if args.verify_child:
        verify_child(args.verify_child[0], Path(args.verify_child[1]))
        return
    name, url = create_pg_database("gpulease_bench_verify")
    try:
        with tempfile.TemporaryDirectory() as folder:
            fill(url, Path(folder), args.records, args.head_every)
            with psycopg.connect(PG_DSN, dbname=name) as conn:
                size = conn.execute("SELECT pg_size_pretty(pg_database_size(%s))", (name,))
                print(f"database: {size.fetchone()[0]}")  # type: ignore[index]
            child = [sys.executable, __file__, "--verify-child", url, folder]
            subprocess.run(child, check=True, env=os.environ)
    finally:
        if args.keep:
            print(f"kept database {name}")
        else:
            drop_pg_database(name)


if __name__ == "__main__":
    main()
