"""Helpers of the Slurm executor tests: launches, waiting, what Slurm says of a job."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from gpulease.executors.base import Completion, Launch, NodeSlice
from gpulease.executors.slurm import SlurmExecutor, SlurmSite
from support.slurm_cluster import SITE_ID, SLURM_NODES, LocalSlurmCluster

T = TypeVar("T")


def launch_of(
    work: Path,
    command: str | None,
    nodes: Sequence[tuple[str, Sequence[int]]] = ((SLURM_NODES[0], (0,)),),
    job: str = "job-1",
    run: int = 1,
) -> Launch:
    slices = tuple(
        NodeSlice(node, tuple(slots), tuple(f"SN-{node}-{g}" for g in slots))
        for node, slots in nodes
    )
    return Launch(
        job_id=job,
        run=run,
        tenant_id="tenant-a",
        purpose="model training",
        command=command,
        image=None,
        gpus=sum(len(s.slots) for s in slices),
        slices=slices,
        started_at=datetime.now(UTC),
        duration_s=None,
        log_path=work / "logs" / f"{job}.log",
    )


def site_of(cluster: LocalSlurmCluster) -> SlurmSite:
    return SlurmSite(SITE_ID, partition=cluster.partition, conf=cluster.conf_path)


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def completions_of(
    executor: SlurmExecutor, jobs: Sequence[str], timeout: float = 30.0
) -> dict[str, Completion]:
    """Poll until each of ``jobs`` has completed; each completion is reported once."""
    done: dict[str, Completion] = {}

    def probe() -> dict[str, Completion] | None:
        for c in executor.poll(datetime.now(UTC)):
            assert c.job_id not in done, f"{c.job_id} completed twice"
            done[c.job_id] = c
        return done if set(jobs) <= set(done) else None

    return wait_for(probe, timeout, f"the completions of {', '.join(jobs)}")


def completion_of(executor: SlurmExecutor, job: str, timeout: float = 30.0) -> Completion:
    return completions_of(executor, [job], timeout)[job]


def parse_scontrol(out: str) -> dict[str, str]:
    """The first record of ``scontrol -o show job`` as ``Key -> value``."""
    line = out.splitlines()[0] if out else ""
    return dict(re.findall(r"(\w[\w/:]*)=(\S*)", line))


def slurm_state(cluster: LocalSlurmCluster, slurm_id: int) -> dict[str, str]:
    out = cluster.run(["scontrol", "-o", "-d", "show", "job", str(slurm_id)]).stdout
    return parse_scontrol(out)


def gpus_per_node(cluster: LocalSlurmCluster, slurm_id: int) -> dict[str, int]:
    """Node -> GPUs Slurm allocated there, every component of a heterogeneous job."""
    found: dict[str, int] = {}
    out = cluster.run(["scontrol", "-d", "show", "job", str(slurm_id)]).stdout
    for node, gres in re.findall(r"Nodes=(\S+) .*?GRES=(\S+)", out):
        # "gpu:2(IDX:0-1)" or, with typed GPUs, "gpu:s0:1(IDX:0),gpu:s3:1(IDX:3)"
        count = sum(int(n) for n in re.findall(r"gpu:(?:\w+:)?(\d+)\(", gres))
        for name in cluster.run(["scontrol", "show", "hostnames", node]).stdout.split():
            found[name] = count
    return found
