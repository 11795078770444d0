"""A Slurm node dies under a running job: the Slurm executor leaves the run to the core to
requeue (its own file and cluster: about 12 s of waiting for Slurm to call the node down, in
parallel with the other Slurm tests under ``-n 3 --dist loadfile``; a MessageTimeout of 3 s
instead of Slurm's 10 halves that wait)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpulease.domain.states import NodeState
from gpulease.executors.slurm import SlurmExecutor
from support.slurm_cluster import MISSING_BINARIES, SLURM_NODES, LocalSlurmCluster
from support.slurm_jobs import launch_of, site_of, slurm_state, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING_BINARIES), reason=f"Slurm absent: {MISSING_BINARIES}"),
]


def test_a_job_lost_with_its_node_is_left_to_the_core_to_requeue(work: Path) -> None:
    """A node dies (its ``slurmd`` killed, then its job's process): Slurm marks the node
    down and the job NODE_FAIL; the executor reports no completion, drops the run from
    ``active`` and refuses to adopt it, which is how the core's reconcile requeues a run."""
    nodes = SLURM_NODES[:2]
    cluster = LocalSlurmCluster(
        nodes=2,
        gpus_per_node=4,
        base_dir=work / "c",
        node_names=nodes,
        slurmd_timeout=5,
        message_timeout=3,
    )
    pid_file = work / "job.pid"
    with cluster:
        executor = SlurmExecutor([site_of(cluster)])
        launch = launch_of(work, f"echo $$ > {pid_file}; exec sleep 120", [(nodes[1], (0, 1))])
        executor.launch(launch)
        slurm_id = executor.slurm_id("job-1")
        assert slurm_id is not None
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="pid"))
        try:
            cluster.kill_node(nodes[1])

            def lost() -> bool:
                assert executor.poll(datetime.now(UTC)) == []
                return executor.active() == set()

            wait_for(lost, timeout=90, what="the run lost with its node")
            assert slurm_state(cluster, slurm_id)["JobState"] == "NODE_FAIL"
            assert not executor.adopt(launch)
            assert executor.node_states(nodes)[nodes[1]][0] == NodeState.DOWN
            assert "lost: Slurm reports NODE_FAIL" in launch.log_path.read_text()
        finally:  # the rest of the dead node: its job's process and that job's slurmstepd
            kill_dead_node_job(pid, slurm_id)
            cluster.cancel_all()


def kill_dead_node_job(pid: int, slurm_id: int) -> None:
    """SIGKILL the job's ``sleep`` (pid from its pid file) and its parent, the job's
    ``slurmstepd``, each only if its command line proves it is that process."""
    stepd = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"120"]:
        os.kill(pid, signal.SIGKILL)
    step = f"slurmstepd: [{slurm_id}.batch]".encode()
    if Path(f"/proc/{stepd}/cmdline").read_bytes().startswith(step):
        os.kill(stepd, signal.SIGKILL)
