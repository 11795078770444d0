"""Benchmark: sbatch submissions per second against a throwaway local Slurm cluster.

Starts a LocalSlurmCluster (4 nodes x 4 fake GPUs on this host), then C client threads each
run ``sbatch --parsable --gres=gpu:1 --wrap true`` subprocesses until N jobs are submitted,
and prints submissions/s and the p50/p99 latency of one submission (the whole ``sbatch``
process: start-up, munge credential, RPC to slurmctld, reply), and the CPU per submission
of the ``sbatch`` processes and of ``slurmctld`` (the controller, ``/proc/PID/stat``). At
the end every job is cancelled and the cluster stopped.

By default jobs are submitted with ``--hold`` (mode ``hold``) so that none runs: the figure
is then the controller's submission path alone, not mixed with the scheduling, launching and
completion of up to 16 concurrently running jobs on the same (small) host, whose daemons
compete with the clients for the CPUs. ``--mode run`` submits runnable jobs instead.

    python benchmarks/bench_sbatch.py [--jobs 500] [--clients 16] [--mode hold|run]
                                      [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from gpulease.sim.metrics import percentile

# the throwaway cluster is test support, not part of the product
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.slurm_cluster import LocalSlurmCluster

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/PID/stat; 0: gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def submit_all(
    cluster: LocalSlurmCluster, jobs: int, clients: int, hold: bool
) -> tuple[float, list[float], list[int], list[str]]:
    env = cluster.client_env()
    argv = ["sbatch", "--parsable", "--gres=gpu:1", "--output=/dev/null"]
    if hold:
        argv.append("--hold")
    argv += ["--wrap", "true"]
    lock = threading.Lock()
    remaining = [jobs]
    latencies: list[float] = []
    job_ids: list[int] = []
    errors: list[str] = []

    def client() -> None:
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            t0 = time.perf_counter()
            proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            dt = time.perf_counter() - t0
            with lock:
                if proc.returncode == 0:
                    latencies.append(dt)
                    job_ids.append(int(proc.stdout.strip().split(";")[0]))
                else:
                    errors.append(proc.stderr.strip())

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, job_ids, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--mode", choices=["hold", "run"], default="hold")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--gpus-per-node", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    t0 = time.perf_counter()
    with LocalSlurmCluster(nodes=args.nodes, gpus_per_node=args.gpus_per_node) as cluster:
        startup = time.perf_counter() - t0
        version = cluster.run(["sbatch", "--version"]).stdout.strip()
        # Warm-up, not timed: page cache, plugin loading, the controller's first RPCs.
        warm = submit_all(cluster, min(args.clients, 8), min(args.clients, 8), hold=True)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        daemons = {name: pid for name, pid in cluster.pids.items() if name == "slurmctld"}
        controller_before = sum(process_cpu(pid) for pid in daemons.values())
        elapsed, latencies, job_ids, errors = submit_all(
            cluster, args.jobs, args.clients, hold=args.mode == "hold"
        )
        # the sbatch processes' CPU (waited-for children: the daemons are not waited yet)
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        sbatch_cpu = (done.ru_utime + done.ru_stime) - (children.ru_utime + children.ru_stime)
        controller_cpu = sum(process_cpu(pid) for pid in daemons.values()) - controller_before
        queued = cluster.run(["squeue", "-h", "-o", "%i"]).stdout.split()
        cluster.run(["scancel", f"--user={os.getuid()}"], check=False)
        deadline = time.monotonic() + 30
        while cluster.run(["squeue", "-h"]).stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.2)

    latencies.sort()
    result: dict[str, Any] = {
        "benchmark": "sbatch",
        "slurm": version,
        "mode": args.mode,
        "command": "sbatch --parsable --gres=gpu:1 --output=/dev/null "
        + ("--hold " if args.mode == "hold" else "")
        + "--wrap true",
        "jobs": args.jobs,
        "clients": args.clients,
        "nodes": args.nodes,
        "gpus_per_node": args.gpus_per_node,
        "host_cpus": os.cpu_count(),
        "cluster_startup_s": round(startup, 3),
        "elapsed_s": round(elapsed, 3),
        "submitted": len(job_ids),
        "failed": len(errors),
        "first_errors": sorted(set(errors))[:3],
        "submissions_per_s": round(len(job_ids) / elapsed, 1) if elapsed > 0 else None,
        "latency_ms": {
            "p50": round(1000 * percentile(latencies, 50), 1),
            "p99": round(1000 * percentile(latencies, 99), 1),
            "max": round(1000 * latencies[-1], 1) if latencies else None,
        },
        "client_cpu_ms_per_submission": round(1000 * sbatch_cpu / max(1, len(latencies)), 2),
        # slurmctld's own CPU meanwhile (/proc/PID/stat), the server side of a submission
        "controller_cpu_ms_per_submission": round(
            1000 * controller_cpu / max(1, len(latencies)), 2
        ),
        "queue_length_at_end": len(queued),
        "warmup_submissions": len(warm[2]),
    }
    mode_note = (
        "held jobs (--hold): controller submission path only, nothing runs"
        if args.mode == "hold"
        else "runnable jobs: submissions compete with scheduling and job launches"
    )
    print(f"{result['slurm']}, {args.nodes} nodes x {args.gpus_per_node} GPUs, mode: {mode_note}")
    print(
        f"{len(job_ids)} submissions ({len(errors)} failed) from {args.clients} clients "
        f"in {elapsed:.2f} s: {result['submissions_per_s']} submissions/s; latency per "
        f"sbatch p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
        f"max {result['latency_ms']['max']} ms (cluster start-up {startup:.2f} s)"
    )
    if errors:
        print("first errors:", *result["first_errors"], sep="\n  ")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
