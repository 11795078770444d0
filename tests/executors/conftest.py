"""A real Slurm cluster for the executor tests: one per test session (per xdist worker),
reset between tests.

``slurm_cluster`` starts a :class:`~support.slurm_cluster.LocalSlurmCluster` the first time
a test asks for it (four nodes named after the demo-like site's node ids,
:data:`SLURM_NODES`, four fake GPUs each, each GPU its own GRES type ``s0``..``s3``) and
stops it at the end of the session (the ``munged`` a cluster may start is stopped once, by
the controlling pytest process: ``tests/munge_guard.py``); ``slurm`` hands
a test that cluster reset to fresh (no job, every node idle); ``work`` is a short directory
for the jobs' files. A host without Slurm skips those tests with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.slurm_cluster import (
    REQUIRED_BINARIES,
    SLURM_NODES,
    LocalSlurmCluster,
    SlurmUnavailable,
)

MISSING_SLURM = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[LocalSlurmCluster]:
    if MISSING_SLURM:
        pytest.skip(f"Slurm binaries absent: {', '.join(MISSING_SLURM)} (install-slurm.sh)")
    base = Path(tempfile.mkdtemp(prefix="sle-"))  # short: job-step socket paths live there
    cluster = LocalSlurmCluster(
        nodes=len(SLURM_NODES),
        gpus_per_node=4,
        base_dir=base / "c",
        node_names=SLURM_NODES,
        slot_types=True,  # each GPU its own GRES type: untyped requests (gpu:N) work too
    )
    try:
        cluster.start()
    except SlurmUnavailable as error:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(str(error))
    try:
        yield cluster
    finally:
        cluster.cancel_all()  # no job's slurmstepd may outlive the cluster
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def work() -> Iterator[Path]:
    """A short, world-readable directory for jobs' files and logs (pytest's tmp_path can be
    too long for Slurm's job-step sockets when a cluster lives under it)."""
    path = Path(tempfile.mkdtemp(prefix="slw-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def slurm(slurm_cluster: LocalSlurmCluster) -> LocalSlurmCluster:
    slurm_cluster.reset()
    return slurm_cluster
