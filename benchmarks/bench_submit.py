"""Benchmark: job submissions per second through the real API, beside sbatch.

Starts ``gpulease serve`` (uvicorn, one process, scheduler running with the simulated
executor) on a fresh PostgreSQL database (or SQLite with ``--database sqlite``) holding the
demo site, then C client threads (default 16) each POST ``/api/v1/jobs`` with its own
``Idempotency-Key`` until N jobs are submitted. Prints submissions/s and the p50/p99 latency
of one submission (HTTP round trip: auth, validation, one write transaction with its audit
record and idempotency record). With ``--sbatch`` it then runs ``bench_sbatch.py`` with the
same number of clients on a throwaway local Slurm controller and prints both side by side.

    python benchmarks/bench_submit.py [--jobs 2000] [--clients 16] [--database postgresql]
                                      [--sbatch] [--json OUT]

The clients run on the same 2-core machine as the server and the database, so the figure is
a floor for the server alone, and timing varies with what else the machine does.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from gpulease.sim.metrics import percentile

ROOT = Path(__file__).resolve().parents[1]
PG = "host=127.0.0.1 port=5432 user=postgres"


def create_pg_database() -> tuple[str, str]:
    name = f"gpulease_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def start_server(
    url: str, data_dir: Path, workers: int
) -> tuple[subprocess.Popen[bytes], str, str]:
    env = dict(os.environ, GPULEASE_DATABASE_URL=url, GPULEASE_DATA_DIR=str(data_dir))
    cli = [sys.executable, "-m", "gpulease.cli"]
    init = subprocess.run(
        [*cli, "init", "--demo", "--json"], env=env, capture_output=True, text=True, check=True
    )
    token = next(u["token"] for u in json.loads(init.stdout) if u["tenant"] == "INF Tech")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [*cli, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                return process, base, token
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def submit_all(base: str, token: str, jobs: int, clients: int) -> dict[str, Any]:
    lock = threading.Lock()
    remaining = [jobs]
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        with httpx.Client(
            base_url=base + "/api/v1", timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as http:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                body = {"gpus": 4, "purpose": "financial AI", "command": "train", "duration_s": 5}
                t0 = time.perf_counter()
                response = http.post(
                    "/jobs", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
                )
                elapsed = time.perf_counter() - t0
                with lock:
                    if response.status_code == 201:
                        latencies.append(elapsed)
                    else:
                        failures.append(response.text[:200])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    return {
        "submitted": len(latencies),
        "failed": len(failures),
        "wall_s": round(wall, 3),
        "per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "errors": failures[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    parser.add_argument("--sbatch", action="store_true", help="also run bench_sbatch.py")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gpulease-bench-") as tmp:
        pg_name = None
        if args.database == "postgresql":
            pg_name, url = create_pg_database()
        else:
            url = f"sqlite:///{tmp}/bench.db"
        process = None
        try:
            process, base, token = start_server(url, Path(tmp), args.workers)
            submit_all(base, token, min(50, args.jobs), args.clients)  # warm-up
            result = submit_all(base, token, args.jobs, args.clients)
        finally:
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
            if pg_name:
                drop_pg_database(pg_name)
    result |= {"database": args.database, "clients": args.clients, "workers": args.workers}
    print(
        f"gpulease API on {args.database} ({args.workers} worker process(es)), {args.clients} "
        f"clients, {result['submitted']:,} "
        f"jobs: {result['per_second']:,.1f} submissions/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms ({result['failed']} failed)"
    )
    if args.sbatch:
        out = Path(tempfile.mkstemp(suffix=".json")[1])
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "bench_sbatch.py"),
                "--jobs",
                str(min(args.jobs, 1000)),
                "--clients",
                str(args.clients),
                "--json",
                str(out),
            ],
            check=True,
        )
        result["sbatch"] = json.loads(out.read_text())
        out.unlink()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
