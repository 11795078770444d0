"""Benchmark: what each dashboard page costs, in CPU per request and bytes sent.

The demo (32 NVL72 racks, 2,304 GPUs, three tenants) is built on a throwaway SQLite file,
a few jobs are placed by one scheduler pass, and each page is requested N times in-process
(the real app through Starlette's TestClient, a session cookie as a browser sends it) as
the operator and as a tenant. CPU is the process's (``time.process_time``: the request's
worker thread included), the median of the N; bytes are the body as sent, and for the
fleet's polled grid also gzipped (it is sent compressed to browsers that take it).

    python benchmarks/bench_dashboard.py [--requests 20]
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from gpulease.api.app import create_app
from gpulease.domain.clock import ManualClock
from gpulease.executors.simulated import SimulatedExecutor
from gpulease.persistence import migrate
from gpulease.persistence.db import Database
from gpulease.services import demo, identity, jobs
from gpulease.services.context import ServiceContext
from gpulease.services.scheduling import LiveScheduler
from gpulease.settings import Settings
from gpulease.web.session import SESSION_COOKIE

PAGES = (
    "/ui/fleet",
    "/ui/fleet/grid?n=1",
    "/ui/queue",
    "/ui/leases",
    "/ui/ledger",
)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _site(root: Path) -> tuple[ServiceContext, dict[str, str]]:
    url = f"sqlite:///{root / 'demo.db'}"
    db = Database(url)
    migrate.upgrade(db)
    settings = Settings(database_url=url, data_dir=root / "var")
    ctx = ServiceContext(db, settings=settings, clock=ManualClock(START))
    users = demo.create_demo(ctx)
    tokens = {u.tenant or u.role: u.token for u in users}
    for who, gpus, purpose in (
        ("INF Tech", 144, "health-research: imaging"),
        ("Bank Nusantara Digital", 64, "financial-services-ai: risk"),
        ("Universitas Teknologi Jakarta", 16, "scientific-computing: climate"),
    ):
        principal = identity.authenticate(ctx, tokens[who])
        jobs.submit(ctx, principal, jobs.JobSubmission(gpus=gpus, purpose=purpose, command="t"))
    LiveScheduler(ctx, SimulatedExecutor(), name="bench").tick()
    return ctx, tokens


def _measure(client: TestClient, path: str, n: int) -> tuple[float, int]:
    client.get(path)  # warm: templates compiled, the site's layout cached
    cpu: list[float] = []
    size = 0
    for _ in range(n):
        began = time.process_time()
        answer = client.get(path, headers={"Accept-Encoding": "identity"})
        cpu.append(time.process_time() - began)
        size = len(answer.content)
        assert answer.status_code == 200, (path, answer.status_code)
    return statistics.median(cpu), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ctx, tokens = _site(Path(tmp))
        app = create_app(ctx=ctx)
        print(f"{'page':<22} {'reader':<10} {'CPU ms':>8} {'bytes':>9} {'gzipped':>9}")
        for reader, key in (("operator", "operator-admin"), ("tenant", "INF Tech")):
            with TestClient(app, follow_redirects=False) as client:
                client.cookies.set(SESSION_COOKIE, tokens[key], domain="testserver.local")
                for path in PAGES:
                    cpu, size = _measure(client, path, args.requests)
                    packed = ""
                    if "grid" in path:
                        body = client.get(path, headers={"Accept-Encoding": "identity"}).content
                        packed = f"{len(gzip.compress(body, 6)):,}"
                    print(f"{path:<22} {reader:<10} {cpu * 1000:8.1f} {size:9,} {packed:>9}")
        ctx.db.dispose()


if __name__ == "__main__":
    main()
