"""Benchmark: the dashboard's widest inputs on a big queue (an attacker's cheapest load).

The demo of ``bench_dashboard`` (SQLite) with ``--jobs`` finished jobs added in one
statement (copies of a job of INF Tech); then, as the operator and as INF Tech's admin, the
queue's first and deepest page (``page=2001``: 100,000 rows skipped, the bound) and the
lease calendar's widest window (``days=366``). CPU of the process (``time.process_time``,
the request's worker thread included), the median of ``--requests``.

    PYTHONPATH=src:benchmarks python benchmarks/bench_dashboard_deep.py [--jobs 100000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from bench_dashboard import SESSION_COOKIE, _site
from gpulease.api.app import create_app

PATHS = (
    "/ui/queue?state=all&page=1",
    "/ui/queue?state=all&page=2001",
    "/ui/leases?days=366",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx, tokens = _site(Path(tmp))
        with ctx.db.engine.begin() as conn:
            cols = [row[1] for row in conn.execute(text("PRAGMA table_info(jobs)"))]
            chosen = {"id": "'job-x' || printf('%08d', n)", "state": "'completed'"}
            picked = ", ".join(chosen.get(c, c) for c in cols)
            conn.execute(
                text(
                    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < "
                    f":n) INSERT INTO jobs ({', '.join(cols)}) SELECT {picked} "
                    "FROM s, (SELECT * FROM jobs LIMIT 1)"
                ),
                {"n": args.jobs},
            )
        app = create_app(ctx=ctx)
        print(f"{'path':<32} {'reader':<9} {'CPU ms':>8} {'bytes':>8}")
        for reader, key in (("operator", "operator-admin"), ("tenant", "INF Tech")):
            with TestClient(app, follow_redirects=False) as client:
                client.cookies.set(SESSION_COOKIE, tokens[key], domain="testserver.local")
                for path in PATHS:
                    client.get(path)
                    cpu = []
                    for _ in range(args.requests):
                        began = time.process_time()
                        answer = client.get(path)
                        cpu.append(time.process_time() - began)
                    assert answer.status_code == 200, (path, answer.status_code)
                    ms = statistics.median(cpu) * 1000
                    print(f"{path:<32} {reader:<9} {ms:8.1f} {len(answer.content):8,}")
        ctx.db.dispose()


if __name__ == "__main__":
    main()
