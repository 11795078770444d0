"""A real throwaway Slurm cluster: a 2-node job sees all four fake GPUs on its node.

The cluster starts ``munged`` (a host service) when it is not running and never stops it;
``munged_stopped_if_started_here`` stops it after this file's tests if it was not running
before them, so the suite leaves nothing running (slurmctld and slurmd are stopped by the
cluster itself).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.slurm_cluster import (
    REQUIRED_BINARIES,
    LocalSlurmCluster,
    pid_alive,
)

MISSING = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"Slurm binaries absent: {', '.join(MISSING)} (scripts/install-slurm.sh)",
    ),
]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # pytest's tmp_path can be too long for the job-step Unix sockets under the spool dir.
    path = Path(tempfile.mkdtemp(prefix="slt-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_two_node_job_sees_four_gpus_and_stop_ends_daemons(short_dir: Path) -> None:
    cluster = LocalSlurmCluster(nodes=4, gpus_per_node=4, base_dir=short_dir / "c")
    with cluster:
        pids = cluster.pids
        assert set(pids) == {"slurmctld", *(f"slurmd-node{k}" for k in range(1, 5))}
        assert all(pid_alive(pid) for pid in pids.values())
        assert set(cluster.node_states().values()) == {"idle"}

        out = short_dir / "job-%j.out"
        submitted = cluster.run(
            [
                "sbatch",
                "--parsable",
                "--gres=gpu:4",
                "-N",
                "2",
                f"--output={out}",
                f"--chdir={short_dir}",
                "--wrap",
                "echo $CUDA_VISIBLE_DEVICES",
            ]
        )
        job_id = int(submitted.stdout.strip().split(";")[0])

        deadline = time.monotonic() + 20
        while job_id not in cluster.completed_jobs():
            assert time.monotonic() < deadline, cluster.run(["squeue"]).stdout
            time.sleep(0.2)
        record = cluster.completed_jobs()[job_id]
        assert record["JobState"] == "COMPLETED", record
        assert record["NodeCnt"] == "2", record

        text = (short_dir / f"job-{job_id}.out").read_text()
        assert "0,1,2,3" in text

    deadline = time.monotonic() + 5
    while any(pid_alive(pid) for pid in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [name for name, pid in pids.items() if pid_alive(pid)]
