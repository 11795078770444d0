"""Benchmark: the Slurm executor's overhead on a throwaway local Slurm cluster.

Starts a LocalSlurmCluster (4 nodes x 4 fake GPUs on this host) and drives a
:class:`~gpulease.executors.slurm.SlurmExecutor` the way the live scheduler does, without
the database: every ``--interval`` seconds one ``poll`` (completions free their GPUs), then
one ``launch`` per free GPU (a 1-GPU job on the node gpulease would pick), until ``--jobs``
short jobs (``date +%s.%N > file``: the job's own end time) have all completed. Reported:

* placement -> running: from ``launch`` to the first poll whose ``squeue`` shows the job
  running (or already done); jobs per second over the whole run;
* Slurm's completion -> gpulease's: from the time the job wrote as its last act to the
  ``poll`` that returned its completion (includes up to one ``--interval`` of waiting);
* client commands per job and the CPU they and the executor took (this process and the
  ``sbatch``/``squeue``/``scontrol`` children; the Slurm daemons are not counted).

    python benchmarks/bench_slurm_executor.py [--jobs 1000] [--interval 0.5] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpulease.executors.base import Launch, NodeSlice
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from gpulease.sim.metrics import percentile

# the throwaway cluster is test support, not part of the product
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.slurm_cluster import SITE_ID, SLURM_NODES, LocalSlurmCluster

RUNNING_OR_AFTER = {"RUNNING", "COMPLETING", "COMPLETED", "FAILED", "CANCELLED"}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ms(values: list[float], q: float) -> float:
    return round(1000 * percentile(sorted(values), q), 1)


def run(cluster: LocalSlurmCluster, work: Path, jobs: int, interval: float) -> dict[str, Any]:
    site = SlurmSite(SITE_ID, partition=cluster.partition, conf=cluster.conf_path)
    executor = SlurmExecutor([site])
    free = [(node, g) for node in SLURM_NODES for g in range(cluster.gpus_per_node)]
    held: dict[str, tuple[str, int]] = {}
    launched_at: dict[str, float] = {}
    running_at: dict[str, float] = {}
    completed_at: dict[str, float] = {}
    exit_codes: dict[str, int] = {}
    submit_s: list[float] = []
    next_job = 0
    polls = 0
    cpu0, children0, commands0 = time.process_time(), children_cpu(), executor.commands
    t0 = time.perf_counter()
    while len(completed_at) < jobs:
        done = executor.poll(datetime.now(UTC))
        polls += 1
        now = time.perf_counter()
        seen = executor.last_seen.get(SITE_ID, {})
        for job_id in launched_at.keys() - running_at.keys():
            slurm_id = executor.slurm_id(job_id)
            job = seen.get(slurm_id) if slurm_id is not None else None
            if job is not None and job.state in RUNNING_OR_AFTER:
                running_at[job_id] = now
        for completion in done:
            completed_at[completion.job_id] = time.time()
            running_at.setdefault(completion.job_id, now)
            exit_codes[completion.job_id] = completion.exit_code
            free.append(held.pop(completion.job_id))
        while free and next_job < jobs:
            node, gpu = free.pop()
            job_id = f"job-{next_job:05d}"
            next_job += 1
            launch = Launch(
                job_id=job_id,
                run=1,
                tenant_id="bench",
                purpose="benchmark",
                command=f"date +%s.%N > {work / job_id}.end",
                image=None,
                gpus=1,
                slices=(NodeSlice(node, (gpu,), (f"SN-{node}-{gpu}",)),),
                started_at=datetime.now(UTC),
                duration_s=None,
                log_path=work / "logs" / f"{job_id}.log",
            )
            before = time.perf_counter()
            executor.launch(launch)
            submit_s.append(time.perf_counter() - before)
            launched_at[job_id] = before
            held[job_id] = (node, gpu)
        time.sleep(interval)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    client_cpu = children_cpu() - children0
    to_running = [running_at[j] - launched_at[j] for j in launched_at]
    delays = []
    for job_id, at in completed_at.items():
        with contextlib.suppress(OSError, ValueError):  # a job that wrote nothing
            delays.append(at - float((work / f"{job_id}.end").read_text()))
    return {
        "jobs": jobs,
        "interval_s": interval,
        "elapsed_s": round(elapsed, 2),
        "jobs_per_s": round(jobs / elapsed, 2),
        "failed": sum(1 for code in exit_codes.values() if code != 0),
        "polls": polls,
        "sbatch_ms": {"p50": ms(submit_s, 50), "p99": ms(submit_s, 99)},
        "placement_to_running_ms": {"p50": ms(to_running, 50), "p99": ms(to_running, 99)},
        "slurm_end_to_gpulease_ms": {
            "p50": ms(delays, 50),
            "p99": ms(delays, 99),
            "measured": len(delays),
        },
        "client_commands_per_job": round((executor.commands - commands0) / jobs, 2),
        "executor_cpu_ms_per_job": round(1000 * cpu / jobs, 2),
        "client_cpu_ms_per_job": round(1000 * client_cpu / jobs, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between polls")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="slb-"))
    work.chmod(0o755)
    try:
        cluster = LocalSlurmCluster(
            nodes=len(SLURM_NODES), gpus_per_node=4, base_dir=work / "c", node_names=SLURM_NODES
        )
        with cluster:
            try:
                version = cluster.run(["sbatch", "--version"]).stdout.strip()
                result = run(cluster, work, args.jobs, args.interval)
            finally:  # no job's slurmstepd may outlive the cluster
                cluster.cancel_all()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"benchmark": "slurm_executor", "slurm": version, "host_cpus": os.cpu_count()} | result
    print(
        f"{result['slurm']}, 4 nodes x 4 GPUs, {args.jobs} one-GPU jobs, a poll every "
        f"{args.interval} s: {result['jobs_per_s']} jobs/s ({result['elapsed_s']} s, "
        f"{result['failed']} failed); placement -> running p50 "
        f"{result['placement_to_running_ms']['p50']} ms, p99 "
        f"{result['placement_to_running_ms']['p99']} ms; Slurm end -> gpulease p50 "
        f"{result['slurm_end_to_gpulease_ms']['p50']} ms, p99 "
        f"{result['slurm_end_to_gpulease_ms']['p99']} ms; sbatch p50 "
        f"{result['sbatch_ms']['p50']} ms; {result['client_commands_per_job']} client commands, "
        f"{result['executor_cpu_ms_per_job']} ms executor CPU + "
        f"{result['client_cpu_ms_per_job']} ms client CPU per job"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
