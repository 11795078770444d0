"""Benchmark: job submissions per second through the real API, beside sbatch and the baseline.

For each variant it creates a fresh PostgreSQL database (or SQLite with ``--database sqlite``)
holding the demo site, starts the server as deployed, then C client threads (default 16) each
POST ``/api/v1/jobs`` with its own ``Idempotency-Key`` until N jobs are submitted, while the
scheduler runs (simulated executor: the jobs start, run 5 s and end). Prints submissions/s
and the p50/p99 latency of one submission (the HTTP round trip), and the CPU time each part
spent per submission while the clients ran: the API server processes, the scheduler, the
variant's PostgreSQL backends and the client threads themselves (``/proc`` and
``getrusage``), so the figures can be read against the machine's 2 cores.

* this tree: ``gpulease serve`` (API only, ``--workers`` processes) and ``gpulease scheduler``
  in its own process;
* ``--baseline REF`` (repeatable): the same load against the code at REF, checked out in a
  temporary ``git worktree`` and run as it was deployed (``gpulease serve``, which ran the
  scheduler loop in the API process until ``serve`` stopped running it by default; then
  beside a ``gpulease scheduler`` process), in the same run;
* ``--sbatch``: ``bench_sbatch.py`` with the same number of clients on a throwaway local
  Slurm controller, and the ratio of each gpulease variant to it.

Two paths are measured for each variant (``--paths``): ``named``, every submission naming
``--site`` (jkt1), and ``siteless``, none naming a site, so that each is dispatched among
the demo's four sites (``services.sites``); each variant and path on a fresh database, the
paths one after the other, every variant in turn. The run ends with a table of every
figure side by side, each variant's site-less CPU per submission against its named-site
CPU, and the load average at its start and end.

    python benchmarks/bench_submit.py [--jobs 2000] [--clients 16] [--workers 1]
        [--paths named,siteless] [--site jkt1] [--database postgresql]
        [--baseline REF ...] [--sbatch] [--runs 1] [--json OUT] [--profile STATS]
        [--no-access-log] [--db-prefix NAME]

The clients are ``http.client`` threads, one keep-alive connection each: about 0.2 ms of
CPU per submission, a tenth of the server's; ``bench_sbatch.py``'s clients are the same
number of threads, each running ``sbatch`` processes (the CPU of those is sbatch's own).

The servers run as deployed, with their access log (a line per request on stderr, about
0.1 ms of the server's CPU; ``slurmctld`` too logs every submission, at ``info``);
``--no-access-log`` serves every variant that has the option without it.
``--profile OUT`` serves this tree under cProfile (``_profiled.py``; the event loop's thread)
to see where its CPU goes; the figures of such a run are not the server's.

The clients run on the same 2-core machine as the servers and the database, so the figures
are a floor for the server alone and vary with what else the machine does. The per-tenant
submission limit (``GPULEASE_SUBMISSIONS_PER_MINUTE``) is lifted for every variant.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import httpx
import psycopg

from _common import PG_DSN, create_pg_database, drop_pg_database, git_tree
from gpulease.sim.metrics import percentile

ROOT = Path(__file__).resolve().parents[1]
PROFILED = Path(__file__).resolve().parent / "_profiled.py"
BODY = {"gpus": 4, "purpose": "financial AI", "command": "train", "duration_s": 5}


@dataclass(frozen=True)
class Variant:
    label: str
    src: Path  # the gpulease sources to run (PYTHONPATH)
    scheduler_apart: bool  # a `gpulease scheduler` process beside an API-only server
    scheduler: bool = True  # False: no scheduler at all (the API's own ceiling)
    profile: Path | None = None  # run the API server under cProfile, its stats here


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and, recursively, its children (uvicorn's
    worker processes): /proc/PID/stat, and /proc/PID/task/PID/children."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{pid}/children") as found:
            children = [int(child) for child in found.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS + sum(map(process_cpu, children))


def pg_backends(url: str) -> list[int]:
    """The PostgreSQL server processes serving the database of ``url`` (on this host)."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_DSN, dbname="postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return [int(pid) for (pid,) in rows]


@dataclass(frozen=True)
class Processes:
    """What runs a variant: the API server, the scheduler process (if apart), the database."""

    server: int
    scheduler: int | None
    database_url: str

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of the server, the scheduler, this process (the clients) and
        the PostgreSQL backends of the variant's database (PostgreSQL only)."""
        mine = resource.getrusage(resource.RUSAGE_SELF)
        backends = pg_backends(self.database_url) if "postgresql" in self.database_url else []
        return {
            "server": process_cpu(self.server),
            "scheduler": process_cpu(self.scheduler) if self.scheduler else 0.0,
            "postgres": sum(process_cpu(pid) for pid in backends),
            "clients": mine.ru_utime + mine.ru_stime,
        }


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def deployed(
    variant: Variant, url: str, data_dir: Path, workers: int, access_log: bool
) -> Iterator[tuple[str, str, Processes]]:
    """The variant's demo installation served on ``url``: (base URL, a tenant's token, its
    processes)."""
    env = dict(
        os.environ,
        GPULEASE_DATABASE_URL=url,
        GPULEASE_DATA_DIR=str(data_dir),
        PYTHONPATH=str(variant.src),
        # the per-tenant submission limit (1,200 a minute per process by default) is not
        # what is measured: lifted for every variant alike
        GPULEASE_SUBMISSIONS_PER_MINUTE="10000000",
    )
    cli = [sys.executable, "-m", "gpulease.cli"]
    # the server under cProfile (the event loop's thread only: the submission's path)
    server = (
        cli if variant.profile is None else [sys.executable, str(PROFILED), str(variant.profile)]
    )
    init = subprocess.run(
        [*cli, "init", "--demo", "--json"], env=env, capture_output=True, text=True, check=True
    )
    token = next(u["token"] for u in json.loads(init.stdout) if u["tenant"] == "INF Tech")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve = [*server, "serve", "--port", str(port), "--workers", str(workers)]
    if not variant.scheduler:
        serve.append("--no-scheduler")
    if not access_log and "access_log" in (variant.src / "gpulease/cli/server.py").read_text():
        serve.append("--no-access-log")  # every variant alike, where `serve` has the option
    processes = [subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL)]
    if variant.scheduler and variant.scheduler_apart:
        processes.append(subprocess.Popen([*cli, "scheduler"], env=env, stdout=subprocess.DEVNULL))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                health = httpx.get(base + "/api/v1/health", timeout=1).json()
                if health.get("schedulers") or not variant.scheduler:  # up, and it has passed
                    break
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.1)
        else:
            raise SystemExit(f"{variant.label}: the server or its scheduler did not start")
        scheduler = processes[1].pid if len(processes) > 1 else None
        yield base, token, Processes(processes[0].pid, scheduler, url)
    finally:
        for process in reversed(processes):
            stop(process)


def submit_all(
    base: str, token: str, jobs: int, clients: int, body: dict[str, Any]
) -> dict[str, Any]:
    """``jobs`` submissions from ``clients`` threads, each on its own keep-alive connection
    (``http.client``: the lightest client, so the clients take little of the machine's CPU
    from the servers; the same for every variant)."""
    host, port = base.removeprefix("http://").split(":")
    lock = threading.Lock()
    remaining = [jobs]
    latencies: list[float] = []
    failures: list[str] = []
    payload = json.dumps(body).encode()

    def client() -> None:
        http = HTTPConnection(host, int(port), timeout=60)
        try:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": str(uuid.uuid4()),
                }
                t0 = time.perf_counter()
                http.request("POST", "/api/v1/jobs", body=payload, headers=headers)
                response = http.getresponse()
                text = response.read()
                elapsed = time.perf_counter() - t0
                with lock:
                    if response.status == 201:
                        latencies.append(elapsed)
                    else:
                        failures.append(text[:200].decode(errors="replace"))
        finally:
            http.close()

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


def scheduler_state(base: str, token: str) -> dict[str, Any]:
    """What the scheduler did meanwhile: its passes, and how many jobs it started."""
    health = httpx.get(base + "/api/v1/health", timeout=10).json()
    jobs = httpx.get(
        base + "/api/v1/jobs",
        params={"limit": 5000},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    started = sum(1 for job in jobs if job.get("started_at"))
    ticks = sum(site["ticks"] for site in health.get("schedulers", []))
    return {"scheduler_passes": ticks, "jobs_started": started}


def run_variant(variant: Variant, path: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One variant on one path (``named``: every submission names ``--site``; ``siteless``:
    none does, so each is dispatched among the demo's four sites), on a fresh database."""
    body = dict(BODY, site_id=args.site) if path == "named" else dict(BODY)
    pg_name = None
    if args.database == "postgresql":
        pg_name, url = create_pg_database(args.db_prefix)
    else:
        url = f"sqlite:///{tmp}/{variant.label}-{path}.db"
    try:
        data_dir = tmp / f"{variant.label}-{path}"
        with deployed(variant, url, data_dir, args.workers, args.access_log) as (
            base,
            token,
            processes,
        ):
            submit_all(base, token, min(50, args.jobs), args.clients, body)  # warm-up
            before = processes.cpu()
            result = submit_all(base, token, args.jobs, args.clients, body)
            after = processes.cpu()
            spent = {part: after[part] - before[part] for part in before}
            spent["total"] = sum(spent.values())
            result["cpu_ms_per_submission"] = {
                part: round(1000 * seconds / max(1, result["submitted"]), 2)
                for part, seconds in spent.items()
            }
            result |= scheduler_state(base, token)
    finally:
        if pg_name:
            drop_pg_database(pg_name)
    scheduler = "its own process" if variant.scheduler_apart else "inside the API process"
    if not variant.scheduler:
        scheduler = "no process (--no-scheduler)"
    cpu = result["cpu_ms_per_submission"]
    label = f"{variant.label} {path}"
    print(
        f"{label:>22}: {result['per_second']:8,.1f} submissions/s, p50 "
        f"{result['p50_ms']:7.1f} ms, p99 {result['p99_ms']:7.1f} ms, {result['submitted']:,} "
        f"jobs ({result['failed']} failed); scheduler in {scheduler}: "
        f"{result['scheduler_passes']} passes, {result['jobs_started']} jobs started\n"
        f"{'':>22}  CPU ms per submission: server {cpu['server']:.2f}, scheduler "
        f"{cpu['scheduler']:.2f}, PostgreSQL {cpu['postgres']:.2f}, clients "
        f"{cpu['clients']:.2f}, all {cpu['total']:.2f}",
        flush=True,
    )
    if result["errors"]:
        print("           first errors:", *result["errors"], sep="\n             ")
    return result | {"scheduler": scheduler, "path": path, "variant": variant.label}


def run_sbatch(jobs: int, clients: int) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    try:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "bench_sbatch.py"),
                "--jobs",
                str(jobs),
                "--clients",
                str(clients),
                "--json",
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found: dict[str, Any] = json.loads(out.read_text())
    finally:
        out.unlink()
    clients_ms = found.get("client_cpu_ms_per_submission", float("nan"))
    controller_ms = found.get("controller_cpu_ms_per_submission", float("nan"))
    print(
        f"{'sbatch':>22}: {found['submissions_per_s']:8,.1f} submissions/s, p50 "
        f"{found['latency_ms']['p50']:7.1f} ms, p99 {found['latency_ms']['p99']:7.1f} ms, "
        f"{found['submitted']:,} jobs ({found['failed']} failed); {found['slurm']}, "
        f"{found['mode']} mode\n{'':>22}  CPU ms per submission: slurmctld "
        f"{controller_ms:.2f}, sbatch processes {clients_ms:.2f}, all "
        f"{controller_ms + clients_ms:.2f}",
        flush=True,
    )
    return found


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """One run: for each path, every baseline then this tree (each on a fresh database),
    then sbatch; then the table of the run."""
    results: dict[str, Any] = {
        "jobs": args.jobs,
        "clients": args.clients,
        "database": args.database,
        "workers": args.workers,
        "load_average_at_start": os.getloadavg(),
    }
    labels = []
    with tempfile.TemporaryDirectory(prefix="gpulease-bench-") as tmp, ExitStack() as trees:
        variants = []
        for ref in args.baseline:
            src = trees.enter_context(git_tree(ref))
            # as REF was deployed: the scheduler apart once `serve` stopped running it
            settings = (src / "gpulease" / "settings.py").read_text()
            apart = "run_scheduler: bool = False" in settings
            variants.append((Variant(f"@{ref}", src, apart, not args.no_scheduler), ref))
        ours = Variant("this tree", ROOT / "src", True, not args.no_scheduler, args.profile)
        variants.append((ours, None))
        for path in args.paths:
            for variant, ref in variants:
                label = f"{variant.label} {path}"
                results[label] = run_variant(variant, path, args, Path(tmp))
                if ref is not None:
                    results[label]["ref"] = ref
                labels.append(label)
    if args.sbatch:
        results["sbatch"] = run_sbatch(min(args.jobs, args.sbatch_jobs), args.clients)
    results["load_average_at_end"] = os.getloadavg()
    print(table(results, labels), flush=True)
    return results


def table(results: dict[str, Any], labels: list[str]) -> str:
    """The run's figures side by side: rate, latency, CPU per submission, the ratio to
    sbatch's rate, and each variant's site-less CPU against its named-site CPU."""
    found = results.get("sbatch")
    rate = (found or {}).get("submissions_per_s") or 0.0
    head = (
        f"{'':>22} {'per s':>8} {'p50 ms':>7} {'p99 ms':>8} {'server':>7} {'sched':>6} "
        f"{'pg':>6} {'clients':>7} {'all':>6} {'x sbatch':>8}"
    )
    lines = ["", "CPU in ms per submission; x sbatch: the rate over sbatch's in this run", head]
    for label in labels:
        r = results[label]
        cpu = r["cpu_ms_per_submission"]
        ratio = f"{r['per_second'] / rate:.2f}" if rate else "-"
        if rate:
            r["ratio_to_sbatch"] = round(r["per_second"] / rate, 2)
        lines.append(
            f"{label:>22} {r['per_second']:8.1f} {r['p50_ms']:7.1f} {r['p99_ms']:8.1f} "
            f"{cpu['server']:7.2f} {cpu['scheduler']:6.2f} {cpu['postgres']:6.2f} "
            f"{cpu['clients']:7.2f} {cpu['total']:6.2f} {ratio:>8}"
        )
    if found:
        controller = found.get("controller_cpu_ms_per_submission", 0.0)
        client = found.get("client_cpu_ms_per_submission", 0.0)
        lines.append(
            f"{'sbatch':>22} {rate:8.1f} {found['latency_ms']['p50']:7.1f} "
            f"{found['latency_ms']['p99']:8.1f} {controller:7.2f} {'':>6} {'':>6} "
            f"{client:7.2f} {controller + client:6.2f} {'1.00':>8}"
        )
    for variant in dict.fromkeys(results[label]["variant"] for label in labels):
        named = results.get(f"{variant} named")
        siteless = results.get(f"{variant} siteless")
        if named and siteless:
            a, b = named["cpu_ms_per_submission"], siteless["cpu_ms_per_submission"]
            lines.append(
                f"{variant}: site-less / named CPU per submission: server "
                f"{b['server'] / max(a['server'], 1e-9):.2f}x, all "
                f"{b['total'] / max(a['total'], 1e-9):.2f}x"
            )
    load = results["load_average_at_start"], results["load_average_at_end"]
    lines.append(
        "load average (1, 5, 15 min) at start "
        + " / ".join(f"{x:.2f}" for x in load[0])
        + ", at end "
        + " / ".join(f"{x:.2f}" for x in load[1])
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument(
        "--paths",
        default="named,siteless",
        help="which submissions to measure, comma-separated: named (every submission names "
        "--site) and siteless (none does: each is dispatched among the demo's four sites)",
    )
    parser.add_argument("--site", default="jkt1", help="the site the named path names")
    parser.add_argument(
        "--db-prefix",
        default="gpulease_bench",
        help="prefix of the throwaway PostgreSQL databases (one per variant and path)",
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    parser.add_argument(
        "--no-scheduler",
        action="store_true",
        help="run no scheduler (the API's own ceiling; not the benchmark's figure)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        action="append",
        default=[],
        help="also run the code at this git ref (repeatable)",
    )
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="serve every variant whose `serve` has the option without its access log",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="OUT",
        help="run this tree's API server under cProfile and write its stats to OUT "
        "(pstats; slows the server: not for the figures)",
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat the whole comparison")
    parser.add_argument("--sbatch", action="store_true", help="also run bench_sbatch.py")
    parser.add_argument("--sbatch-jobs", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not args.paths or set(args.paths) - {"named", "siteless"}:
        parser.error("--paths takes named, siteless or both")

    print(
        f"{args.jobs:,} submissions from {args.clients} clients on {args.database}, "
        f"{args.workers} API worker process(es), {os.cpu_count()} CPUs",
        flush=True,
    )
    runs = [compare(args) for _ in range(args.runs)]
    if args.json:
        args.json.write_text(json.dumps(runs[0] if len(runs) == 1 else runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
